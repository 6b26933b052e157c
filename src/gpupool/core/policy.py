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

Every key ends in the job's submission sequence number: an explicit tie-break.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("fifo", "priority", "fairshare", "sjf", "srtf", "las")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    preemptive: bool = False
    #: order first by priority class
    by_rank: bool = False
    #: order sub-queues by the tenant's fair-share standing
    fair: bool = False
    #: static key: "submit", "duration" (oracle), "remaining" (oracle) or "attained"
    key: str = "submit"


_REGISTRY = {
    "fifo": Policy("fifo"),
    "priority": Policy("priority", by_rank=True),
    "fairshare": Policy("fairshare", by_rank=True, fair=True),
    "sjf": Policy("sjf", key="duration"),
    "srtf": Policy("srtf", preemptive=True, key="remaining"),
    "las": Policy("las", preemptive=True, key="attained"),
}


def get_policy(name: str) -> Policy:
    """The policy called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})") from None
