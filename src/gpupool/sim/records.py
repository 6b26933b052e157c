"""What a simulation run produces: one record per job and the time series of the pool.

This module owns the result types shared by the simulator (which fills them) and the
metrics and report code (which read them). It computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class JobRecord:
    """The life of one job in a simulation (times in ms from the simulation's start).

    ``state``: ``finished``, ``unschedulable`` (rejected: can never fit), ``cancelled``,
    or ``unfinished`` (still pending or running when the run stopped).
    ``first_start_ms``/``end_ms`` are -1 when the job never started/ended.
    ``run_ms`` is wall time spent running (all attempts); ``lost_gpu_ms`` is GPU time whose
    work was thrown away by preemptions (since the last checkpoint) plus restart overheads.
    ``effective_gpu_ms`` is ``gpu_ms`` scaled by the job's throughput where it ran (reference-
    model GPU-ms); ``absorbed_gpu_ms`` the part of ``gpu_ms`` a job that could run on CUDA
    ran on another stack's accelerators (a portable job on an NPU).
    ``estimated_start_ms``: the core's estimated start (``Scheduler.estimate_starts``) right
    after the cycle that took its submission, when the run records estimates
    (``SimConfig.estimates``); -1 when not recorded or none could be given.
    """

    id: str
    tenant: str
    gpus: int
    submit_ms: int
    duration_ms: int
    state: str = "unfinished"
    first_start_ms: int = -1
    end_ms: int = -1
    run_ms: int = 0
    gpu_ms: int = 0
    preemptions: int = 0
    lost_gpu_ms: int = 0
    effective_gpu_ms: float = 0.0
    absorbed_gpu_ms: int = 0
    #: attempts ended by a failure of a node the job ran on, and the GPU-ms they lost
    #: (work since the last checkpoint plus the restart overhead; part of ``lost_gpu_ms``)
    failures: int = 0
    failure_lost_gpu_ms: int = 0
    model: str = ""
    cluster: str = ""
    reason: str = ""
    estimated_start_ms: int = -1

    @property
    def jct_ms(self) -> int:
        """Job completion time (end minus submit); -1 if it did not end."""
        return self.end_ms - self.submit_ms if self.end_ms >= 0 else -1

    @property
    def queue_ms(self) -> int:
        """Queueing delay: all time spent waiting; -1 if the job never started.

        For a finished job that is its completion time minus its run time, so the waits
        after preemptions count too (as Tiresias and the Helios simulator count them); for
        a job still running when the run stopped, the wait before its first start.
        """
        if self.first_start_ms < 0:
            return -1
        if self.end_ms >= 0:
            return self.end_ms - self.submit_ms - self.run_ms
        return self.first_start_ms - self.submit_ms


@dataclass(slots=True)
class PoolSample:
    """The pool at one instant: busy and total accelerators, pending and running jobs."""

    t_ms: int
    busy_gpus: int
    total_gpus: int
    pending_jobs: int
    running_jobs: int


@dataclass(slots=True)
class RunResult:
    """Everything one simulation run produced, ready for metrics and reports.

    ``entitlement`` maps each tenant (project path) to its entitled share of the pool in
    [0, 1] (from guaranteed quotas, else fair-share weights); ``sector_of`` maps a tenant to
    its sector for per-sector rollups; ``cycle_ms`` holds the wall time of each scheduling
    cycle (a measurement of the scheduler, the only non-deterministic field).
    """

    policy: str
    jobs: list[JobRecord]
    samples: list[PoolSample]
    total_gpus: int
    entitlement: dict[str, float] = field(default_factory=dict)
    sector_of: dict[str, str] = field(default_factory=dict)
    cycle_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    sim_end_ms: int = 0
    meta: dict[str, object] = field(default_factory=dict)
