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

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.events import Event, JobSubmitted, NodeDrained
from gpupool.core.fleet import Fleet
from gpupool.core.job import JobSpec
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.service import job_dependencies, store
from gpupool.service.db import JobRow, JobTaskRow, TenantRow, UsageRow, UserRow
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
    #: a task of a job array: its id in the core (``j7_3``); "" for a job
    job: str = ""


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
        if not j.spec.get("array"):
            steps.append((j.start_ms or now, 2, j.seq, ("run", j)))
    # running tasks of job arrays (ADR 0019): restored as jobs ``ARRAY_INDEX``, in time order too
    arrays = {j.seq: j for j in jobs if j.spec.get("array")}
    tasks: list[JobTaskRow] = []
    if arrays:
        tasks = list(s.scalars(select(JobTaskRow).where(JobTaskRow.array_seq.in_(sorted(arrays)))))
    for tr in tasks:
        if tr.state == "running":
            steps.append((tr.start_ms or now, 2, tr.array_seq, ("task", tr)))
    steps.sort(key=lambda t: (t[0], t[1], t[2]))
    running: dict[str, Running] = {}
    known: set[str] = set()
    running_tasks: dict[int, list[int]] = {}
    for t, _, _, (what, obj) in steps:
        if what == "task":
            trow: JobTaskRow = obj
            arr = arrays[trow.array_seq]
            tid = f"{store.job_id(arr.seq)}_{trow.idx}"
            tspec = dataclasses.replace(core_spec_of(arr, paths, users), id=tid, array=None, dependencies=())
            placed = tuple((str(n), tuple(int(i) for i in ids)) for n, ids in (trow.placement or []))
            sched.restore_running(tspec, placed, t, trow.attempt)
            tstate = sched.job(tid)
            aid = trow.allocation_id or ""
            running[aid] = Running(
                arr.seq, aid, tstate.allocation_id if tstate else "", trow.cluster or "", job=tid
            )
            running_tasks.setdefault(arr.seq, []).append(trow.idx)
            continue
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
        sched.restore_usage(project, interval.model, gpus, t)
    replay: list[Event] = []
    for j in jobs:
        if j.seq in arrays:
            spec = core_spec_of(j, paths, users)
            known.add(spec.id)
            if j.state == "pending" and spec.dependencies:
                replay.append(JobSubmitted(spec))  # held, or released and not started yet
                continue
            ended = {
                t.idx: t.state == "completed"
                for t in tasks
                if t.array_seq == j.seq and t.state in store.FINAL_STATES
            }
            try:
                sched.restore_array(spec, ended, running_tasks.get(j.seq, []), now)
            except ValueError:
                replay.append(JobSubmitted(spec))
            continue
        if j.state != "pending":
            continue
        spec = core_spec_of(j, paths, users)
        if spec.dependencies and j.attempt == 0:
            # held (or released but never run): submitted again in the first cycle, which
            # holds it, queues it or ends it as its dependencies now say
            replay.append(JobSubmitted(spec))
            known.add(spec.id)
            continue
        try:
            sched.restore_pending(
                spec, attempt=j.attempt, run_ms=j.run_ms, attained=j.attained, preemptions=j.preemptions
            )
        except ValueError:
            replay.append(JobSubmitted(spec))  # the first cycle rejects it, on the record
        known.add(spec.id)
    job_dependencies.settle(s.connection(), replay)
    return Rebuilt(sched, replay, running, known, paths)
