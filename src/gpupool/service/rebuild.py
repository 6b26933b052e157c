"""Rebuild the core from the database (ADR 0002, "The core across restarts").

This module owns turning the stored state into a ``Scheduler``: the fleet with persisted node
drains, the tenancy from tenant rows and active allocations, decayed usage re-derived from the
usage intervals (``Scheduler.restore_usage``), running jobs restored on their recorded
accelerators with ``Scheduler.restore_running``, and pending jobs put back in their original
submission order with ``Scheduler.restore_pending``, keeping their attempts, run time,
attained service and preemptions (a re-submission would start a preempted job's attained
service from zero, and ``las`` would order it before jobs that have run less). The loop runs
the core once right after a rebuild, so the decisions about restored jobs are persisted like
any other. A pending job the core refuses to restore (its project is gone, it no longer fits
the fleet) is re-submitted instead, so the core rejects it in that first cycle, on the record.
It makes no decision and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from gpupool.core.events import Event
from gpupool.core.fleet import Fleet
from gpupool.core.job import JobSpec
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.service import store
from gpupool.service.allocation_index import AllocationIndex, Running
from gpupool.service.db import JobRow
from gpupool.service.job_request import core_spec
from gpupool.service.job_spec import StoredJobSpec
from gpupool.service.restore_point import RESTORE_KIND, RESTORE_TYPE, read_point, restore


@dataclass(slots=True)
class Rebuilt:
    scheduler: Scheduler
    #: JobSubmitted events of pending jobs that could not be restored, for the first cycle
    replay: list[Event]
    running: AllocationIndex
    #: job ids the core holds (running or pending) or will hold after the replay
    known: set[str] = field(default_factory=set)
    paths: dict[int, str] = field(default_factory=dict)
    #: run the core at the next cycle even if no event comes (decide on restored jobs)
    cycle_due: bool = True
    #: the restore point this core was rebuilt from, logged once with the next cycle
    marker: dict[str, Any] | None = None

    def take_marker(self, now: int) -> list[dict[str, Any]]:
        """The event-log row of the restore point (once; then none), for the cycle at ``now``:
        a replay rebuilds from it where the live loop did (``gpupool.service.replay``)."""
        point, self.marker = self.marker, None
        if point is None:
            return []
        return [{"at_ms": now, "kind": RESTORE_KIND, "type": RESTORE_TYPE, "job_id": None, "payload": point}]


def placement_of(row: JobRow) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((str(n), tuple(int(i) for i in ids)) for n, ids in (row.placement or []))


class SpecRow(Protocol):
    """What ``core_spec_of`` reads of a job: a ``JobRow`` or a Core row of these columns."""

    @property
    def seq(self) -> int: ...
    @property
    def project_id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def spec(self) -> dict[str, Any]: ...
    @property
    def priority_class(self) -> str: ...
    @property
    def submit_ms(self) -> int: ...


def core_spec_of(row: SpecRow, paths: dict[int, str], users: dict[int, str]) -> JobSpec:
    return core_spec(
        store.job_id(row.seq),
        paths[row.project_id],
        users.get(row.user_id, ""),
        StoredJobSpec.from_json(row.spec),
        row.priority_class,
        row.submit_ms,
    )


def rebuild(s: Session, fleet: Fleet, config: SchedulerConfig, now: int) -> Rebuilt:
    """The core restored from the database at ``now``, with its restore point to log (ADR 0017)."""
    point = read_point(s, fleet, config, now)
    got = restore(point, fleet, config)
    running = AllocationIndex()
    for aid, core, seq, cluster, job in got.running:
        running.add(Running(seq, aid, core, cluster, job))
    return Rebuilt(got.scheduler, got.replay, running, got.known, got.paths, marker=point.to_doc())
