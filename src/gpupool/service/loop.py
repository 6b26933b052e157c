"""The live loop: a thin driver of intake -> ``Scheduler.handle`` -> journal -> dispatch.

This module owns ``Loop``: the thread, the core (rebuilt from the database on start and after
a failed cycle) and the order of the three parts (ADR 0012). A cycle

1. polls the executors and reads the inbox (``gpupool.service.intake``: finishes before
   arrivals, nothing written) and, if anything happened, calls ``Scheduler.handle(events, now)``;
2. writes the event log, job rows, usage, outbox and the consumed inbox in ONE transaction
   (``gpupool.service.journal``);
3. only then sends undispatched outbox rows to the executors and marks them dispatched
   (``gpupool.service.dispatch``); a crash before that re-sends them on start (launch is
   idempotent by allocation id);
4. logs one line and updates the metrics.

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

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpupool.core.decisions import Decision
from gpupool.core.fleet import Fleet
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.service.db import InboxRow, JobRow, unavailable
from gpupool.service.dispatch import Dispatcher
from gpupool.service.executor_set import ExecutorSet
from gpupool.service.executors.base import AllocationStarted, Executor, ExecutorEvent
from gpupool.service.intake import Intake
from gpupool.service.journal import Fence, Journal
from gpupool.service.launch_order import LaunchOrders
from gpupool.service.leader import LeaseLost
from gpupool.service.metrics import ServiceMetrics
from gpupool.service.rebuild import Rebuilt, rebuild

__all__ = ["Clock", "CycleReport", "Fence", "Loop", "wall_clock"]

log = logging.getLogger("gpupool.service.loop")
Clock = Callable[[], int]
#: the longest wait between retries while cycles fail (the database is down or locked)
OUTAGE_BACKOFF_MAX_S = 5.0
#: any inbox row at all (an idle loop polling for work written by other processes)
_ANY_INBOX = select(InboxRow.id).limit(1)


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
        self.metrics = metrics
        self.clock = clock
        self.interval_ms = interval_ms
        self.min_gap_ms = min_gap_ms
        self.inbox_poll_ms = inbox_poll_ms
        executor_set = ExecutorSet(self.executors)
        orders = LaunchOrders(log_dir, run_as)
        self.intake = Intake(self.reader, fleet, executor_set, config.round_ms)
        self.journal = Journal(factory, orders, terminate_grace_s=terminate_grace_s, fence=fence)
        self.dispatcher = Dispatcher(
            factory,
            executor_set,
            orders,
            clock,
            terminate_grace_s=terminate_grace_s,
            reconcile=reconcile,
            fence=fence,
            leading=leading,
        )
        #: set when the loop stopped because its lease was taken
        self.lease_lost = False
        #: held while the core is used or replaced (a cycle, a rebuild)
        self.lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rebuild_wanted = False
        #: executor events taken but not yet journalled (a failed cycle, reconcile)
        self._lost: list[ExecutorEvent] = []
        self.last_cycle_ms: int | None = None
        self.cycles = 0
        self._state: Rebuilt = self._rebuild(self.clock())

    # -- state ------------------------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        return self._state.scheduler

    def _rebuild(self, now: int) -> Rebuilt:
        with self.factory() as s:
            state = rebuild(s, self.fleet, self.config, now)
            self.journal.reset(s)
        self.dispatcher.dirty = True
        return state

    def request_rebuild(self) -> None:
        """The tenancy changed (tenants, allocations): rebuild the core before the next cycle."""
        self._rebuild_wanted = True
        self.wake()

    def reconcile(self) -> None:
        """Compare the database with what the executors run (after a restart): see
        ``Dispatcher.reconcile``; what they reported is taken in by the next cycle."""
        with self.lock:
            self._lost.extend(self.dispatcher.reconcile(self._state.running))

    def dispatch(self) -> int:
        """Send undispatched outbox rows to their executors (``Dispatcher.send``)."""
        return self.dispatcher.send()

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
            ex_events.extend(self.intake.poll())
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

    def _decide(self, now: int, ex_events: list[ExecutorEvent], report: CycleReport) -> None:
        """Intake, the core, then the journal: the write transaction holds no scheduling work."""
        state = self._state
        got = self.intake.take(state, now, ex_events)
        if got.rebuild_wanted:
            self._rebuild_wanted = True
            self._wake.set()
        # The core is called when something happened (as in the twin, which calls it only
        # at events), and once after a rebuild (restored pending jobs are decided on at
        # once). An idle cycle costs a poll and an inbox read, not a scheduling pass.
        decisions: list[Decision] = []
        if got.events or state.cycle_due:
            decisions = state.scheduler.handle(got.events, now)
            state.cycle_due = False
        report.events = len(got.events)
        report.decisions = len(decisions)
        report.finishes = len(got.finishes)
        for d in decisions:
            name = type(d).__name__
            report.counts[name] = report.counts.get(name, 0) + 1
            self.metrics.decisions.labels(name).inc()
        report.starts = report.counts.get("Start", 0)
        report.preemptions = report.counts.get("Preempt", 0)
        if self.journal.record(state, now, got, decisions):
            self.dispatcher.dirty = True
