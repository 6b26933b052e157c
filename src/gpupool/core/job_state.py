"""A job's life inside the scheduler.

This module owns ``JobState`` (what the scheduler knows of one job: its spec, its place in
the pending queue, its allocation while it runs, the service it has had and why it waits)
and the status codes it moves through (``PENDING``, ``RUNNING``, ``DONE``). It imports
nothing of the scheduler, so the modules that make up the cycle can use them at run time.

Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.core.capacity import Placement
from gpupool.core.decisions import Reason
from gpupool.core.job import JobSpec

PENDING, RUNNING, DONE = 0, 1, 2


@dataclass(slots=True, eq=False)
class JobState:
    """The life of a job inside the scheduler."""

    spec: JobSpec
    seq: int
    project: int
    candidates: tuple[int, ...]
    rank: int
    status: int = PENDING
    attempt: int = 0
    allocation_id: str = ""
    pool: int = -1
    placement: Placement = ()
    start_ms: int = -1
    expected_end: int = 0
    run_ms: int = 0
    attained: float = 0.0
    preemptions: int = 0
    reason: Reason = Reason.QUEUED
    detail: str = ""
    #: the id of its candidate set (``CandidatePools.set_id``): the first part of ``qkey``
    cset: int = -1
    qkey: tuple[int, int, int] = (0, 0, 0)
    skey: tuple[float, ...] = ()
    reserved_start: int = -1
    #: pending and already told why it waits, in a way a cycle may find again with nothing
    #: to say (see ``gpupool.core.waiting``): (its pools, None) for "waiting for
    #: accelerators", (its pools, id of the job holding the reservation) for "would delay
    #: job ..."; None if not
    wait_sig: tuple[tuple[int, ...], str | None] | None = None
    #: a multi-stack job's pools as ``portable_order`` last chose them (sorted; () = not
    #: known): the set it is told it waits on
    usable: tuple[int, ...] = ()
    #: told a reason from the state alone by ``gpupool.core.wait_reasons`` (not by a cycle
    #: that tried it): the first cycle that does try it keeps its wait signature as if the
    #: reason were new, so the bulk pass sees what it saw before that rule existed
    presumed: bool = False

    @property
    def gpus(self) -> int:
        return self.spec.gpus


def walltime(j: JobState, default_ms: int) -> int:
    """The run time a job is held to: its walltime, else its duration hint, else ``default_ms``."""
    s = j.spec
    if s.walltime_ms > 0:
        return s.walltime_ms
    if s.duration_hint_ms > 0:
        return s.duration_hint_ms
    return default_ms


def remaining(j: JobState, default_ms: int) -> int:
    """Estimated run time left: a walltime restarts whole, a duration hint does not."""
    if j.spec.walltime_ms > 0:
        return j.spec.walltime_ms
    return max(1, walltime(j, default_ms) - j.run_ms)
