"""Job arrays in the service: task rows, task decisions, the array's own state (ADR 0019).

This module owns what the loop's journal writes for a task of a job array
(``gpupool.core.job_arrays``): an array is one ``JobRow`` (its stored spec's ``array`` holds
the text of Slurm's ``--array``), and the core decides about its tasks by ids ``ARRAY_INDEX``
(``j7_3``). A task gets a ``JobTaskRow`` when the loop first decides about it (a start, a
rejection, a cancellation); its allocation is ``j7_3.N``, its launch order
(``LaunchOrders.of_task``) has its own log directory ``j7_3`` and an environment carrying
``GPUPOOL_ARRAY_TASK_ID`` (and ``GPUPOOL_ARRAY_JOB_ID``). The array row is ``pending`` until a
task starts, ``running`` while the core holds the array, then ``completed`` (every task
completed), ``failed`` (one failed or was rejected) or ``cancelled``.

``TaskJournal`` is lent the journal's transaction, allocation index and usage for one cycle
(``gpupool.service.journal``); it writes nothing outside that transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.array_spec import parse_array
from gpupool.core.decisions import Decision, Explain, Preempt, Reject, Start, Stop
from gpupool.core.scheduler import Scheduler
from gpupool.service import store
from gpupool.service.allocation_index import AllocationIndex, Running
from gpupool.service.db import JobRow, JobTaskRow, OutboxRow, UsageRow
from gpupool.service.job_status import JobStatus
from gpupool.service.launch_order import LaunchOrders, payload


def task_of(job_id: str) -> tuple[int, int] | None:
    """(array seq, task index) of a task id ``jSEQ_INDEX``, else None."""
    head, sep, index = job_id.rpartition("_")
    if not sep or not index.isdigit() or len(index) > 9:
        return None
    seq = store.job_seq(head)
    return None if seq is None else (seq, int(index))


def size(row: JobRow) -> int:
    return len(parse_array(row.stored.array).indices)


def _task(s: Session, seq: int, idx: int) -> JobTaskRow:
    t = s.get(JobTaskRow, (seq, idx))
    if t is None:
        t = JobTaskRow(array_seq=seq, idx=idx, state=JobStatus.PENDING, attempt=0, reason="queued", detail="")
        s.add(t)
    return t


@dataclass(slots=True)
class TaskJournal:
    """The journal's writes about tasks of job arrays in one cycle's transaction."""

    s: Session
    now: int
    #: the loop's running allocations (tasks included: ``Running.job``), kept in step
    running: AllocationIndex
    orders: LaunchOrders
    terminate_grace_s: float
    #: closes an allocation's open usage interval (the journal's, loaded for this cycle)
    close: Callable[[str], None]
    #: job arrays whose tasks changed this cycle (their own state is refreshed at the end)
    touched: set[int] = field(default_factory=set)
    #: whether an outbox row was written
    wrote: bool = False

    def finished(self, run: Running, state: JobStatus, exit_code: int | None, detail: str) -> None:
        """A task's allocation ended on its own (``run`` is no longer in the index)."""
        got = task_of(run.job)
        assert got is not None
        t = _task(self.s, *got)
        t.state, t.exit_code, t.end_ms = state, exit_code, self.now
        t.reason, t.detail = ("completed" if state == JobStatus.COMPLETED else "failed"), detail
        self.close(run.allocation_id)
        self.touched.add(got[0])

    def decide(self, d: Decision) -> bool:
        """Apply a decision if it is about a task (its row, its allocation, the outbox); whether it was."""
        got = task_of(d.job_id)
        if got is None:
            return False
        seq, idx = got
        s = self.s
        arr = s.get(JobRow, seq)
        if arr is None:  # pragma: no cover - the core only decides about arrays we gave it
            return True
        self.touched.add(seq)
        if isinstance(d, Explain):
            if arr.state == JobStatus.PENDING:  # the array waits as its next task does
                arr.reason, arr.detail = d.reason.value, d.detail
            return True
        t = _task(s, seq, idx)
        if isinstance(d, Start):
            self._start(arr, t, d)
        elif isinstance(d, Preempt | Stop):
            aid = self.running.service_id(d.allocation_id)  # one lookup (ADR 0012)
            self.running.pop(aid)
            self.close(aid)
            if isinstance(d, Preempt):
                t.state, t.reason, t.detail = JobStatus.PENDING, "preempted", d.reason.value
            else:
                t.state, t.reason, t.end_ms = JobStatus.CANCELLED, "cancelled", self.now
            s.add(
                OutboxRow(
                    kind="terminate",
                    allocation_id=aid,
                    job_seq=seq,
                    cluster=t.cluster or "",
                    payload={"grace_s": self.terminate_grace_s},
                    created_ms=self.now,
                )
            )
            self.wrote = True
        elif isinstance(d, Reject):
            t.state, t.reason, t.detail, t.end_ms = JobStatus.REJECTED, d.reason.value, d.detail, self.now
        return True

    def _start(self, arr: JobRow, t: JobTaskRow, d: Start) -> None:
        now = self.now
        t.attempt += 1
        aid = f"{d.job_id}.{t.attempt}"
        t.state, t.allocation_id, t.cluster, t.model, t.start_ms = (
            JobStatus.RUNNING,
            aid,
            d.cluster,
            d.model,
            now,
        )
        t.placement = [[n, list(ids)] for n, ids in d.placement]
        t.reason, t.detail = "running", ""
        if arr.state == JobStatus.PENDING:
            arr.state, arr.reason, arr.detail = JobStatus.RUNNING, "running", ""
            arr.estimated_start_ms, arr.queue_position, arr.queue_pool = None, None, None
            arr.start_ms = arr.start_ms or now
        self.running.add(Running(arr.seq, aid, d.allocation_id, d.cluster, job=d.job_id))
        spec = arr.stored
        self.s.add(
            UsageRow(
                job_seq=arr.seq,
                allocation_id=aid,
                project_id=arr.project_id,
                model=d.model,
                workload_class=spec.workload_class,
                gpus=spec.gpus,
                start_ms=now,
            )
        )
        launch = self.orders.of_task(arr, t.idx, aid, t.placement)
        self.s.add(
            OutboxRow(
                kind="launch",
                allocation_id=aid,
                job_seq=arr.seq,
                cluster=d.cluster,
                payload=payload(launch),
                created_ms=now,
            )
        )
        self.wrote = True

    def end(self, sched: Scheduler, known: set[str], cancels: Iterable[tuple[int, int]]) -> None:
        """After the cycle's decisions: tasks cancelled through the inbox, then arrays' own state."""
        self._cancelled(cancels)
        if self.touched:
            refresh(self.s, sched, self.touched, known, self.now)

    def _cancelled(self, tasks: Iterable[tuple[int, int]]) -> None:
        """Tasks cancelled through the API that hold no allocation: their rows say so."""
        running = {r.job for r in self.running.values() if r.job}
        for seq, idx in tasks:
            if f"{store.job_id(seq)}_{idx}" in running:
                continue  # its Stop decision ends it
            t = _task(self.s, seq, idx)
            if t.state == JobStatus.PENDING:
                t.state, t.reason, t.end_ms = JobStatus.CANCELLED, "cancelled", self.now
                self.touched.add(seq)


def refresh(s: Session, sched: Scheduler, seqs: Iterable[int], known: set[str], now: int) -> None:
    """Arrays the core no longer holds are over: their row's final state from their tasks."""
    for seq in sorted(seqs):
        jid = store.job_id(seq)
        arr = s.get(JobRow, seq)
        if arr is None or arr.state not in store.ACTIVE_STATES:
            continue
        if jid in sched.arrays.arrays or jid in sched.held:
            continue
        states = list(s.scalars(select(JobTaskRow.state).where(JobTaskRow.array_seq == seq)))
        if states.count(JobStatus.COMPLETED) == size(arr):
            arr.state, arr.reason = JobStatus.COMPLETED, "completed"
        elif any(x in (JobStatus.FAILED, JobStatus.REJECTED) for x in states):
            arr.state, arr.reason = JobStatus.FAILED, "failed"
        else:
            arr.state, arr.reason = JobStatus.CANCELLED, "cancelled"
        arr.end_ms, arr.estimated_start_ms = now, None
        arr.queue_position, arr.queue_pool = None, None
        known.discard(jid)
