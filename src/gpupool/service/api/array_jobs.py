"""Job arrays in the API: the tasks of an array, one task's view, cancelling one task.

This module owns ``TaskOut`` (one task's state), ``tasks_of`` (every task of an array: those
the loop has decided about from their ``job_tasks`` rows, the others ``pending``, or
``cancelled`` once the array ended without them) and ``task_view`` (a task as a ``JobOut``
of its own: ``GET /v1/jobs/j7_3``). Routes stay in ``api/jobs.py``.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.array_spec import parse_array
from gpupool.service import store
from gpupool.service.db import JobRow, JobTaskRow
from gpupool.service.job_status import JobStatus


class TaskOut(BaseModel):
    id: str
    index: int
    state: JobStatus
    reason: str
    exit_code: int | None
    attempt: int
    start_ms: int | None
    end_ms: int | None


def indices(row: JobRow) -> tuple[int, ...]:
    return parse_array(row.stored.array).indices if row.stored.array else ()


def tasks_of(s: Session, row: JobRow) -> list[TaskOut]:
    """Every task of an array row, in index order."""
    have = {t.idx: t for t in s.scalars(select(JobTaskRow).where(JobTaskRow.array_seq == row.seq))}
    untouched = JobStatus.CANCELLED if row.state in store.FINAL_STATES else JobStatus.PENDING
    jid = store.job_id(row.seq)
    out: list[TaskOut] = []
    for i in indices(row):
        t = have.get(i)
        if t is None:
            out.append(
                TaskOut(
                    id=f"{jid}_{i}",
                    index=i,
                    state=untouched,
                    reason=untouched,
                    exit_code=None,
                    attempt=0,
                    start_ms=None,
                    end_ms=None,
                )
            )
        else:
            out.append(
                TaskOut(
                    id=f"{jid}_{i}",
                    index=i,
                    state=t.state,
                    reason=t.reason,
                    exit_code=t.exit_code,
                    attempt=t.attempt,
                    start_ms=t.start_ms,
                    end_ms=t.end_ms,
                )
            )
    return out


def task_row(s: Session, row: JobRow, index: int) -> JobTaskRow | None:
    return s.get(JobTaskRow, (row.seq, index))
