"""The loop's journal: one cycle's events and decisions into the database, in ONE transaction.

This module owns ``Journal``. After the core decided, ``record`` writes in one transaction,
behind the leader lease's fence (a loop whose lease was taken writes nothing):

1. the event log: a rebuild's restore point (once, with the first cycle after it), the
   executors' events, the core's events and its decisions, numbered by cycle (a replay feeds
   one cycle's events back together and rebuilds where the live loop did);
2. job rows: finishes, cancellations of pending jobs, starts (a new allocation id), preemptions
   and stops (run time and attained service accounted as the core does), rejections, and the
   reason of every job the core explained; tasks of job arrays through
   ``array_tasks.TaskJournal``;
3. usage intervals: opened at a start, closed at a finish, preemption or stop (following the
   engine's own start and end where it bills);
4. the outbox: a launch per start, a terminate per preemption or stop (the dispatcher sends
   them after the commit);
5. the consumed inbox rows, exactly those read;
6. estimated starts and queue positions of pending jobs that moved.

If the transaction fails, nothing of the cycle is in the database while the core in memory
has moved on: the loop rebuilds the core from the database. The journal keeps the core's
allocation index (``Rebuilt.running``) in step with the rows it writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from gpupool.core.decisions import Decision, Explain, Preempt, Reject, Reserve, Start, Stop
from gpupool.core.scheduler import Scheduler
from gpupool.service import store
from gpupool.service.allocation_index import Running
from gpupool.service.array_tasks import TaskJournal
from gpupool.service.db import EventLogRow, InboxRow, JobRow, OutboxRow, UsageRow
from gpupool.service.event_codec import about, encode
from gpupool.service.intake import Inputs, log_row
from gpupool.service.job_status import JobStatus
from gpupool.service.launch_order import LaunchOrders, payload
from gpupool.service.rebuild import Rebuilt

log = logging.getLogger("gpupool.service.loop")
#: a lease's fence: run first in a write transaction, raises ``LeaseLost`` when not leading
Fence = Callable[[Session], None]
#: estimated starts are recomputed at most this often (they are a fluid-model estimate)
ESTIMATE_EVERY_MS = 2000
#: ... except after a change while fewer jobs than this wait (cheap: done at once)
ESTIMATE_AT_ONCE_BELOW = 200

_JOBS = cast(Table, JobRow.__table__)
_INBOX = cast(Table, InboxRow.__table__)
# Statements of every cycle, built once and run on the session's connection as Core (the
# ORM's per-statement work was most of an idle-ish cycle's cost).
_LOG = insert(cast(Table, EventLogRow.__table__))
_CONSUME = delete(_INBOX).where(_INBOX.c.id.in_(bindparam("ids", expanding=True)))
_ESTIMATE = (
    update(_JOBS)
    .where(_JOBS.c.seq == bindparam("b_seq"))
    .values(
        estimated_start_ms=bindparam("b_est"),
        queue_position=bindparam("b_pos"),
        queue_pool=bindparam("b_pool"),
    )
)
#: a pending job's estimate as last written: (start, (pool, place) or None)
Estimate = tuple[int | None, tuple[str, int] | None]


class Journal:
    """Writes what a cycle took in and decided."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        orders: LaunchOrders,
        *,
        terminate_grace_s: float = 10.0,
        fence: Fence | None = None,
    ) -> None:
        self.factory = factory
        self.orders = orders
        self.terminate_grace_s = terminate_grace_s
        #: the leader lease's fence (None: no lease)
        self.fence = fence
        #: the event log's number for the next cycle that logs something
        self.next_cycle = 1
        self._estimates: dict[str, Estimate] = {}
        self._last_estimate = -(10**18)

    def reset(self, s: Session) -> None:
        """After a rebuild: number cycles after the last logged one, estimate everything anew."""
        last = s.scalars(select(EventLogRow.cycle).order_by(EventLogRow.id.desc()).limit(1)).first()
        self.next_cycle = (last or 0) + 1
        self._estimates = {}
        self._last_estimate = -(10**18)

    def record(self, state: Rebuilt, now: int, got: Inputs, decisions: Sequence[Decision]) -> bool:
        """Write the cycle in one transaction; whether it wrote to the outbox."""
        log_rows = [*state.take_marker(now), *got.log_rows]  # a rebuild's restore point first (ADR 0017)
        for ev in got.events:
            log_rows.append(log_row(now, "event", type(ev).__name__, about(ev), encode(ev)))
        for d in decisions:
            log_rows.append(log_row(now, "decision", type(d).__name__, d.job_id, encode(d)))
        estimates = self._estimate(state.scheduler, now, bool(decisions) or bool(got.events))
        if not (log_rows or got.inbox_ids or estimates):
            return False  # an idle cycle writes nothing
        with self.factory.begin() as s:
            if self.fence is not None:
                self.fence(s)  # before any write: a loop that lost its lease writes nothing
            if log_rows:
                # One executemany of plain rows (no ORM objects)
                cycle = self.next_cycle
                self.next_cycle += 1
                for entry in log_rows:
                    entry["cycle"] = cycle
                s.connection().execute(_LOG, log_rows)
            wrote = self._apply(s, state, now, decisions, got)
            _engine_usage(s, now, got.engine_times)
            if got.inbox_ids:
                # Exactly the rows read: on PostgreSQL a row with a smaller id may commit after
                # this cycle read the inbox, and must wait for the next cycle, not vanish.
                s.connection().execute(_CONSUME, {"ids": got.inbox_ids})
            if estimates:
                s.connection().execute(_ESTIMATE, estimates)
        return wrote

    # -- job rows, usage, outbox ----------------------------------------------------------------

    def _apply(
        self,
        s: Session,
        state: Rebuilt,
        now: int,
        decisions: Sequence[Decision],
        got: Inputs,
    ) -> bool:
        """Job rows, usage and outbox for this cycle's finishes and decisions."""
        running = state.running
        finishes, cancelled_pending = got.finishes, got.cancelled_pending
        need = {run.seq for a in finishes if (run := running.get(a)) is not None}
        need |= {sq for d in decisions if (sq := store.job_seq(d.job_id)) is not None}
        need |= set(cancelled_pending)
        rows = (
            {r.seq: r for r in s.scalars(select(JobRow).where(JobRow.seq.in_(sorted(need))))} if need else {}
        )
        # the service's allocation of a preemption or stop: one lookup in the index
        stopping = [running.service_id(d.allocation_id) for d in decisions if isinstance(d, Preempt | Stop)]
        closing = [*finishes, *(a for a in stopping if a)]
        usage: dict[str, UsageRow] = {}
        if closing:
            usage = {
                u.allocation_id: u
                for u in s.scalars(select(UsageRow).where(UsageRow.allocation_id.in_(closing)))
            }

        def close(aid: str) -> None:
            u = usage.get(aid)
            if u is not None and u.end_ms is None:
                u.end_ms = now

        wrote = False
        tasks = TaskJournal(s, now, running, self.orders, self.terminate_grace_s, close)
        for aid, finish in finishes.items():
            run = running.pop(aid)
            assert run is not None  # intake reports finishes of running allocations only
            if run.job:  # a task of a job array
                tasks.finished(run, finish.state, finish.exit_code, finish.detail)
                continue
            row = rows[run.seq]
            _stop_row(row, now)
            row.state, row.exit_code, row.end_ms = finish.state, finish.exit_code, now
            row.reason = "completed" if finish.state == JobStatus.COMPLETED else "failed"
            row.detail = finish.detail
            close(aid)
            state.known.discard(store.job_id(run.seq))
        for pending_seq in cancelled_pending:
            gone = rows[pending_seq]
            if gone.state == JobStatus.PENDING:
                gone.state, gone.reason, gone.detail, gone.end_ms = JobStatus.CANCELLED, "cancelled", "", now
                self._unqueue(gone)
                state.known.discard(store.job_id(pending_seq))
        for d in decisions:
            seq = store.job_seq(d.job_id)
            if seq is None and tasks.decide(d):
                continue
            found = rows.get(seq) if seq is not None else None
            if found is None:  # pragma: no cover - the core only decides about jobs we gave it
                log.error("decision for unknown job %s", d.job_id)
                continue
            row = found
            if isinstance(d, Start):
                opened = self._start(s, state, row, d, now)
                usage[opened.allocation_id] = opened  # a stop in this same cycle closes it
                wrote = True
            elif isinstance(d, Preempt | Stop):
                aid = running.service_id(d.allocation_id)
                running.pop(aid)
                close(aid)
                _stop_row(row, now)
                if isinstance(d, Preempt):
                    row.state, row.reason = JobStatus.PENDING, "preempted"
                    row.detail = f"{d.reason.value}: {d.detail}" if d.detail else d.reason.value
                    row.preemptions += 1
                else:
                    row.state, row.reason, row.detail, row.end_ms = JobStatus.CANCELLED, "cancelled", "", now
                    state.known.discard(d.job_id)
                wrote = True
                s.add(
                    OutboxRow(
                        kind="terminate",
                        allocation_id=aid,
                        job_seq=row.seq,
                        cluster=row.cluster or "",
                        payload={"grace_s": self.terminate_grace_s},
                        created_ms=now,
                    )
                )
            elif isinstance(d, Reject):
                row.state, row.reason, row.detail, row.end_ms = (
                    JobStatus.REJECTED,
                    d.reason.value,
                    d.detail,
                    now,
                )
                self._unqueue(row)
                state.known.discard(d.job_id)
            elif isinstance(d, Explain):
                if row.state == JobStatus.PENDING:
                    row.reason, row.detail = d.reason.value, d.detail
            elif isinstance(d, Reserve):
                row.estimated_start_ms = d.start_ms
        tasks.end(state.scheduler, state.known, got.task_cancels)
        return wrote or tasks.wrote

    def _start(self, s: Session, state: Rebuilt, row: JobRow, d: Start, now: int) -> UsageRow:
        """The row runs a new allocation; its usage interval (opened) and launch order."""
        row.attempt += 1
        aid = store.allocation_id(row.seq, row.attempt)
        row.state, row.allocation_id, row.cluster, row.model = JobStatus.RUNNING, aid, d.cluster, d.model
        row.placement = [[n, list(ids)] for n, ids in d.placement]
        row.start_ms, row.reason, row.detail = now, "running", ""
        self._unqueue(row)
        state.running.add(Running(row.seq, aid, d.allocation_id, d.cluster))
        spec = row.stored
        opened = UsageRow(
            job_seq=row.seq,
            allocation_id=aid,
            project_id=row.project_id,
            model=d.model,
            workload_class=spec.workload_class,
            gpus=spec.gpus,
            start_ms=now,
        )
        s.add(opened)
        launch = self.orders.of_row(row)
        s.add(
            OutboxRow(
                kind="launch",
                allocation_id=aid,
                job_seq=row.seq,
                cluster=d.cluster,
                payload=payload(launch),
                created_ms=now,
            )
        )
        return opened

    def _unqueue(self, row: JobRow) -> None:
        """The job no longer waits: no estimate, no place in a queue (written again if it does)."""
        row.estimated_start_ms, row.queue_position, row.queue_pool = None, None, None
        self._estimates.pop(store.job_id(row.seq), None)

    # -- estimates ------------------------------------------------------------------------------

    def _estimate(self, sched: Scheduler, now: int, changed: bool) -> list[dict[str, Any]]:
        """Estimated starts and queue positions that moved, as rows for ``_ESTIMATE``.

        After a change at once (explain must reflect it) while the queue is short; with a long
        queue (a burst of submissions) at most every ``ESTIMATE_EVERY_MS``, since the estimate
        walks the whole queue and each cycle would redo it. Without a change now and then too:
        estimates move with time even when nothing happens.
        """
        at_once = changed and sched.pending_count <= ESTIMATE_AT_ONCE_BELOW
        if not at_once and now - self._last_estimate < ESTIMATE_EVERY_MS:
            return []
        self._last_estimate = now
        starts, places = sched.estimate_queue(now) if sched.pending_count else ({}, {})
        updates = []
        fresh: dict[str, Estimate] = {}
        for jid, t in starts.items():
            place = places.get(jid)
            fresh[jid] = (t, place)
            if self._estimates.get(jid) != (t, place):
                seq = store.job_seq(jid)
                if seq is not None:
                    pool, pos = place if place is not None else (None, None)
                    updates.append({"b_seq": seq, "b_est": t, "b_pos": pos, "b_pool": pool})
        self._estimates = fresh
        return updates


def _stop_row(row: JobRow, now: int) -> None:
    """Account the run that ends now (run time and attained service, as the core does)."""
    if row.state == JobStatus.RUNNING and row.start_ms is not None:
        ran = max(0, now - row.start_ms)
        row.run_ms += ran
        row.attained += float(ran * row.stored.gpus)


def _engine_usage(s: Session, now: int, times: Mapping[str, list[int | None]]) -> None:
    """Usage intervals follow the engine's own start and end (Slurm's start_time/end_time).

    The decision-to-poll interval also counts Slurm's start latency and the poll delay,
    which for short jobs is far from what sacct bills; clamped to [decision, now] so an
    engine clock can only narrow the interval.
    """
    if not times:
        return
    for u in s.scalars(select(UsageRow).where(UsageRow.allocation_id.in_(sorted(times)))):
        began, ended = times[u.allocation_id]
        if began is not None:
            u.start_ms = min(max(u.start_ms, began), u.end_ms if u.end_ms is not None else now)
        if ended is not None and u.end_ms is not None:
            u.end_ms = min(max(u.start_ms, ended), u.end_ms)
