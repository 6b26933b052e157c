"""The executors of a service by the cluster each serves (``"*"``: every other cluster).

This module owns ``ExecutorSet``: which executor enacts a decision for a cluster, the distinct
executors to poll, and whether an allocation's engine keeps its own accounting (Slurm: the
usage interval then follows the engine's start and end, not the loop's).
"""

from __future__ import annotations

from collections.abc import Mapping

from gpupool.service.executors.base import Executor


class ExecutorSet:
    def __init__(self, executors: Mapping[str, Executor]) -> None:
        self.by_cluster = dict(executors)

    def for_cluster(self, cluster: str) -> Executor:
        ex = self.by_cluster.get(cluster) or self.by_cluster.get("*")
        if ex is None:
            raise LookupError(f"no executor for cluster {cluster!r}")
        return ex

    def distinct(self) -> list[Executor]:
        """Each executor once (one may serve several clusters)."""
        seen: dict[int, Executor] = {}
        for ex in self.by_cluster.values():
            seen.setdefault(id(ex), ex)
        return list(seen.values())

    def bills(self, cluster: str) -> bool:
        """Whether the engine of ``cluster`` keeps its own accounting (anything but local)."""
        ex = self.by_cluster.get(cluster) or self.by_cluster.get("*")
        return ex is not None and ex.backend != "local"
