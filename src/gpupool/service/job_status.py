"""The states of a job: one enum for the database column, the API's models and the CLI.

This module owns ``JobStatus``. A job is ``pending`` (waiting, also after a preemption),
``running`` (an allocation holds accelerators), and then once and for all ``completed``,
``failed``, ``cancelled`` or ``rejected`` (the core refused it). Preempted is a reason of a
pending job, not a state. The values are what the ``jobs.state`` column stores (a
``StrEnum`` compares equal to its text, so rows written before the enum still read).
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def active(self) -> bool:
        """Pending or running: the core holds the job."""
        return self in ACTIVE

    @property
    def final(self) -> bool:
        """The job ended: nothing changes its state again."""
        return self in FINAL


#: the states in which the core holds a job (pending or running)
ACTIVE: tuple[JobStatus, ...] = (JobStatus.PENDING, JobStatus.RUNNING)
#: the states a job ends in
FINAL: tuple[JobStatus, ...] = (
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.REJECTED,
)
