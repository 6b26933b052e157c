"""Scheduling policies: how pending (and, for preemptive policies, running) jobs are ordered.

This module owns the policy registry. A policy is data plus two key functions: a *static*
key for a pending job (fixed while it waits, so the pending queue stays sorted without
re-sorting), and, for preemptive policies, the key of a running job at time ``now``.
Tenant-dependent ordering (fair share) is a *prefix* the scheduler computes per sub-queue.

| name       | order                                              | preemptive |
|------------|----------------------------------------------------|------------|
| fifo       | submit time                                        | no         |
| priority   | priority class, then submit time                   | no         |
| fairshare  | class; within guarantee first; decayed usage/weight | no (reclaims guarantees) |
| sjf        | oracle duration (experiments)                      | no         |
| srtf       | oracle remaining time (experiments)                | yes        |
| las        | least attained service, GPU x time                 | yes        |
| tiresias   | discretised 2D-LAS queues, starvation promotion    | yes        |
| maxmin     | round-based max-min fair GPU-time (agnostic LAS)   | at rounds  |
| ftf        | round-based finish-time fairness (agnostic)        | at rounds  |
| gavel-las  | max-min of throughput normalised to an equal share | at rounds  |
| gavel-fifo | arrival order, each job on its fastest free model  | at rounds  |
| gavel-ftf  | finish-time fairness on effective throughput       | at rounds  |
| gavel-makespan | the allocation that finishes all jobs soonest  | at rounds  |

The round-based policies (``allocation`` set) compute an allocation of time per job and
accelerator model (``gpupool.core.allocation``) and time-share by Gavel's mechanism
(``gpupool.core.heterogeneity``); ``aware`` ones read the throughput table, agnostic ones
treat every model alike, as Gavel's baselines do. ``tiresias`` is in ``gpupool.core.tiresias``.

Every key ends in the job's submission sequence number: an explicit tie-break.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, TypeVar


class _Config(Protocol):
    """What ``with_policy_defaults`` reads of a ``SchedulerConfig`` (which imports this module)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    policy: str
    round_ms: int
    min_runtime_ms: int


C = TypeVar("C", bound=_Config)

#: Gavel's round: 360 s (Narayanan et al., OSDI'20, section 7).
GAVEL_ROUND_MS = 360_000

POLICIES = (
    "fifo",
    "priority",
    "fairshare",
    "sjf",
    "srtf",
    "las",
    "tiresias",
    "maxmin",
    "ftf",
    "gavel-las",
    "gavel-fifo",
    "gavel-ftf",
    "gavel-makespan",
)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    preemptive: bool = False
    #: order first by priority class
    by_rank: bool = False
    #: order sub-queues by the tenant's fair-share standing
    fair: bool = False
    #: static key: "submit", "duration" (oracle), "remaining" (oracle), "attained" or
    #: "queue" (Tiresias' discretised attained service)
    key: str = "submit"
    #: round-based allocation objective: "las", "fifo", "ftf" or "makespan" ("" = none)
    allocation: str = ""
    #: the allocation reads the throughput table (heterogeneity-aware)
    aware: bool = False


_REGISTRY = {
    "fifo": Policy("fifo"),
    "priority": Policy("priority", by_rank=True),
    "fairshare": Policy("fairshare", by_rank=True, fair=True),
    "sjf": Policy("sjf", key="duration"),
    "srtf": Policy("srtf", preemptive=True, key="remaining"),
    "las": Policy("las", preemptive=True, key="attained"),
    "tiresias": Policy("tiresias", preemptive=True, key="queue"),
    "maxmin": Policy("maxmin", preemptive=True, allocation="las"),
    "ftf": Policy("ftf", preemptive=True, allocation="ftf"),
    "gavel-las": Policy("gavel-las", preemptive=True, allocation="las", aware=True),
    "gavel-fifo": Policy("gavel-fifo", preemptive=True, allocation="fifo", aware=True),
    "gavel-ftf": Policy("gavel-ftf", preemptive=True, allocation="ftf", aware=True),
    "gavel-makespan": Policy("gavel-makespan", preemptive=True, allocation="makespan", aware=True),
}


def get_policy(name: str) -> Policy:
    """The policy called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})") from None


def with_policy_defaults(cfg: C) -> C:
    """Fill in what a policy needs and the user left at zero.

    ``las`` re-ranks as service accrues, so it needs rounds (a decision every minute), and
    a quantum: without a minimum runtime every round would preempt everything that runs in
    favour of jobs that have had no service yet, and under overload the restart overheads
    would eat the pool (Tiresias bounds the same thrashing with discretised queues).
    ``tiresias`` needs rounds to demote and promote (a minute, no quantum: its discrete
    queues are the thrashing guard); the round-based policies (``gavel-*``, ``maxmin``,
    ``ftf``) re-decide once a round: Gavel's 6 minutes.
    """
    if cfg.policy == "las":
        return replace(
            cfg,
            round_ms=cfg.round_ms or 60_000,
            min_runtime_ms=cfg.min_runtime_ms or 600_000,
        )
    if cfg.policy == "tiresias":
        return replace(cfg, round_ms=cfg.round_ms or 60_000)
    if get_policy(cfg.policy).allocation:
        return replace(cfg, round_ms=cfg.round_ms or GAVEL_ROUND_MS)
    return cfg
