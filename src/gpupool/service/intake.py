"""The loop's intake: executor events and inbox rows into the core's events.

This module owns ``Intake`` and what it gives a cycle (``Inputs``). It reads, never writes:

- executor events (``poll``) become ``JobFinished`` of the allocations the loop runs (an
  event about an allocation the loop stopped itself is stale and dropped), the engine's node
  states become ``NodeDown``/``NodeDrained``/``NodeUp``, after this poll's finishes (a job that
  ended just before its node went down has ended; requeued first, it would run twice);
- the pending jobs a rebuild could not restore come next (``Rebuilt.replay``);
- then the inbox, oldest first (submissions, cancellations of jobs and of tasks of job arrays,
  drains), read without the write lock: only the loop changes job rows, so what it read is
  still true when the journal writes; a submission whose dependencies already ended carries
  their milestones (``job_dependencies.settle``);
- and a ``Tick`` every ``round_ms`` for round-based policies.

Every executor event also becomes an event-log row, so that a replay sees what the loop saw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from gpupool.core.events import (
    Event,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeDown,
    NodeDrained,
    NodeUp,
    Tick,
)
from gpupool.core.fleet import Fleet
from gpupool.service import job_dependencies, store
from gpupool.service.db import JobRow, UserRow
from gpupool.service.executor_set import ExecutorSet
from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    ExecutorEvent,
    NodeChanged,
)
from gpupool.service.job_status import JobStatus
from gpupool.service.rebuild import Rebuilt, core_spec_of

#: inbox rows handled per cycle (bounds one transaction; the rest wait for the next cycle)
INBOX_BATCH = 5000

_JOBS = cast(Table, JobRow.__table__)
#: the job columns the inbox needs (a submission's spec; a cancel's state), as plain rows
_SPECS = select(
    _JOBS.c.seq,
    _JOBS.c.project_id,
    _JOBS.c.user_id,
    _JOBS.c.spec,
    _JOBS.c.priority_class,
    _JOBS.c.submit_ms,
    _JOBS.c.state,
).where(_JOBS.c.seq.in_(bindparam("seqs", expanding=True)))


class Finish(NamedTuple):
    """How an allocation ended, as its job row will say it."""

    state: JobStatus
    exit_code: int | None
    detail: str


def log_row(now: int, kind: str, type_: str, job_id: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """An event-log row (the journal adds the cycle number)."""
    return {"at_ms": now, "kind": kind, "type": type_, "job_id": job_id, "payload": payload}


@dataclass(slots=True)
class Inputs:
    """What a cycle takes in: the core's events and what the journal must write besides."""

    events: list[Event] = field(default_factory=list)
    #: event-log rows of the executors' events (before the core's events and decisions)
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    #: allocation -> how it ended
    finishes: dict[str, Finish] = field(default_factory=dict)
    #: engine start/end of allocations whose engine bills (Slurm: sacct)
    engine_times: dict[str, list[int | None]] = field(default_factory=dict)
    #: pending jobs cancelled (their rows turn cancelled without a decision of the core)
    cancelled_pending: list[int] = field(default_factory=list)
    #: (array seq, task index) of tasks of job arrays cancelled through the inbox
    task_cancels: list[tuple[int, int]] = field(default_factory=list)
    #: the inbox rows read (the journal deletes exactly these)
    inbox_ids: list[int] = field(default_factory=list)
    #: another process changed the tenancy: rebuild before the next cycle
    rebuild_wanted: bool = False


def outcome(e: AllocationExited | AllocationFailed) -> tuple[str, Finish]:
    """(the core's outcome, the job's finish) of an exit or failure."""
    if isinstance(e, AllocationFailed):
        return "failed", Finish(JobStatus.FAILED, None, e.reason)
    if e.succeeded:
        return "completed", Finish(JobStatus.COMPLETED, 0, "")
    if e.cause == "walltime":
        return "timeout", Finish(JobStatus.FAILED, e.exit_code, "killed at its walltime")
    if e.exit_code is None and e.signal is None:
        return "failed", Finish(
            JobStatus.FAILED, None, "exit status unknown (the process was adopted after a restart)"
        )
    if e.signal is not None:
        return "failed", Finish(JobStatus.FAILED, None, f"killed by signal {e.signal}")
    return "failed", Finish(JobStatus.FAILED, e.exit_code, f"exited with status {e.exit_code}")


class Intake:
    """Reads what happened since the last cycle."""

    def __init__(
        self, reader: sessionmaker[Session], fleet: Fleet, executors: ExecutorSet, round_ms: int = 0
    ) -> None:
        #: sessions that read without taking SQLite's write lock
        self.reader = reader
        self.fleet = fleet
        self.executors = executors
        self.round_ms = round_ms
        self._last_tick = -(10**18)
        self._last_cycle_ms = -(10**18)
        #: user names by id, for the core's specs (read again when a new user submits)
        self._users: dict[int, str] = {}

    def poll(self) -> list[ExecutorEvent]:
        """What every executor reports now."""
        got: list[ExecutorEvent] = []
        for ex in self.executors.distinct():
            got.extend(ex.poll())
        return got

    def take(self, state: Rebuilt, now: int, executor_events: list[ExecutorEvent]) -> Inputs:
        """The events of one cycle, in the order the core must see them."""
        got = Inputs()
        node_events = self._executor_events(state, now, executor_events, got)
        got.events.extend(node_events)
        got.events.extend(state.replay)  # pending jobs the rebuild could not restore
        state.replay = []
        self._inbox(state, got)
        if self.round_ms > 0 and now - self._last_tick >= self.round_ms:
            got.events.append(Tick())  # round-based policies (las) re-rank as service accrues
            self._last_tick = now
        if state.scheduler.state.advance.boundary_between(self._last_cycle_ms, now):
            got.events.append(Tick())  # an advance reservation's window opened or closed (ADR 0020)
        self._last_cycle_ms = now
        return got

    def _executor_events(
        self, state: Rebuilt, now: int, polled: list[ExecutorEvent], got: Inputs
    ) -> list[Event]:
        """Finishes into ``got``; the node changes, to follow them."""
        node_events: list[Event] = []
        for e in polled:
            got.log_rows.append(log_row(now, "executor", type(e).__name__, None, dataclasses.asdict(e)))
            if isinstance(e, NodeChanged):
                # Only fleet nodes: the core refuses unknown names.
                if e.node in self.fleet.node_by_name:
                    node_events.append(
                        NodeDown(e.node)
                        if e.state == "down"
                        else NodeDrained(e.node)
                        if e.state == "drained"
                        else NodeUp(e.node)
                    )
                continue
            run = state.running.get(e.allocation_id)
            bills = run is not None and self.executors.bills(run.cluster)
            if isinstance(e, AllocationStarted):
                if bills:
                    got.engine_times.setdefault(e.allocation_id, [None, None])[0] = e.at_ms
                continue
            if run is None or e.allocation_id in got.finishes:
                continue  # stale: we stopped it ourselves (preemption, cancel)
            core_outcome, finish = outcome(e)
            if bills:
                got.engine_times.setdefault(e.allocation_id, [None, None])[1] = e.at_ms
            got.finishes[e.allocation_id] = finish
            # a task of a job array is the core's job ``j7_3`` (``run.job``)
            got.events.append(
                JobFinished(run.job or store.job_id(run.seq), run.core_allocation_id, core_outcome)
            )
        return node_events

    def _inbox(self, state: Rebuilt, got: Inputs) -> None:
        """Turn the inbox into events, up to a ``rebuild`` row (what follows waits for it)."""
        with self.reader() as s:
            inbox = store.inbox(s, INBOX_BATCH)
            if not inbox:
                return
            seqs = sorted({r.job_seq for r in inbox if r.job_seq is not None})
            # plain rows of the columns needed, not ORM objects: a burst brings thousands
            rows: dict[int, Any] = {}
            if seqs:
                rows = {r.seq: r for r in s.connection().execute(_SPECS, {"seqs": seqs})}
            for r in inbox:
                got.inbox_ids.append(r.id)
                if r.kind == "rebuild":
                    # Another process changed the tenancy: a submission to a new project that
                    # follows waits for the core rebuilt next cycle.
                    got.rebuild_wanted = True
                    break
                row = rows.get(r.job_seq) if r.job_seq is not None else None
                if r.kind == "submit" and row is not None:
                    jid = store.job_id(row.seq)
                    if row.state != JobStatus.PENDING or jid in state.known:
                        continue
                    if row.user_id not in self._users:  # a new user (names never change)
                        self._users = {k: v for k, v in s.execute(select(UserRow.id, UserRow.name))}
                    got.events.append(JobSubmitted(core_spec_of(row, state.paths, self._users)))
                    state.known.add(jid)
                elif r.kind == "cancel" and row is not None:
                    jid = store.job_id(row.seq)
                    if row.state in store.ACTIVE_STATES and jid in state.known:
                        got.events.append(JobCancelled(jid))
                        if row.state == JobStatus.PENDING:
                            got.cancelled_pending.append(row.seq)
                elif r.kind in ("drain", "down") and r.node in self.fleet.node_by_name:
                    got.events.append(NodeDrained(r.node))
                elif r.kind == "undrain" and r.node in self.fleet.node_by_name:
                    got.events.append(NodeUp(r.node))
                elif r.kind == "cancel-task" and row is not None and r.node and r.node.isdigit():
                    # one task of an array (ADR 0019): the inbox row's ``node`` is its index
                    got.events.append(JobCancelled(f"{store.job_id(row.seq)}_{r.node}"))
                    got.task_cancels.append((row.seq, int(r.node)))
            job_dependencies.settle(s.connection(), got.events)  # targets that already ended
