"""How the scheduler's cycle behaves: ``SchedulerConfig`` and its validation.

This module owns the settings of one ``Scheduler`` (policy, backfill and its depth,
preemption, usage decay, walltime defaults, throughputs, tiresias queues) and rejects
unknown or out-of-range values when a config is made. It imports nothing of the scheduler,
so the policy and service modules can use it without importing the cycle.

Part of the pure core, like the scheduler it configures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupool.core.policies import get_policy
from gpupool.core.throughput import ThroughputTable
from gpupool.core.tiresias import TiresiasConfig

DAY_MS = 86_400_000


@dataclass(slots=True)
class SchedulerConfig:
    """How the cycle behaves. Defaults follow Slurm/Kueue practice where one exists."""

    policy: str = "fairshare"
    backfill: str = "none"
    #: pending jobs examined per cycle after the first that could not start (Slurm's
    #: bf_max_job_test); bounds a cycle's cost at national scale. A run of one sub-queue's
    #: jobs that the bulk pass passes over (they would fail exactly as they did: same pools,
    #: same reason) counts as one: it costs one look, and counting each job would let one
    #: tenant's blocked backlog end every cycle before any other tenant's job is examined.
    backfill_depth: int = 1000
    #: of those, at most this many per project (Slurm's bf_max_job_assoc): a project that
    #: reaches it is passed over for the rest of the cycle, so one tenant's backlog that
    #: cannot run (its only accelerators taken) never uses up the cycle for everyone else
    backfill_depth_per_project: int = 100
    preemption: bool = True
    #: a running job younger than this is never preempted (thrashing guard)
    min_runtime_ms: int = 0
    #: the starvation bound: a job that has waited this long (pending, summed over its
    #: attempts) is served before the policy's order: the wanted-set policies take it
    #: first and hold accelerators for it (preempting past the quantum), the queue pass
    #: tries it first and blocks (strict) or reserves (EASY) its pools for it
    starvation_ms: int = DAY_MS
    #: preemption searches per cycle (each may look at every running job of a pool)
    max_preemption_attempts: int = 16
    decay_half_life_ms: int = 7 * DAY_MS
    #: walltime assumed when a job gives neither a walltime nor a duration hint
    default_walltime_ms: int = 7 * DAY_MS
    #: period of Tick events a driver should send (0 = only on events); las needs them
    round_ms: int = 0
    #: what a round-based policy assumes a restart costs a stopped job (on top of the work
    #: since its last checkpoint): a round stops a running job only when that gains more
    #: (``gpupool.core.round_leases``); 30 s, the Helios simulator's cost for one node
    restart_overhead_ms: int = 30_000
    #: jobs save their state when a round ends their lease (Gavel's assumption), so a round
    #: stop loses no work since the last checkpoint; off: the declared checkpoint interval
    lease_end_checkpoints: bool = False
    #: apply the round lease rule at all; off: every stop the round's plan makes happens, as
    #: in Gavel's published mechanism (``benchmarks/reproduce_gavel.py`` reproduces that)
    round_leases: bool = True
    #: throughput per (workload class, model); None = the fleet catalogue's figures
    throughputs: ThroughputTable | None = None
    #: what usage, budgets and fair share count: "raw" accelerator-hours or "effective"
    #: ones (scaled by the job's throughput there, in reference-model hours)
    usage: str = "raw"
    tiresias: TiresiasConfig = field(default_factory=TiresiasConfig)
    #: a portable job is steered to another stack's accelerators while the fast ones are
    #: contended only where it runs at least this fraction of its speed on them
    portable_min_speed: float = 0.2

    def __post_init__(self) -> None:
        get_policy(self.policy)
        if self.usage not in ("raw", "effective"):
            raise ValueError(f"unknown usage {self.usage!r} (expected raw or effective)")
        if self.backfill not in ("none", "easy"):
            raise ValueError(f"unknown backfill {self.backfill!r} (expected none or easy)")
        if self.starvation_ms < 1:
            raise ValueError("starvation_ms must be >= 1 (every policy has a starvation bound)")
        if self.restart_overhead_ms < 0:
            raise ValueError("restart_overhead_ms must be >= 0")
        if self.backfill_depth < 1:
            raise ValueError("backfill_depth must be >= 1")
        if self.backfill_depth_per_project < 1:
            raise ValueError("backfill_depth_per_project must be >= 1")
