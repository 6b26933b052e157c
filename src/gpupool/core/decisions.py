"""Decisions: what a scheduling cycle asks the world to do, as data.

This module owns the decision types that ``Scheduler.handle`` returns and ``Reason``, the
codes that explain why a pending job waits. Drivers enact decisions (the simulator by
scheduling finish events, the service through executors); the core never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why a job is not running (or why it was stopped or rejected)."""

    QUEUED = "queued"
    RESOURCES = "resources"
    TOPOLOGY = "topology"
    BEHIND = "behind-higher-priority"
    RESERVED = "reserved"
    RESERVATION = "would-delay-reservation"
    BORROW_LIMIT = "borrow-limit"
    #: more accelerators than a guarantee plus borrowing limit on the job's tenant path
    #: allows: the job could never start (refused at submission, or told when a limit drops)
    OVER_LIMIT = "over-limit"
    OVER_BUDGET = "over-budget"
    NOT_REACHED = "backfill-depth"
    PREEMPTED = "preempted"
    UNSCHEDULABLE = "unschedulable"
    INVALID = "invalid"
    UNKNOWN_PROJECT = "unknown-project"
    CANCELLED = "cancelled"
    NODE_DOWN = "node-down"
    RECLAIM = "reclaim-guarantee"
    PRIORITY = "priority"
    POLICY = "policy"
    #: held until the jobs it depends on start or end (``gpupool.core.held_jobs``)
    DEPENDENCY = "dependency"
    #: a dependency can never be met (the job it names failed, or completed for afternotok)
    DEPENDENCY_NEVER_MET = "dependency-never-met"
    #: a round-based policy's lease ended at a round boundary: the job checkpointed and stops
    ROUND = "round-end"


@dataclass(frozen=True, slots=True)
class Start:
    """Run ``job_id`` now on ``placement``: (node name, accelerator ids) per node."""

    job_id: str
    allocation_id: str
    cluster: str
    model: str
    placement: tuple[tuple[str, tuple[int, ...]], ...]
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop an allocation and requeue its job (it resumes from its last checkpoint)."""

    job_id: str
    allocation_id: str
    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop an allocation for good (the job was cancelled)."""

    job_id: str
    allocation_id: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Reserve:
    """Hold accelerators of a cluster/model for ``job_id`` from ``start_ms`` (EASY backfill)."""

    job_id: str
    cluster: str
    model: str
    start_ms: int


@dataclass(frozen=True, slots=True)
class Explain:
    """The reason a pending job waits changed."""

    job_id: str
    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Reject:
    """A job that was refused: invalid, unknown project, over budget, or never placeable."""

    job_id: str
    reason: Reason
    detail: str


Decision = Start | Preempt | Stop | Reserve | Explain | Reject
