"""``/v1/dashboard/jobs``: the queue page, filtered, sorted and cursor-paginated.

This module owns the queue: its filters (state, tenant subtree, project, user, accelerator
model), its sorts (submission, estimated start, start, priority, size) and its keyset cursor
on the sort key and the job number, so the 100,000th job costs what the first does. Each row
says whether the caller may cancel it (``can_cancel``, the rule the cancel route applies).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import String, and_, case, func, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.sql.elements import ColumnElement

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, SessionDep
from gpupool.service.api.dashboard.session import usage_projects
from gpupool.service.api.jobs import JobOut, job_names, job_out
from gpupool.service.api.problems import invalid, responses
from gpupool.service.auth import Caller
from gpupool.service.db import JobRow, TenantRow, UserRow

router = APIRouter(tags=["dashboard"])
#: later than any instant: jobs without a sort value go last; a cursor's value stays within it
MS_MAX = 2**62
#: the order of "priority" sorts: the classes from most to least important
PRIORITY_RANK = {"reserved": 0, "high": 1, "normal": 2, "low": 3, "preemptible": 4}

QueueState = Literal[
    "active", "pending", "running", "finished", "completed", "failed", "cancelled", "rejected", "all"
]
SortKey = Literal["submitted", "estimated_start", "started", "priority", "gpus"]
STATE_SETS: dict[str, tuple[str, ...] | None] = {
    "active": store.ACTIVE_STATES,
    "finished": store.FINAL_STATES,
    "all": None,
}


class QueueItem(JobOut):
    can_cancel: bool


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_cursor: str | None = None
    total: int = Field(description="jobs matching the filters")


def can_cancel(caller: Caller, row: JobRow) -> bool:
    """Whether the caller may cancel the job now (the rule ``POST /v1/jobs/{id}/cancel`` applies)."""
    return caller.can_act_on_job(row.project_id) and row.state not in store.FINAL_STATES


def _sort_expr(sort: str, ascending: bool) -> ColumnElement[int] | None:
    """The column a queue sort orders by (then by ``seq``); None for submission order."""
    # Jobs without the value (not started, no estimate) sort last both ways.
    missing = MS_MAX if ascending else -1
    if sort == "estimated_start":
        return func.coalesce(JobRow.estimated_start_ms, missing)
    if sort == "started":
        return func.coalesce(JobRow.start_ms, missing)
    if sort == "priority":
        return case(PRIORITY_RANK, value=JobRow.priority_class, else_=len(PRIORITY_RANK))
    if sort == "gpus":
        gpus: ColumnElement[int] = JobRow.spec["gpus"].as_integer()
        return gpus
    return None


def encode_cursor(sort: str, ascending: bool, value: int | None, seq: int) -> str:
    """The cursor of the page after the job ``seq`` whose sort key is ``value``."""
    raw = json.dumps([sort, ascending, value, seq], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


#: the sort keys a cursor may carry, by sort: the values that sort's column can hold.
#: ``submitted`` carries none; times are ``BigInteger`` milliseconds (``-1`` and ``MS_MAX``
#: stand for "no value"); a priority is a rank; ``gpus`` is read from the spec as PostgreSQL's
#: 32-bit ``integer`` (a larger value was "integer out of range", a 500).
SORT_KEY_RANGES: dict[str, tuple[int, int] | None] = {
    "submitted": None,
    "estimated_start": (-1, MS_MAX),
    "started": (-1, MS_MAX),
    "priority": (0, len(PRIORITY_RANK)),
    "gpus": (0, store.MAX_ID),
}


def decode_cursor(cursor: str, sort: str, ascending: bool) -> tuple[int | None, int]:
    """(sort key, job seq) of a cursor of this listing; 422 naming ``cursor`` for any other.

    Every part is checked against the column it is compared with: the sort key's type and
    range by ``SORT_KEY_RANGES``, the job number as a 32-bit id. No decoded value reaches SQL
    unchecked.
    """
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise invalid("cursor", "not a cursor returned by this API") from None
    if not (isinstance(raw, list) and len(raw) == 4 and raw[0] == sort and raw[1] is ascending):
        raise invalid("cursor", "not a cursor of this listing (its sort and order must not change)")
    value, seq = raw[2], raw[3]
    if type(seq) is not int or not 0 <= seq <= store.MAX_ID:
        raise invalid("cursor", f"job number out of range (0 to {store.MAX_ID})")
    bounds = SORT_KEY_RANGES[sort]
    if value is None:
        return None, seq
    if bounds is None:
        raise invalid("cursor", f"a cursor of the {sort!r} sort carries no sort key")
    low, high = bounds
    if type(value) is not int or not low <= value <= high:
        raise invalid("cursor", f"sort key of {sort!r} out of range ({low} to {high})")
    return value, seq


def _model_filter(model: str) -> ColumnElement[bool]:
    """Jobs placed on ``model``, or waiting and able to use it (asked for it, or for any)."""
    asked = sql_cast(JobRow.spec["models"], String)
    return or_(
        JobRow.model == model,
        and_(
            JobRow.model.is_(None),
            or_(asked.contains(f'"{model}"', autoescape=True), asked == "[]"),
        ),
    )


@router.get(
    "/v1/dashboard/jobs",
    response_model=QueuePage,
    responses=responses(401, 422),
    summary="The queue: filtered, sorted and cursor-paginated jobs",
)
def queue(
    caller: CallerDep,
    s: SessionDep,
    state: QueueState = "active",
    tenant: Annotated[
        str | None, Query(max_length=255, description="A sector, organisation or project path")
    ] = None,
    project: Annotated[str | None, Query(max_length=255)] = None,
    user: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=32)] = None,
    sort: SortKey = "submitted",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> QueuePage:
    ascending = order == "asc"
    after = decode_cursor(cursor, sort, ascending) if cursor is not None else None
    empty = QueuePage(items=[], total=0)
    conds: list[ColumnElement[bool]] = []
    projects = usage_projects(caller)
    for text, exact in ((tenant, False), (project, True)):
        if text is None:
            continue
        rows = s.execute(select(TenantRow.id, TenantRow.path, TenantRow.kind)).all()
        if not any(p == text and caller.can_see(i) for i, p, _ in rows):
            return empty
        under = {
            i
            for i, p, k in rows
            if k == "project" and (p == text or (not exact and p.startswith(text + "/")))
        }
        projects = frozenset(under if projects is None else under & projects)
    if projects is not None:
        if not projects:
            return empty
        conds.append(JobRow.project_id.in_(sorted(projects)))
    states = STATE_SETS.get(state, (state,))
    if states is not None:
        conds.append(JobRow.state.in_(states))
    if user is not None:
        uid = s.scalars(select(UserRow.id).where(UserRow.name == user)).first()
        if uid is None:
            return empty
        conds.append(JobRow.user_id == uid)
    if model is not None:
        conds.append(_model_filter(model))
    total = s.scalar(select(func.count()).select_from(JobRow).where(*conds)) or 0
    key = _sort_expr(sort, ascending)
    q = select(JobRow, key) if key is not None else select(JobRow)
    q = q.where(*conds)
    if after is not None:
        value, seq = after
        if key is None or value is None:
            q = q.where(JobRow.seq > seq if ascending else JobRow.seq < seq)
        else:
            if ascending:
                q = q.where(or_(key > value, and_(key == value, JobRow.seq > seq)))
            else:
                q = q.where(or_(key < value, and_(key == value, JobRow.seq < seq)))
    seq_order = JobRow.seq.asc() if ascending else JobRow.seq.desc()
    if key is not None:
        q = q.order_by(key.asc() if ascending else key.desc(), seq_order)
    else:
        q = q.order_by(seq_order)
    got = s.execute(q.limit(limit)).all()
    rows_ = [r[0] for r in got]
    keys: list[int | None] = [int(r[1]) if key is not None and r[1] is not None else None for r in got]
    paths, users = job_names(s, rows_)
    items = [
        QueueItem(
            **job_out(r, paths.get(r.project_id, ""), users.get(r.user_id, "")).model_dump(),
            can_cancel=can_cancel(caller, r),
        )
        for r in rows_
    ]
    nxt = None
    if len(rows_) == limit:
        nxt = encode_cursor(sort, ascending, keys[-1], rows_[-1].seq)
    return QueuePage(items=items, next_cursor=nxt, total=int(total))
