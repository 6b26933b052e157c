"""Job arrays in the service: task rows, task decisions, the array's own state (ADR 0019).

This module owns what the loop does with a task of a job array (``gpupool.core.job_arrays``):
an array is one ``JobRow`` (its ``spec`` holds ``array``, the text of Slurm's ``--array``),
and the core decides about its tasks by ids ``ARRAY_INDEX`` (``j7_3``). A task gets a
``JobTaskRow`` when the loop first decides about it (a start, a rejection, a cancellation);
its allocation is ``j7_3.N``, its log directory ``j7_3``, and its environment carries
``GPUPOOL_ARRAY_TASK_ID`` (and ``GPUPOOL_ARRAY_JOB_ID``). The array row is ``pending`` until a
task starts, ``running`` while the core holds the array, then ``completed`` (every task
completed), ``failed`` (one failed or was rejected) or ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.array_spec import parse_array
from gpupool.core.decisions import Decision, Explain, Preempt, Reject, Start, Stop
from gpupool.core.scheduler import Scheduler
from gpupool.service import store
from gpupool.service.db import JobRow, JobTaskRow, OutboxRow, UsageRow
from gpupool.service.rebuild import Running

if TYPE_CHECKING:
    from gpupool.service.loop import CycleReport, Loop


def task_of(job_id: str) -> tuple[int, int] | None:
    """(array seq, task index) of a task id ``jSEQ_INDEX``, else None."""
    head, sep, index = job_id.rpartition("_")
    if not sep or not index.isdigit() or len(index) > 9:
        return None
    seq = store.job_seq(head)
    return None if seq is None else (seq, int(index))


def size(row: JobRow) -> int:
    return len(parse_array(str(row.spec["array"])).indices)


def _task(s: Session, seq: int, idx: int) -> JobTaskRow:
    t = s.get(JobTaskRow, (seq, idx))
    if t is None:
        t = JobTaskRow(array_seq=seq, idx=idx, state="pending", attempt=0, reason="queued", detail="")
        s.add(t)
    return t


def decide(
    loop: Loop,
    s: Session,
    d: Decision,
    now: int,
    close: Callable[[str], None],
    report: CycleReport,
    touched: set[int],
) -> None:
    """Apply one decision about a task (its row, its allocation, the outbox)."""
    got = task_of(d.job_id)
    assert got is not None
    seq, idx = got
    arr = s.get(JobRow, seq)
    if arr is None:  # pragma: no cover - the core only decides about arrays we gave it
        return
    touched.add(seq)
    if isinstance(d, Explain):
        if arr.state == "pending":  # the array waits as its next task does
            arr.reason, arr.detail = d.reason.value, d.detail
        return
    t = _task(s, seq, idx)
    if isinstance(d, Start):
        _start(loop, s, arr, t, d, now)
        report.starts += 1
    elif isinstance(d, Preempt | Stop):
        aid = next((a for a, r in loop._state.running.items() if r.job == d.job_id), "")
        loop._state.running.pop(aid, None)
        close(aid)
        if isinstance(d, Preempt):
            t.state, t.reason, t.detail = "pending", "preempted", d.reason.value
            report.preemptions += 1
        else:
            t.state, t.reason, t.end_ms = "cancelled", "cancelled", now
        s.add(
            OutboxRow(
                kind="terminate",
                allocation_id=aid,
                job_seq=seq,
                cluster=t.cluster or "",
                payload={"grace_s": loop.terminate_grace_s},
                created_ms=now,
            )
        )
        loop._outbox_dirty = True
    elif isinstance(d, Reject):
        t.state, t.reason, t.detail, t.end_ms = "rejected", d.reason.value, d.detail, now


def _start(loop: Loop, s: Session, arr: JobRow, t: JobTaskRow, d: Start, now: int) -> None:
    t.attempt += 1
    aid = f"{d.job_id}.{t.attempt}"
    t.state, t.allocation_id, t.cluster, t.model, t.start_ms = "running", aid, d.cluster, d.model, now
    t.placement = [[n, list(ids)] for n, ids in d.placement]
    t.reason, t.detail = "running", ""
    if arr.state == "pending":
        arr.state, arr.reason, arr.detail, arr.estimated_start_ms = "running", "running", "", None
        arr.start_ms = arr.start_ms or now
    loop._state.running[aid] = Running(arr.seq, aid, d.allocation_id, d.cluster, job=d.job_id)
    spec = arr.spec
    s.add(
        UsageRow(
            job_seq=arr.seq,
            allocation_id=aid,
            project_id=arr.project_id,
            model=d.model,
            workload_class=str(spec.get("workload_class", "default")),
            gpus=int(spec["gpus"]),
            start_ms=now,
        )
    )
    env = {
        **dict(spec.get("env", {})),
        "GPUPOOL_ARRAY_JOB_ID": store.job_id(arr.seq),
        "GPUPOOL_ARRAY_TASK_ID": str(t.idx),
    }
    payload: dict[str, Any] = {
        "job_id": d.job_id,
        "argv": list(spec["command"]),
        "placement": t.placement,
        "log_dir": str(loop.log_dir / d.job_id),
        "env": env,
        "cwd": spec.get("cwd"),
        "walltime_s": float(spec.get("walltime_s", 0)),
        "run_as": loop.run_as(arr) if loop.run_as is not None else None,
    }
    s.add(
        OutboxRow(
            kind="launch",
            allocation_id=aid,
            job_seq=arr.seq,
            cluster=d.cluster,
            payload=payload,
            created_ms=now,
        )
    )
    loop._outbox_dirty = True


def finished(s: Session, run: Running, job_state: str, exit_code: int | None, detail: str, now: int) -> int:
    """A task's allocation ended on its own; the array's seq."""
    got = task_of(run.job)
    assert got is not None
    t = _task(s, *got)
    t.state, t.exit_code, t.end_ms = job_state, exit_code, now
    t.reason, t.detail = ("completed" if job_state == "completed" else "failed"), detail
    return got[0]


def cancelled(s: Session, loop: Loop, tasks: Iterable[tuple[int, int]], now: int, touched: set[int]) -> None:
    """Tasks cancelled through the API that hold no allocation: their rows say so."""
    running = {r.job for r in loop._state.running.values() if r.job}
    for seq, idx in tasks:
        tid = f"{store.job_id(seq)}_{idx}"
        if tid in running:
            continue  # its Stop decision ends it
        t = _task(s, seq, idx)
        if t.state == "pending":
            t.state, t.reason, t.end_ms = "cancelled", "cancelled", now
            touched.add(seq)


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
        if states.count("completed") == size(arr):
            arr.state, arr.reason = "completed", "completed"
        elif any(x in ("failed", "rejected") for x in states):
            arr.state, arr.reason = "failed", "failed"
        else:
            arr.state, arr.reason = "cancelled", "cancelled"
        arr.end_ms, arr.estimated_start_ms = now, None
        known.discard(jid)
