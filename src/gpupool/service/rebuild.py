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

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.events import Event, JobSubmitted, NodeDrained
from gpupool.core.fleet import Fleet
from gpupool.core.job import JobSpec
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.service import store
from gpupool.service.db import JobRow, TenantRow, UsageRow, UserRow
from gpupool.service.job_request import core_spec
from gpupool.service.tenant_tree import active_allocations, build_tenancy, tenant_rows

#: Usage older than this many decay half-lives weighs less than 2**-12 and is not replayed.
HALF_LIVES_KEPT = 12


@dataclass(slots=True)
class Running:
    """A running allocation as the loop tracks it."""

    seq: int
    allocation_id: str  # the service's (unique forever)
    core_allocation_id: str  # what the core calls it (JobFinished must name this one)
    cluster: str


@dataclass(slots=True)
class Rebuilt:
    scheduler: Scheduler
    #: JobSubmitted events of pending jobs that could not be restored, for the first cycle
    replay: list[Event]
    running: dict[str, Running]
    #: job ids the core holds (running or pending) or will hold after the replay
    known: set[str] = field(default_factory=set)
    paths: dict[int, str] = field(default_factory=dict)
    #: run the core at the next cycle even if no event comes (decide on restored jobs)
    cycle_due: bool = True


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
        row.spec,
        row.priority_class,
        row.submit_ms,
    )


def replayed_rate(sched: Scheduler, config: SchedulerConfig, u: UsageRow, gpus: int) -> float | None:
    """What a replayed interval adds to usage per ms: None when usage is raw; effective, its
    accelerators weighed by the throughput the core gives its class on its model (ADR 0018),
    as the core charged it while it ran."""
    if config.usage == "raw":
        return None
    return gpus * sched.throughputs.speed(u.workload_class, u.model, abs(gpus))


def rebuild(s: Session, fleet: Fleet, config: SchedulerConfig, now: int) -> Rebuilt:
    tenants: list[TenantRow] = tenant_rows(s)
    paths = {t.id: t.path for t in tenants}
    tenancy = build_tenancy(tenants, active_allocations(s, now), fleet)
    sched = Scheduler(fleet, tenancy, config)
    drained = [NodeDrained(n) for n in store.node_states(s) if n in fleet.node_by_name]
    if drained and sched.handle(drained, now):  # pragma: no cover - an empty core decides nothing
        raise AssertionError("an empty core made decisions while draining nodes")
    users = {k: v for k, v in s.execute(select(UserRow.id, UserRow.name))}
    jobs = store.active_jobs(s)
    running_rows = [j for j in jobs if j.state == "running"]
    # Decayed usage: replay closed intervals and restore running jobs in time order, so the
    # ledger (closed-form in time) sees every change in the order it happened.
    horizon = now - HALF_LIVES_KEPT * config.decay_half_life_ms
    closed = list(s.scalars(select(UsageRow).where(UsageRow.end_ms.is_not(None), UsageRow.end_ms > horizon)))
    steps: list[tuple[int, int, int, Any]] = []
    for u in closed:
        steps.append((u.start_ms, 1, u.id, ("+", u)))
        steps.append((u.end_ms or u.start_ms, 0, u.id, ("-", u)))
    for j in running_rows:
        steps.append((j.start_ms or now, 2, j.seq, ("run", j)))
    steps.sort(key=lambda t: (t[0], t[1], t[2]))
    running: dict[str, Running] = {}
    known: set[str] = set()
    for t, _, _, (what, obj) in steps:
        if what == "run":
            row: JobRow = obj
            spec = core_spec_of(row, paths, users)
            # in time order with the usage replay: it holds the ledger from ``start_ms``
            sched.restore_running(spec, placement_of(row), t, row.attempt, row.run_ms, row.attained)
            state = sched.job(spec.id)
            core_alloc = state.allocation_id if state is not None else ""
            aid = row.allocation_id or ""
            running[aid] = Running(row.seq, aid, core_alloc, row.cluster or "")
            known.add(spec.id)
            continue
        interval: UsageRow = obj
        project = paths.get(interval.project_id, "")
        if tenancy.resolve(project) is None:
            continue  # a tenant that no longer exists keeps no fair-share history
        gpus = interval.gpus if what == "+" else -interval.gpus
        sched.restore_usage(project, interval.model, gpus, t, replayed_rate(sched, config, interval, gpus))
    replay: list[Event] = []
    for j in jobs:
        if j.state != "pending":
            continue
        spec = core_spec_of(j, paths, users)
        try:
            sched.restore_pending(
                spec, attempt=j.attempt, run_ms=j.run_ms, attained=j.attained, preemptions=j.preemptions
            )
        except ValueError:
            replay.append(JobSubmitted(spec))  # the first cycle rejects it, on the record
        known.add(spec.id)
    return Rebuilt(sched, replay, running, known, paths)
