"""The scratch state of one scheduling cycle: what it learns as it goes and forgets after.

This module owns ``CycleScratch`` and the ``Reservation`` records it holds: the cycle's
time and decision list, the pools a strict cycle blocked, the EASY reservations it made,
and its budgets (preemption searches, failed tries, per project). The parts of a cycle
(``gpupool.core.waiting``, ``gpupool.core.reservations``, ``gpupool.core.preemption``) read
and update it; nothing of it outlives the cycle.

Part of the pure core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupool.core.decisions import Decision, Reason
from gpupool.core.job_state import JobState


@dataclass(slots=True)
class Reservation:
    """A blocked job's reservation of one pool in a cycle: its shadow time and the spare then."""

    job: JobState
    shadow: float
    extra: int


@dataclass(slots=True)
class CycleScratch:
    """Scratch state of one cycle."""

    now: int
    out: list[Decision]
    blocked: set[int] = field(default_factory=set)
    reservations: dict[int, Reservation] = field(default_factory=dict)
    preempt_attempts: int = 0
    failures: int = 0
    #: failures per project (``SchedulerConfig.backfill_depth_per_project``)
    project_failures: dict[int, int] = field(default_factory=dict)
    #: why the last ``try_start(explain=False)`` failed, for the caller to say: the reason,
    #: its message and its subject as data (``gpupool.core.wait_index.Subject``)
    why: tuple[Reason, str, str | None] = (Reason.QUEUED, "", None)
