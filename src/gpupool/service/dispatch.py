"""The loop's dispatch: outbox rows to executors, after the journal committed them.

This module owns ``Dispatcher``. ``send`` hands undispatched outbox rows to their executors
(which never block) and marks them dispatched; a crash before the mark re-sends them on start,
which is safe because launch and terminate are idempotent by allocation id. Behind a leader
lease the fence runs first (a loop whose lease was taken sends nothing) and the lease is
checked before each row (a leader paused in the middle sends nothing more when it wakes).
``reconcile`` compares the database with what the executors run after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gpupool.service import store
from gpupool.service.allocation_index import AllocationIndex
from gpupool.service.db import JobRow, OutboxRow
from gpupool.service.executor_set import ExecutorSet
from gpupool.service.executors.base import AllocationExited, AllocationFailed, ExecutorEvent
from gpupool.service.job_status import JobStatus
from gpupool.service.launch_order import LaunchOrders, from_outbox

log = logging.getLogger("gpupool.service.loop")
#: outbox rows marked dispatched per transaction (at most this many are re-sent after a crash)
DISPATCH_MARK_BATCH = 500
Fence = Callable[[Session], None]


class Dispatcher:
    """Sends the outbox to the executors."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        executors: ExecutorSet,
        orders: LaunchOrders,
        clock: Callable[[], int],
        *,
        terminate_grace_s: float = 10.0,
        reconcile: str = "relaunch",
        fence: Fence | None = None,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        self.factory = factory
        self.executors = executors
        self.orders = orders
        self.clock = clock
        self.terminate_grace_s = terminate_grace_s
        self.reconcile_policy = reconcile
        self.fence = fence
        #: the lease by this process's clock, checked before each row
        self.leading = leading
        #: outbox rows may wait (at start, after a cycle wrote some or a dispatch failed)
        self.dirty = True

    def send(self) -> int:
        """Send undispatched outbox rows to their executors, marking each as it goes.

        The rows an executor took are marked dispatched together, in one transaction per
        ``DISPATCH_MARK_BATCH``: a crash re-sends at most that many. (One transaction per row
        queued each mark behind the API's writers: on the national fleet, where every
        submission starts at once, the loop spent ~8 ms per start waiting and fell behind a
        burst.) A launch whose terminate is also waiting is not sent at all: the allocation
        was preempted or cancelled before it ever ran.
        """
        if not self.dirty:
            return 0  # nothing was written to the outbox since it was last emptied
        if self.fence is not None:
            with self.factory.begin() as s:
                self.fence(s)  # a loop that lost its lease sends nothing
        with self.factory() as s:
            rows = store.undispatched(s)
        self.dirty = False
        if not rows:
            return 0
        stopped = {r.allocation_id for r in rows if r.kind == "terminate"}
        sent = 0
        marks: list[int] = []
        for r in rows:
            if self.leading is not None and not self.leading():
                log.warning("dispatch paused: the leader lease was not renewed in time")
                self.dirty = True  # the rest waits for a renewal (or for the next leader)
                break
            try:
                if r.kind == "launch" and r.allocation_id not in stopped:
                    self.executors.for_cluster(r.cluster).launch(from_outbox(r))
                elif r.kind == "terminate":
                    grace = float(r.payload.get("grace_s", self.terminate_grace_s))
                    self.executors.for_cluster(r.cluster).terminate(r.allocation_id, grace)
            except Exception:  # one broken executor must not stop the others; retried next cycle
                log.exception("dispatching %s %s failed", r.kind, r.allocation_id)
                self.dirty = True
                continue
            marks.append(r.id)
            sent += 1
            if len(marks) >= DISPATCH_MARK_BATCH:
                self._mark(marks)
                marks = []
        if marks:
            self._mark(marks)
        return sent

    def _mark(self, ids: list[int]) -> None:
        with self.factory.begin() as s:
            if self.fence is not None:
                self.fence(s)
            s.execute(update(OutboxRow).where(OutboxRow.id.in_(ids)).values(dispatched_ms=self.clock()))

    def reconcile(self, running: AllocationIndex) -> list[ExecutorEvent]:
        """Compare the database with what the executors run (after a restart).

        An allocation the database calls running that no executor runs (and that did not
        just report an exit) is relaunched on the same accelerators or failed, by policy; an
        executor allocation the database does not call running is terminated. Returns the
        events for the next cycle: what the executors reported, and the failures of lost
        allocations.
        """
        polled: list[ExecutorEvent] = []
        live: set[str] = set()
        for ex in self.executors.distinct():
            polled.extend(ex.poll())
            live |= ex.allocations()
        ended = {e.allocation_id for e in polled if isinstance(e, AllocationExited | AllocationFailed)}
        with self.factory() as s:
            pending_launch = {r.allocation_id for r in store.undispatched(s) if r.kind == "launch"}
            rows = {
                r.allocation_id: r for r in s.scalars(select(JobRow).where(JobRow.state == JobStatus.RUNNING))
            }
        now = self.clock()
        for run in running.values():
            aid = run.allocation_id
            if aid in live or aid in ended or aid in pending_launch:
                continue
            row = rows.get(aid)
            if self.reconcile_policy == "relaunch" and row is not None:
                log.warning("reconcile: relaunching %s (no executor runs it)", aid)
                self.executors.for_cluster(run.cluster).launch(self.orders.of_row(row))
            else:
                log.warning("reconcile: %s is lost (no executor runs it): failing it", aid)
                polled.append(AllocationFailed(aid, now, "lost: no executor ran it after a restart"))
        for ex in self.executors.distinct():
            for aid in ex.allocations() - set(running):
                log.warning("reconcile: terminating %s (the database does not run it)", aid)
                ex.terminate(aid, self.terminate_grace_s)
        return polled
