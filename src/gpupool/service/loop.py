"""The live loop: inbox and executor events -> ``Scheduler.handle`` -> one transaction -> executors.

This module owns ``Loop``. A cycle

1. polls the executors (exits become ``JobFinished``; finishes are applied before arrivals);
2. reads the inbox (submissions, cancellations, drains) and, after a rebuild, the pending
   jobs to re-submit, and calls ``Scheduler.handle(events, now)``;
3. in ONE transaction appends events and decisions to the event log, updates job rows and
   usage intervals, writes outbox rows (launch / terminate) and deletes the consumed inbox;
4. only then dispatches undispatched outbox rows to the executors (which never block) and
   marks them dispatched; a crash before that re-dispatches them on start (launch is
   idempotent by allocation id);
5. logs one line and updates the metrics.

If the transaction fails, the in-memory core no longer matches the database, so it is
rebuilt from the database before the next cycle. Time comes from an injected clock.

Under a leader lease (``gpupool.service.leader``) every write transaction of the loop and
every dispatch first runs the lease's ``fence``: a loop whose lease was taken raises
``LeaseLost`` and stops, having written and dispatched nothing. An inbox row of kind
``rebuild`` (written by API processes that do not hold the loop) asks for a rebuild; with
``inbox_poll_ms`` the idle loop looks at the inbox that often, so that submissions written by
other processes wake it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from gpupool.core.decisions import Decision, Explain, Preempt, Reject, Reserve, Start, Stop
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
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.service import array_tasks, job_dependencies, store
from gpupool.service.db import EventLogRow, InboxRow, JobRow, OutboxRow, UsageRow, UserRow, unavailable
from gpupool.service.event_codec import about, encode
from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    Executor,
    ExecutorEvent,
    Launch,
    NodeChanged,
)
from gpupool.service.leader import LeaseLost
from gpupool.service.metrics import ServiceMetrics
from gpupool.service.rebuild import Rebuilt, Running, core_spec_of, rebuild

log = logging.getLogger("gpupool.service.loop")
Clock = Callable[[], int]
#: a lease's fence: run first in a write transaction, raises ``LeaseLost`` when not leading
Fence = Callable[[Session], None]
#: inbox rows handled per cycle (bounds one transaction; the rest wait for the next cycle)
INBOX_BATCH = 5000
#: the longest wait between retries while cycles fail (the database is down or locked)
OUTAGE_BACKOFF_MAX_S = 5.0
#: outbox rows marked dispatched per transaction (at most this many are re-sent after a crash)
DISPATCH_MARK_BATCH = 500
#: estimated starts are recomputed at most this often (they are a fluid-model estimate)
ESTIMATE_EVERY_MS = 2000
#: ... except after a change while fewer jobs than this wait (cheap: done at once)
ESTIMATE_AT_ONCE_BELOW = 200


_JOBS = cast(Table, JobRow.__table__)
_INBOX = cast(Table, InboxRow.__table__)
_EVENT_LOG = cast(Table, EventLogRow.__table__)
# Statements of every cycle, built once and run on the session's connection as Core (the
# ORM's per-statement work was most of an idle-ish cycle's cost).
#: the job columns the inbox needs (a submission's spec; a cancel's state)
_SPECS = select(
    _JOBS.c.seq,
    _JOBS.c.project_id,
    _JOBS.c.user_id,
    _JOBS.c.spec,
    _JOBS.c.priority_class,
    _JOBS.c.submit_ms,
    _JOBS.c.state,
).where(_JOBS.c.seq.in_(bindparam("seqs", expanding=True)))
_LOG = insert(_EVENT_LOG)
_CONSUME = delete(_INBOX).where(_INBOX.c.id.in_(bindparam("ids", expanding=True)))
#: any inbox row at all (an idle loop polling for work written by other processes)
_ANY_INBOX = select(_INBOX.c.id).limit(1)
_ESTIMATE = (
    update(_JOBS).where(_JOBS.c.seq == bindparam("b_seq")).values(estimated_start_ms=bindparam("b_est"))
)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def wall_clock() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class CycleReport:
    """What one cycle did (tests read it; the log line prints it)."""

    now: int
    events: int = 0
    decisions: int = 0
    starts: int = 0
    preemptions: int = 0
    finishes: int = 0
    dispatched: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


def _payload(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = dataclasses.asdict(obj)
    return data


def _log_row(now: int, kind: str, type_: str, job_id: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    return {"at_ms": now, "kind": kind, "type": type_, "job_id": job_id, "payload": payload}


class Loop:
    """The live scheduling loop over one database, fleet and set of executors."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        fleet: Fleet,
        config: SchedulerConfig,
        executors: Mapping[str, Executor],
        *,
        log_dir: Path,
        metrics: ServiceMetrics,
        clock: Clock = wall_clock,
        interval_ms: int = 1000,
        min_gap_ms: int = 0,
        terminate_grace_s: float = 10.0,
        reconcile: str = "relaunch",
        reader: sessionmaker[Session] | None = None,
        run_as: Callable[[JobRow], str | None] | None = None,
        fence: Fence | None = None,
        leading: Callable[[], bool] | None = None,
        inbox_poll_ms: int = 0,
    ) -> None:
        self.factory = factory
        #: sessions that read without taking SQLite's write lock (the inbox, job rows)
        self.reader = reader or factory
        self.fleet = fleet
        self.config = config
        self.executors = dict(executors)
        self.log_dir = log_dir
        self.metrics = metrics
        self.clock = clock
        self.interval_ms = interval_ms
        self.min_gap_ms = min_gap_ms
        self.terminate_grace_s = terminate_grace_s
        self.reconcile_policy = reconcile
        #: the Unix account a job runs as (``service/identity.py``), for ``Launch.run_as``
        self.run_as = run_as
        #: the leader lease's fence (None: no lease, as in tests of one in-process loop)
        self.fence = fence
        #: the lease by this process's clock: checked before each dispatched row, so that a
        #: leader paused in the middle of dispatching sends nothing more when it wakes
        self.leading = leading
        self.inbox_poll_ms = inbox_poll_ms
        #: set when the loop stopped because its lease was taken
        self.lease_lost = False
        #: held while the core is used or replaced (a cycle, a rebuild)
        self.lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rebuild_wanted = False
        self._lost: list[ExecutorEvent] = []
        self._last_estimate = -(10**18)
        self._last_tick = -(10**18)
        self._last_cycle_ms = -(10**18)
        self._estimates: dict[str, int | None] = {}
        self.last_cycle_ms: int | None = None
        self.cycles = 0
        #: outbox rows may wait (at start, after a cycle wrote some or a dispatch failed)
        self._outbox_dirty = True
        #: user names by id, for the core's specs (read again when a new user submits)
        self._users: dict[int, str] = {}
        #: the event log's number for the next cycle that logs something
        self._next_cycle = 1
        #: (array seq, task index) of tasks cancelled through the inbox this cycle
        self._task_cancels: list[tuple[int, int]] = []
        self._state: Rebuilt = self._rebuild(self.clock())

    # -- state ------------------------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        return self._state.scheduler

    def _rebuild(self, now: int) -> Rebuilt:
        with self.factory() as s:
            state = rebuild(s, self.fleet, self.config, now)
            last = s.scalars(select(EventLogRow.cycle).order_by(EventLogRow.id.desc()).limit(1)).first()
        self._next_cycle = (last or 0) + 1
        self._estimates = {}
        self._outbox_dirty = True
        return state

    def request_rebuild(self) -> None:
        """The tenancy changed (tenants, allocations): rebuild the core before the next cycle."""
        self._rebuild_wanted = True
        self.wake()

    def executor_for(self, cluster: str) -> Executor:
        ex = self.executors.get(cluster) or self.executors.get("*")
        if ex is None:
            raise LookupError(f"no executor for cluster {cluster!r}")
        return ex

    def _all_executors(self) -> list[Executor]:
        seen: dict[int, Executor] = {}
        for ex in self.executors.values():
            seen.setdefault(id(ex), ex)
        return list(seen.values())

    # -- reconcile on start -----------------------------------------------------------------

    def reconcile(self) -> None:
        """Compare the database with what the executors run (after a restart).

        An allocation the database calls running that no executor runs (and that did not
        just report an exit) is relaunched on the same accelerators or failed, by policy; an
        executor allocation the database does not call running is terminated.
        """
        with self.lock:
            polled: list[ExecutorEvent] = []
            live: set[str] = set()
            for ex in self._all_executors():
                polled.extend(ex.poll())
                live |= ex.allocations()
            self._lost.extend(polled)
            ended = {e.allocation_id for e in polled if isinstance(e, AllocationExited | AllocationFailed)}
            with self.factory() as s:
                pending_launch = {r.allocation_id for r in store.undispatched(s) if r.kind == "launch"}
                rows = {
                    r.allocation_id: r for r in s.scalars(select(JobRow).where(JobRow.state == "running"))
                }
            now = self.clock()
            for aid, run in self._state.running.items():
                if aid in live or aid in ended or aid in pending_launch:
                    continue
                row = rows.get(aid)
                if self.reconcile_policy == "relaunch" and row is not None:
                    log.warning("reconcile: relaunching %s (no executor runs it)", aid)
                    self.executor_for(run.cluster).launch(self._launch_of(row))
                else:
                    log.warning("reconcile: %s is lost (no executor runs it): failing it", aid)
                    self._lost.append(AllocationFailed(aid, now, "lost: no executor ran it after a restart"))
            running_ids = set(self._state.running)
            for ex in self._all_executors():
                for aid in ex.allocations() - running_ids:
                    log.warning("reconcile: terminating %s (the database does not run it)", aid)
                    ex.terminate(aid, self.terminate_grace_s)

    def _launch_of(self, row: JobRow) -> Launch:
        spec = row.spec
        job = store.job_id(row.seq)
        cwd = spec.get("cwd")
        return Launch(
            allocation_id=row.allocation_id or "",
            job_id=job,
            argv=tuple(spec["command"]),
            placement=tuple((str(n), tuple(int(i) for i in ids)) for n, ids in (row.placement or [])),
            log_dir=self.log_dir / job,
            env=dict(spec.get("env", {})),
            cwd=Path(cwd) if cwd else None,
            walltime_s=float(spec.get("walltime_s", 0)),
            run_as=self.run_as(row) if self.run_as is not None else None,
            image=spec.get("image"),
        )

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpupool-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        failed = 0  # cycles failed in a row
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.cycle()
                if failed:
                    log.warning("cycles run again after %d failed", failed)
                failed = 0
            except LeaseLost as e:  # another process leads now: stop, having written nothing
                log.error("the loop stops: %s", e)
                self.lease_lost = True
                return
            except Exception as e:  # keep serving: a failed cycle is logged and retried
                failed += 1
                if not unavailable(e):
                    log.exception("cycle failed")
                elif failed == 1 or failed % 20 == 0:  # an outage: a line, not a traceback a second
                    log.warning("cycle failed: the database is unavailable (%s); retrying", _first_line(e))
            if failed:
                # After failures, back off (doubling, at most OUTAGE_BACKOFF_MAX_S) and retry.
                wait = self.interval_ms / 1000
                self._wake.wait(min(wait * 2 ** min(failed - 1, 6), max(wait, OUTAGE_BACKOFF_MAX_S)))
            else:
                self._wait_for_work(began)
            # Woken early (a submission): let the burst gather for the rest of the minimum
            # gap, so that a thousand submissions a second make a few cycles, not a thousand.
            rest = self.min_gap_ms / 1000 - (time.monotonic() - began)
            if rest > 0:
                self._stop.wait(rest)
            self._wake.clear()

    def _wait_for_work(self, began: float) -> None:
        """Until the interval ends, a wake-up, or (polling) an inbox row from another process."""
        if self.inbox_poll_ms <= 0:
            self._wake.wait(self.interval_ms / 1000)
            return
        end = began + self.interval_ms / 1000
        step = self.inbox_poll_ms / 1000
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or self._wake.wait(min(step, left)):
                return
            try:
                with self.reader() as s:
                    if s.connection().execute(_ANY_INBOX).first() is not None:
                        return
            except Exception:  # the database is away: the next cycle says so
                return

    # -- one cycle --------------------------------------------------------------------------

    def cycle(self) -> CycleReport:
        """Run one cycle now (the thread calls this; tests may call it directly)."""
        with self.lock:
            t0 = time.perf_counter()
            now = self.clock()
            if self._rebuild_wanted:
                self._rebuild_wanted = False  # before: a request made during the rebuild stays
                try:
                    self._state = self._rebuild(now)
                except Exception:
                    self._rebuild_wanted = True  # the database is down: tried again next cycle
                    raise
            report = CycleReport(now)
            ex_events = self._lost
            self._lost = []
            for ex in self._all_executors():
                ex_events.extend(ex.poll())
            try:
                self._decide(now, ex_events, report)
            except LeaseLost:
                self._lost = [e for e in ex_events if not isinstance(e, AllocationStarted)]
                raise
            except Exception:
                self.metrics.cycle_errors.inc()
                # The core may have changed in memory without the database: start again
                # from what was committed (the inbox rows are still there). The executors'
                # events are kept first: a rebuild that fails too (the database is down)
                # must not lose them; it is retried before the next cycle.
                self._lost = [e for e in ex_events if not isinstance(e, AllocationStarted)]
                try:
                    self._state = self._rebuild(self.clock())
                except Exception:
                    self._rebuild_wanted = True
                raise
            report.dispatched = self.dispatch()
            report.seconds = time.perf_counter() - t0
            self.cycles += 1
            self.last_cycle_ms = now
            self.metrics.cycles.inc()
            self.metrics.cycle_seconds.observe(report.seconds)
            self.metrics.observe_core(self.scheduler, now)
            # One line per cycle; idle cycles (nothing in, nothing decided) only at debug level.
            level = logging.INFO if report.events or report.decisions or report.dispatched else logging.DEBUG
            if log.isEnabledFor(level):
                sched = self.scheduler
                log.log(
                    level,
                    "cycle %d: %d events, %d decisions (%d starts, %d preemptions, %d finishes), "
                    "%d dispatched, %d pending, %d running, %.1f ms",
                    self.cycles,
                    report.events,
                    report.decisions,
                    report.starts,
                    report.preemptions,
                    report.finishes,
                    report.dispatched,
                    sched.pending_count,
                    len(sched.running),
                    report.seconds * 1000,
                )
            return report

    def _decide(self, now: int, ex_events: Sequence[ExecutorEvent], report: CycleReport) -> None:
        """Read, decide, then write: the write transaction holds no scheduling work.

        The inbox and job rows are read without the write lock (on SQLite, a writer's
        ``BEGIN IMMEDIATE`` would make every submission wait for the core's pass); only the
        loop changes job rows, so what it read is still true when it writes.
        """
        state = self._state
        sched = state.scheduler
        log_rows: list[dict[str, Any]] = state.take_marker(now)  # a rebuild logs its restore point first
        events: list[Event] = []
        finishes: dict[str, tuple[str, int | None, str]] = {}  # alloc -> (state, exit, detail)
        # engine start/end of allocations whose engine bills (Slurm: sacct); see _engine_usage
        engine_times: dict[str, list[int | None]] = {}
        # Node changes go after this poll's finishes: a job that ended just before its node
        # went down has ended; requeued first, it would run a second time.
        node_events: list[Event] = []
        for e in ex_events:
            log_rows.append(_log_row(now, "executor", type(e).__name__, None, _payload(e)))
            if isinstance(e, NodeChanged):
                # The engine's own node states (Slurm DOWN/DRAIN): a down node's work is
                # requeued by the core. Only fleet nodes: the core refuses unknown names.
                if e.node in self.fleet.node_by_name:
                    node_event: Event = (
                        NodeDown(e.node)
                        if e.state == "down"
                        else NodeDrained(e.node)
                        if e.state == "drained"
                        else NodeUp(e.node)
                    )
                    node_events.append(node_event)
                continue
            if isinstance(e, AllocationStarted):
                if self._bills(e.allocation_id):
                    engine_times.setdefault(e.allocation_id, [None, None])[0] = e.at_ms
                continue
            run = state.running.get(e.allocation_id)
            if run is None or e.allocation_id in finishes:
                continue  # stale: we stopped it ourselves (preemption, cancel)
            outcome, job_state, exit_code, detail = self._outcome(e)
            if self._bills(e.allocation_id):
                engine_times.setdefault(e.allocation_id, [None, None])[1] = e.at_ms
            finishes[e.allocation_id] = (job_state, exit_code, detail)
            events.append(JobFinished(run.job or store.job_id(run.seq), run.core_allocation_id, outcome))
        events.extend(node_events)
        events.extend(state.replay)  # pending jobs the rebuild could not restore
        state.replay = []
        cancelled_pending, inbox_ids = self._read_inbox(events)
        if self.config.round_ms > 0 and now - self._last_tick >= self.config.round_ms:
            events.append(Tick())  # round-based policies (las) re-rank as service accrues
            self._last_tick = now
        if sched.state.advance.boundary_between(self._last_cycle_ms, now):
            events.append(Tick())  # an advance reservation's window opened or closed (ADR 0020)
        self._last_cycle_ms = now
        # The core is called when something happened (as in the twin, which calls it only
        # at events), and once after a rebuild (restored pending jobs are decided on at
        # once). An idle cycle costs a poll and an inbox read, not a scheduling pass.
        decisions: list[Decision] = []
        if events or state.cycle_due:
            decisions = sched.handle(events, now)
            state.cycle_due = False
        report.events = len(events)
        report.decisions = len(decisions)
        for ev in events:
            log_rows.append(_log_row(now, "event", type(ev).__name__, about(ev), encode(ev)))
        for d in decisions:
            name = type(d).__name__
            log_rows.append(_log_row(now, "decision", name, d.job_id, encode(d)))
            report.counts[name] = report.counts.get(name, 0) + 1
            self.metrics.decisions.labels(name).inc()
        estimates = self._estimate(now, bool(decisions) or bool(events))
        if not (log_rows or inbox_ids or estimates):
            return  # an idle cycle writes nothing
        with self.factory.begin() as s:
            if self.fence is not None:
                self.fence(s)  # before any write: a loop that lost its lease writes nothing
            if log_rows:
                # One executemany of plain rows (no ORM objects); ``cycle`` groups the events
                # and decisions of one ``handle`` call (a replay feeds them back together).
                cycle = self._next_cycle
                self._next_cycle += 1
                for entry in log_rows:
                    entry["cycle"] = cycle
                s.connection().execute(_LOG, log_rows)
            self._apply(s, now, decisions, finishes, cancelled_pending, {}, report)
            self._engine_usage(s, now, engine_times)
            if inbox_ids:
                # Exactly the rows read: on PostgreSQL a row with a smaller id may commit after
                # this cycle read the inbox, and must wait for the next cycle, not vanish.
                s.connection().execute(_CONSUME, {"ids": inbox_ids})
            if estimates:
                s.connection().execute(_ESTIMATE, estimates)

    def _read_inbox(self, events: list[Event]) -> tuple[list[int], list[int]]:
        """Turn the inbox into events (appended); (pending jobs cancelled, inbox ids read)."""
        state = self._state
        self._task_cancels = []
        with self.reader() as s:
            inbox = store.inbox(s, INBOX_BATCH)
            if not inbox:
                return [], []
            seqs = sorted({r.job_seq for r in inbox if r.job_seq is not None})
            rows: dict[int, Any] = {}
            if seqs:
                # plain rows of the columns needed, not ORM objects: a burst brings thousands
                rows = {r.seq: r for r in s.connection().execute(_SPECS, {"seqs": seqs})}
            users = self._users
            cancelled_pending: list[int] = []
            read: list[int] = []
            for r in inbox:
                read.append(r.id)
                if r.kind == "rebuild":
                    # Another process changed the tenancy: what follows in the inbox (a
                    # submission to a new project) waits for the core rebuilt next cycle.
                    self._rebuild_wanted = True
                    self._wake.set()
                    break
                if r.kind == "submit" and r.job_seq in rows:
                    row = rows[r.job_seq]
                    jid = store.job_id(row.seq)
                    if row.state != "pending" or jid in state.known:
                        continue
                    if row.user_id not in users:  # a new user (names never change)
                        users = self._users = {k: v for k, v in s.execute(select(UserRow.id, UserRow.name))}
                    events.append(JobSubmitted(core_spec_of(row, state.paths, users)))
                    state.known.add(jid)
                elif r.kind == "cancel" and r.job_seq in rows:
                    row = rows[r.job_seq]
                    jid = store.job_id(row.seq)
                    if row.state in store.ACTIVE_STATES and jid in state.known:
                        events.append(JobCancelled(jid))
                        if row.state == "pending":
                            cancelled_pending.append(row.seq)
                elif r.kind in ("drain", "down") and r.node in self.fleet.node_by_name:
                    events.append(NodeDrained(r.node))
                elif r.kind == "undrain" and r.node in self.fleet.node_by_name:
                    events.append(NodeUp(r.node))
                elif r.kind == "cancel-task" and r.job_seq in rows and r.node and r.node.isdigit():
                    events.append(JobCancelled(f"{store.job_id(r.job_seq)}_{r.node}"))  # one task of an array
                    self._task_cancels.append((r.job_seq, int(r.node)))
            job_dependencies.settle(s.connection(), events)  # targets that already ended
            return cancelled_pending, read

    def _bills(self, allocation_id: str) -> bool:
        """Whether the allocation's engine keeps its own accounting (Slurm), which then bills."""
        run = self._state.running.get(allocation_id)
        if run is None:
            return False
        ex = self.executors.get(run.cluster) or self.executors.get("*")
        return ex is not None and ex.backend != "local"

    @staticmethod
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

    @staticmethod
    def _outcome(e: ExecutorEvent) -> tuple[str, str, int | None, str]:
        """(core outcome, job state, exit code, detail) of an exit or failure."""
        if isinstance(e, AllocationFailed):
            return "failed", "failed", None, e.reason
        assert isinstance(e, AllocationExited)
        if e.succeeded:
            return "completed", "completed", 0, ""
        if e.cause == "walltime":
            return "timeout", "failed", e.exit_code, "killed at its walltime"
        if e.exit_code is None and e.signal is None:
            return "failed", "failed", None, "exit status unknown (the process was adopted after a restart)"
        if e.signal is not None:
            return "failed", "failed", None, f"killed by signal {e.signal}"
        return "failed", "failed", e.exit_code, f"exited with status {e.exit_code}"

    def _apply(
        self,
        s: Session,
        now: int,
        decisions: Iterable[Decision],
        finishes: Mapping[str, tuple[str, int | None, str]],
        cancelled_pending: Iterable[int],
        rows: dict[int, JobRow],
        report: CycleReport,
    ) -> None:
        """Job rows, usage and outbox for this cycle's finishes and decisions."""
        state = self._state
        decisions = list(decisions)
        need = {state.running[a].seq for a in finishes}
        need |= {sq for d in decisions if (sq := store.job_seq(d.job_id)) is not None}
        need |= set(cancelled_pending)
        missing = sorted(need - set(rows))
        if missing:
            rows.update({r.seq: r for r in s.scalars(select(JobRow).where(JobRow.seq.in_(missing)))})
        usage: dict[str, UsageRow] = {}
        closing = [a for a in finishes] + [
            a for d in decisions if isinstance(d, Preempt | Stop) for a in [self._service_alloc(d)] if a
        ]
        if closing:
            usage = {
                u.allocation_id: u
                for u in s.scalars(select(UsageRow).where(UsageRow.allocation_id.in_(closing)))
            }

        def close(aid: str) -> None:
            u = usage.get(aid)
            if u is not None and u.end_ms is None:
                u.end_ms = now

        touched: set[int] = set()  # job arrays whose tasks changed (``array_tasks``)
        for aid, (job_state, exit_code, detail) in finishes.items():
            run = state.running.pop(aid)
            if run.job:  # a task of a job array
                touched.add(array_tasks.finished(s, run, job_state, exit_code, detail, now))
                close(aid)
                report.finishes += 1
                continue
            row = rows[run.seq]
            self._stop_row(row, now)
            row.state, row.exit_code, row.end_ms = job_state, exit_code, now
            row.reason, row.detail = ("completed" if job_state == "completed" else "failed"), detail
            close(aid)
            state.known.discard(store.job_id(run.seq))
            report.finishes += 1
        for pending_seq in cancelled_pending:
            gone = rows[pending_seq]
            if gone.state == "pending":
                gone.state, gone.reason, gone.detail, gone.end_ms = "cancelled", "cancelled", "", now
                gone.estimated_start_ms = None
                state.known.discard(store.job_id(pending_seq))
        for d in decisions:
            seq = store.job_seq(d.job_id)
            if seq is None and array_tasks.task_of(d.job_id) is not None:
                array_tasks.decide(self, s, d, now, close, report, touched)
                continue
            found = rows.get(seq) if seq is not None else None
            if found is None:  # pragma: no cover - the core only decides about jobs we gave it
                log.error("decision for unknown job %s", d.job_id)
                continue
            row = found
            if isinstance(d, Start):
                self._start(s, row, d, now)
                report.starts += 1
            elif isinstance(d, Preempt | Stop):
                aid = self._service_alloc(d)
                state.running.pop(aid, None)
                close(aid)
                self._stop_row(row, now)
                if isinstance(d, Preempt):
                    row.state, row.reason = "pending", "preempted"
                    row.detail = f"{d.reason.value}: {d.detail}" if d.detail else d.reason.value
                    row.preemptions += 1
                    report.preemptions += 1
                else:
                    row.state, row.reason, row.detail, row.end_ms = "cancelled", "cancelled", "", now
                    state.known.discard(d.job_id)
                self._outbox_dirty = True
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
                row.state, row.reason, row.detail, row.end_ms = "rejected", d.reason.value, d.detail, now
                state.known.discard(d.job_id)
            elif isinstance(d, Explain):
                if row.state == "pending":
                    row.reason, row.detail = d.reason.value, d.detail
            elif isinstance(d, Reserve):
                row.estimated_start_ms = d.start_ms
        array_tasks.cancelled(s, self, self._task_cancels, now, touched)
        self._task_cancels = []
        if touched:
            array_tasks.refresh(s, self.scheduler, touched, state.known, now)

    def _service_alloc(self, d: Preempt | Stop) -> str:
        """The service's id of the allocation the core calls ``d.allocation_id``."""
        seq = store.job_seq(d.job_id)
        for aid, run in self._state.running.items():
            if run.seq == seq and run.core_allocation_id == d.allocation_id:
                return aid
        return ""

    @staticmethod
    def _stop_row(row: JobRow, now: int) -> None:
        """Account the run that ends now (run time and attained service, as the core does)."""
        if row.state == "running" and row.start_ms is not None:
            ran = max(0, now - row.start_ms)
            row.run_ms += ran
            row.attained += float(ran * int(row.spec["gpus"]))

    def _start(self, s: Session, row: JobRow, d: Start, now: int) -> None:
        row.attempt += 1
        aid = store.allocation_id(row.seq, row.attempt)
        row.state, row.allocation_id, row.cluster, row.model = "running", aid, d.cluster, d.model
        row.placement = [[n, list(ids)] for n, ids in d.placement]
        row.start_ms, row.reason, row.detail, row.estimated_start_ms = now, "running", "", None
        self._state.running[aid] = Running(row.seq, aid, d.allocation_id, d.cluster)
        s.add(
            UsageRow(
                job_seq=row.seq,
                allocation_id=aid,
                project_id=row.project_id,
                model=d.model,
                workload_class=str(row.spec.get("workload_class", "default")),
                gpus=int(row.spec["gpus"]),
                start_ms=now,
            )
        )
        launch = self._launch_of(row)
        payload = {
            "job_id": launch.job_id,
            "argv": list(launch.argv),
            "placement": row.placement,
            "log_dir": str(launch.log_dir),
            "env": dict(launch.env),
            "cwd": str(launch.cwd) if launch.cwd else None,
            "walltime_s": launch.walltime_s,
            "run_as": launch.run_as,
            "image": launch.image,
        }
        self._outbox_dirty = True
        s.add(
            OutboxRow(
                kind="launch",
                allocation_id=aid,
                job_seq=row.seq,
                cluster=d.cluster,
                payload=payload,
                created_ms=now,
            )
        )

    def _estimate(self, now: int, changed: bool) -> list[dict[str, Any]]:
        """Estimated starts that moved, as ``b_seq``/``b_est`` rows to write.

        After a change at once (explain must reflect it) while the queue is short; with a long
        queue (a burst of submissions) at most every ``ESTIMATE_EVERY_MS``, since the estimate
        walks the whole queue and each cycle would redo it. Without a change now and then too:
        estimates move with time even when nothing happens.
        """
        at_once = changed and self.scheduler.pending_count <= ESTIMATE_AT_ONCE_BELOW
        if not at_once and now - self._last_estimate < ESTIMATE_EVERY_MS:
            return []
        self._last_estimate = now
        est = self.scheduler.estimate_starts(now) if self.scheduler.pending_count else {}
        updates = []
        for jid, t in est.items():
            if self._estimates.get(jid, -1) != t:
                seq = store.job_seq(jid)
                if seq is not None:
                    updates.append({"b_seq": seq, "b_est": t})
        self._estimates = est
        return updates

    # -- dispatch ---------------------------------------------------------------------------

    def dispatch(self) -> int:
        """Send undispatched outbox rows to their executors, marking each as it goes.

        The rows an executor took are marked dispatched together, in one transaction per
        ``DISPATCH_MARK_BATCH``: a crash re-sends at most that many, and launch and terminate
        are idempotent by allocation id. (One transaction per row queued each mark behind
        the API's writers: on the national fleet, where every submission starts at once, the
        loop spent ~8 ms per start waiting and fell behind a burst.) A launch whose terminate
        is also waiting is not sent at all: the allocation was preempted or cancelled before
        it ever ran.
        """
        if not self._outbox_dirty:
            return 0  # nothing was written to the outbox since it was last emptied
        if self.fence is not None:
            with self.factory.begin() as s:
                self.fence(s)  # a loop that lost its lease sends nothing
        with self.factory() as s:
            rows = store.undispatched(s)
        self._outbox_dirty = False
        if not rows:
            return 0
        stopped = {r.allocation_id for r in rows if r.kind == "terminate"}
        sent = 0
        marks: list[int] = []
        for r in rows:
            if self.leading is not None and not self.leading():
                log.warning("dispatch paused: the leader lease was not renewed in time")
                self._outbox_dirty = True  # the rest waits for a renewal (or for the next leader)
                break
            try:
                if r.kind == "launch" and r.allocation_id not in stopped:
                    self.executor_for(r.cluster).launch(self._launch_from_outbox(r))
                elif r.kind == "terminate":
                    grace = float(r.payload.get("grace_s", self.terminate_grace_s))
                    self.executor_for(r.cluster).terminate(r.allocation_id, grace)
            except Exception:  # one broken executor must not stop the others; retried next cycle
                log.exception("dispatching %s %s failed", r.kind, r.allocation_id)
                self._outbox_dirty = True
                continue
            marks.append(r.id)
            sent += 1
            if len(marks) >= DISPATCH_MARK_BATCH:
                self._mark_dispatched(marks)
                marks = []
        if marks:
            self._mark_dispatched(marks)
        return sent

    def _mark_dispatched(self, ids: list[int]) -> None:
        with self.factory.begin() as s:
            if self.fence is not None:
                self.fence(s)
            s.execute(update(OutboxRow).where(OutboxRow.id.in_(ids)).values(dispatched_ms=self.clock()))

    @staticmethod
    def _launch_from_outbox(r: OutboxRow) -> Launch:
        p = r.payload
        return Launch(
            allocation_id=r.allocation_id,
            job_id=str(p["job_id"]),
            argv=tuple(p["argv"]),
            placement=tuple((str(n), tuple(int(i) for i in ids)) for n, ids in p["placement"]),
            log_dir=Path(p["log_dir"]),
            env=dict(p.get("env") or {}),
            cwd=Path(p["cwd"]) if p.get("cwd") else None,
            walltime_s=float(p.get("walltime_s") or 0),
            run_as=str(p["run_as"]) if p.get("run_as") else None,
            image=str(p["image"]) if p.get("image") else None,
        )
