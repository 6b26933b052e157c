"""The runs a report compares: one per policy, named apart, coloured, with its metrics.

This module owns ``Run`` (a ``RunResult`` with its report name, colour, metrics and job
arrays) and making them from the results ``write_report`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpupool.sim.metrics import JobArrays, compute_metrics
from gpupool.sim.records import RunResult
from gpupool.sim.report.style import PALETTE


@dataclass(slots=True)
class Run:
    """One run as the report shows it: its unique name, colour, metrics and job arrays."""

    name: str
    color: str
    result: RunResult
    metrics: dict[str, Any]
    arrays: JobArrays


def _unique_names(results: Sequence[RunResult]) -> list[str]:
    # metrics.json is keyed by policy: two runs of one policy (e.g. two seeds) must not
    # silently overwrite each other.
    seen: dict[str, int] = {}
    names = []
    for r in results:
        seen[r.policy] = seen.get(r.policy, 0) + 1
        names.append(r.policy if seen[r.policy] == 1 else f"{r.policy} ({seen[r.policy]})")
    return names


def make_runs(results: Sequence[RunResult]) -> list[Run]:
    """One ``Run`` per result, in order: unique names, colours by position, metrics computed."""
    runs = []
    for i, (name, r) in enumerate(zip(_unique_names(results), results, strict=True)):
        arrays = JobArrays.from_result(r)
        metrics = {**compute_metrics(r, jobs=arrays), "policy": name}
        runs.append(Run(name, PALETTE[i % len(PALETTE)], r, metrics, arrays))
    return runs
