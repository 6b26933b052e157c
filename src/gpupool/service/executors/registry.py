"""Which executor runs each cluster: backends by name, built from the fleet file.

This module owns ``ExecutorRegistry`` (backend name -> factory) and ``build_executors``, which
the service's runtime calls to get its executors by cluster name (the loop's ``executor_for``).
Each cluster of a fleet file names its ``backend`` (``local``, ``slurm``, ``kubernetes``) and
how to reach it in ``options``; a factory turns that into an executor. All ``local`` clusters
share one ``LocalExecutor`` (they are this machine). Options are checked here, at start, so a
typo in a fleet file stops the service with the cluster's name instead of failing jobs later.

It makes no decision and enacts nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpupool.core.fleet import Cluster, Fleet
from gpupool.service.executors.base import Executor
from gpupool.service.executors.sandbox import Sandbox

__all__ = ["BuildContext", "ExecutorRegistry", "build_executors", "default_registry"]


@dataclass(slots=True)
class BuildContext:
    """What factories may use: where executors keep state, and the one shared local executor."""

    fleet: Fleet
    state_dir: Path
    simulated_gpus: bool = True
    shared: dict[str, Executor] = field(default_factory=dict)
    #: how local jobs are confined (``executors/sandbox.py``); ``None``: bubblewrap, defaults
    sandbox: Sandbox | None = None

    def nodes_of(self, cluster: Cluster) -> dict[str, str]:
        """The cluster's node names and their accelerator models."""
        return {n.name: n.model for n in self.fleet.nodes if n.cluster == cluster.index}


ExecutorFactory = Callable[[Cluster, BuildContext], Executor]


def _local(cluster: Cluster, ctx: BuildContext) -> Executor:
    # One process executor for every local cluster: they all run on this machine, and one
    # state directory must have one owner (adoption after a restart reads it).
    ex = ctx.shared.get("local")
    if ex is None:
        from gpupool.service.executors.gpus import simulated_fleet_machine
        from gpupool.service.executors.local import LocalExecutor

        if ctx.simulated_gpus:
            ex = LocalExecutor(ctx.state_dir, machine=simulated_fleet_machine(ctx.fleet), sandbox=ctx.sandbox)
        else:
            ex = LocalExecutor(ctx.state_dir, sandbox=ctx.sandbox)
        ctx.shared["local"] = ex
    return ex


def _slurm(cluster: Cluster, ctx: BuildContext) -> Executor:
    from gpupool.service.executors.slurm import SlurmExecutor
    from gpupool.service.executors.slurm_client import SlurmOptions

    return SlurmExecutor(cluster.name, ctx.nodes_of(cluster), SlurmOptions.parse(cluster.backend_options))


def _kubernetes(cluster: Cluster, ctx: BuildContext) -> Executor:
    from gpupool.service.executors.kubernetes import KubernetesExecutor, KubernetesOptions

    return KubernetesExecutor(
        cluster.name, ctx.nodes_of(cluster), KubernetesOptions.parse(cluster.backend_options)
    )


class ExecutorRegistry:
    """Backend name -> factory; ``build`` gives one executor per cluster of a fleet."""

    def __init__(self) -> None:
        self._factories: dict[str, ExecutorFactory] = {}

    def register(self, backend: str, factory: ExecutorFactory) -> None:
        self._factories[backend] = factory

    @property
    def backends(self) -> list[str]:
        return sorted(self._factories)

    def build(self, ctx: BuildContext) -> dict[str, Executor]:
        """Executors by cluster name. A bad backend or options raises ``ValueError`` naming the cluster."""
        out: dict[str, Executor] = {}
        try:
            for c in ctx.fleet.clusters:
                factory = self._factories.get(c.backend)
                if factory is None:
                    raise ValueError(
                        f"cluster {c.name!r}: no executor for backend {c.backend!r} "
                        f"(known: {', '.join(self.backends)})"
                    )
                try:
                    out[c.name] = factory(c, ctx)
                except ValueError as e:
                    raise ValueError(f"cluster {c.name!r} ({c.backend}): {e}") from None
        except BaseException:
            # Do not leave worker threads of the clusters built so far behind.
            for ex in {id(e): e for e in out.values()}.values():
                close = getattr(ex, "close", None)
                if callable(close):
                    close()
            raise
        return out


def default_registry() -> ExecutorRegistry:
    reg = ExecutorRegistry()
    reg.register("local", _local)
    reg.register("slurm", _slurm)
    reg.register("kubernetes", _kubernetes)
    return reg


def build_executors(
    fleet: Fleet,
    *,
    state_dir: Path,
    simulated_gpus: bool = True,
    per_cluster: bool = True,
    registry: ExecutorRegistry | None = None,
    sandbox: Sandbox | None = None,
) -> dict[str, Executor]:
    """The service's executors: each cluster's own backend, or (``per_cluster=False``) one
    local executor for every cluster under the key ``*`` (a workstation or a demo)."""
    ctx = BuildContext(fleet, state_dir, simulated_gpus, sandbox=sandbox)
    if not per_cluster:
        return {"*": _local(fleet.clusters[0], ctx)}
    return (registry or default_registry()).build(ctx)
