"""Events: the only way the world changes the scheduler's state.

This module owns the event types that the simulator and the live service feed to
``Scheduler.handle``. Events are plain immutable data; they carry no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.core.advance_reservations import AdvanceReservation
from gpupool.core.dependencies import Milestone
from gpupool.core.job import JobSpec


@dataclass(frozen=True, slots=True)
class JobSubmitted:
    """A new job. ``settled``: milestones of jobs it depends on that the driver knows have
    ended (the core forgets finished jobs; see ``gpupool.core.held_jobs``)."""

    spec: JobSpec
    settled: tuple[tuple[str, Milestone], ...] = ()


@dataclass(frozen=True, slots=True)
class JobCancelled:
    job_id: str


@dataclass(frozen=True, slots=True)
class JobFinished:
    """An allocation ended on its own: ``outcome`` is ``completed``, ``failed`` or ``timeout``.

    A finish naming an allocation that is no longer current (already preempted or cancelled)
    is stale and ignored, so executors may report late without harm.
    """

    job_id: str
    allocation_id: str
    outcome: str = "completed"


@dataclass(frozen=True, slots=True)
class NodeDown:
    """A node failed: its work is requeued and it takes no new work."""

    node: str


@dataclass(frozen=True, slots=True)
class NodeDrained:
    """A node is drained: running work finishes, no new work starts."""

    node: str


@dataclass(frozen=True, slots=True)
class NodeUp:
    """A node is back (after being down or drained)."""

    node: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Nothing happened but time passed (round-based and preemptive policies re-decide)."""


@dataclass(frozen=True, slots=True)
class ReservationCreated:
    """Accelerators are reserved for a window (``gpupool.core.advance_reservations``)."""

    reservation: AdvanceReservation


@dataclass(frozen=True, slots=True)
class ReservationDeleted:
    """An advance reservation is withdrawn (unknown ids are ignored)."""

    reservation_id: str


Event = (
    JobSubmitted
    | JobCancelled
    | JobFinished
    | NodeDown
    | NodeDrained
    | NodeUp
    | Tick
    | ReservationCreated
    | ReservationDeleted
)
