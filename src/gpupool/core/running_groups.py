"""Running jobs grouped for victim searches: per pool, by (project, priority class).

This module owns ``RunningGroups``: per pool, the running jobs of each (project, class) and
the accelerators each group and each class holds. A victim search (``gpupool.core.preemption``)
looks only at the groups that may hold victims, and their totals bound what it could free,
so a hopeless pool costs no scan. The pool state (``gpupool.core.pool_state``) keeps it in
step with every start and stop.

Part of the pure core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupool.core.job import PRIORITY_CLASSES
from gpupool.core.job_state import JobState

PREEMPTIBLE_RANK = PRIORITY_CLASSES["preemptible"]


@dataclass(slots=True, eq=False)
class RunGroup:
    """Running jobs of one (project, class) in one pool, and the accelerators they hold."""

    gpus: int = 0
    jobs: dict[int, JobState] = field(default_factory=dict)


class RunningGroups:
    """Per pool: running jobs by (project, class), and accelerators held per class."""

    def __init__(self, n_pools: int) -> None:
        #: per pool, running jobs by (project, class)
        self.groups: list[dict[tuple[int, int], RunGroup]] = [{} for _ in range(n_pools)]
        #: per pool and class: accelerators held by running jobs (preemption bounds)
        self.rank_gpus: list[list[int]] = [[0] * (PREEMPTIBLE_RANK + 1) for _ in range(n_pools)]

    def add(self, j: JobState, pool: int) -> None:
        """A job started (or was restored) in ``pool``."""
        groups = self.groups[pool]
        key = (j.project, j.rank)
        g = groups.get(key)
        if g is None:
            g = groups[key] = RunGroup()
        g.gpus += j.gpus
        g.jobs[j.seq] = j
        self.rank_gpus[pool][j.rank] += j.gpus

    def remove(self, j: JobState) -> None:
        """A running job stops (called before it leaves its pool)."""
        groups = self.groups[j.pool]
        key = (j.project, j.rank)
        g = groups[key]
        g.gpus -= j.gpus
        del g.jobs[j.seq]
        if not g.jobs:
            del groups[key]
        self.rank_gpus[j.pool][j.rank] -= j.gpus
