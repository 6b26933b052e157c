"""Repository functions for jobs and the event flow: jobs, inbox, outbox, event log, node states.

This module owns every query and write on those tables. The API's writes that accept an
event (submit, cancel, drain, undrain) write the row they change and the inbox row in one
transaction, so every 2xx is durable and reaches the loop; the loop's own transaction is in
``gpupool.service.loop``. Functions take an open ``Session`` and never commit unless their
name says so (``accept_*``): the caller owns the transaction otherwise.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Integer, Row, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gpupool.service.db import (
    AuditRow,
    InboxRow,
    JobRow,
    NodeStateRow,
    OutboxRow,
    UsageRow,
)
from gpupool.service.job_spec import StoredJobSpec
from gpupool.service.job_status import ACTIVE, FINAL, JobStatus

#: Job states (``JobStatus``); a job is ``active`` while pending or running.
ACTIVE_STATES = ACTIVE
FINAL_STATES = FINAL
JOB_STATES = tuple(JobStatus)


#: ids are 32-bit integer columns: anything larger cannot name a row (and must not reach SQL)
MAX_ID = 2**31 - 1


def job_id(seq: int) -> str:
    """The public id of a job (and its id in the core)."""
    return f"j{seq}"


def job_seq(public_id: str) -> int | None:
    """The sequence number behind a public job id, or None if it is not one."""
    if len(public_id) < 2 or public_id[0] != "j" or not public_id[1:].isascii() or len(public_id) > 11:
        return None
    if not public_id[1:].isdigit():
        return None
    seq = int(public_id[1:])
    return seq if seq <= MAX_ID else None


def allocation_id(seq: int, attempt: int) -> str:
    """The id of a job's ``attempt``-th allocation (unique forever: attempts only grow)."""
    return f"{job_id(seq)}.{attempt}"


# -- cursors ------------------------------------------------------------------------------


class CursorError(ValueError):
    pass


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("not a cursor returned by this API") from None
    if not raw.startswith("s:") or not raw[2:].isascii() or not raw[2:].isdigit() or len(raw) > 12:
        raise CursorError("not a cursor returned by this API")
    value = int(raw[2:])
    if value > MAX_ID:
        raise CursorError("not a cursor returned by this API")
    return value


# -- jobs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewJob:
    project_id: int
    user_id: int
    idempotency_key: str | None
    name: str
    spec: StoredJobSpec
    priority_class: str
    over_budget: bool
    reason: str
    detail: str


_JOBS = cast(Table, JobRow.__table__)
# Built once and given their values at execution: ``insert().values(...)`` per request spent
# more time building and keying the statement than SQLite spent running it.
_NEW_JOB = insert(_JOBS).returning(_JOBS.c.seq)
_NEW_INBOX = insert(cast(Table, InboxRow.__table__))


def accept_submission(engine: Engine, new: NewJob, now: int) -> int | None:
    """Write the job and its inbox event in one transaction; the new job's ``seq``.

    None when the user's idempotency key already names a job: the unique constraint decides,
    also when two requests race, and the caller reads the existing job back. No lookup
    precedes the insert (a fresh key is the common case), and the statements are Core
    inserts: the hot path of the API builds no ORM objects.
    """
    values = {
        "project_id": new.project_id,
        "user_id": new.user_id,
        "idempotency_key": new.idempotency_key,
        "name": new.name,
        "spec": new.spec.to_json(),
        "state": JobStatus.PENDING,
        "priority_class": new.priority_class,
        "over_budget": new.over_budget,
        "submit_ms": now,
        "reason": new.reason,
        "detail": new.detail,
    }
    try:
        with engine.begin() as conn:
            seq: int = conn.execute(_NEW_JOB, values).scalar_one()
            conn.execute(_NEW_INBOX, {"kind": "submit", "job_seq": seq, "created_ms": now})
    except IntegrityError:
        if new.idempotency_key is None:
            raise
        return None
    return seq


def existing_job(s: Session, user_id: int, key: str) -> JobRow | None:
    return s.scalars(select(JobRow).where(JobRow.user_id == user_id, JobRow.idempotency_key == key)).first()


def accept_cancel(factory: sessionmaker[Session], seq: int, now: int) -> None:
    with factory.begin() as s:
        s.add(InboxRow(kind="cancel", job_seq=seq, created_ms=now))


def get_job(s: Session, seq: int) -> JobRow | None:
    return s.get(JobRow, seq)


@dataclass(frozen=True, slots=True)
class JobFilter:
    projects: frozenset[int] | None  # None: every project
    state: JobStatus | None = None
    user_id: int | None = None
    model: str | None = None


def list_jobs(s: Session, f: JobFilter, limit: int, before: int | None) -> list[JobRow]:
    """Newest first; ``before`` is the ``seq`` a cursor points after."""
    q = select(JobRow)
    if f.projects is not None:
        if not f.projects:
            return []
        q = q.where(JobRow.project_id.in_(sorted(f.projects)))
    if f.state is not None:
        q = q.where(JobRow.state == f.state)
    if f.user_id is not None:
        q = q.where(JobRow.user_id == f.user_id)
    if f.model is not None:
        q = q.where(JobRow.model == f.model)
    if before is not None:
        q = q.where(JobRow.seq < before)
    return list(s.scalars(q.order_by(JobRow.seq.desc()).limit(limit)))


def active_jobs(s: Session) -> list[JobRow]:
    """Pending and running jobs in submission order (what the core must hold)."""
    return list(s.scalars(select(JobRow).where(JobRow.state.in_(ACTIVE_STATES)).order_by(JobRow.seq)))


def running_placements(s: Session) -> list[tuple[str, list[list[Any]]]]:
    """(allocation id, placement) of every running job."""
    rows = s.execute(
        select(JobRow.allocation_id, JobRow.placement).where(JobRow.state == JobStatus.RUNNING)
    ).all()
    return [(a or "", p or []) for a, p in rows]


# -- inbox, outbox, nodes -----------------------------------------------------------------


_INBOX = cast(Table, InboxRow.__table__)
#: a Core statement built once (the loop reads the inbox every cycle)
_INBOX_HEAD = (
    select(_INBOX.c.id, _INBOX.c.kind, _INBOX.c.job_seq, _INBOX.c.node)
    .order_by(_INBOX.c.id)
    .limit(bindparam("n", type_=Integer))
)


def inbox(s: Session, limit: int) -> Sequence[Row[int, str, int | None, str | None]]:
    """The oldest inbox rows as plain (id, kind, job_seq, node) rows."""
    return s.connection().execute(_INBOX_HEAD, {"n": limit}).all()


def undispatched(s: Session) -> list[OutboxRow]:
    return list(s.scalars(select(OutboxRow).where(OutboxRow.dispatched_ms.is_(None)).order_by(OutboxRow.id)))


def node_states(s: Session) -> dict[str, NodeStateRow]:
    return {r.name: r for r in s.scalars(select(NodeStateRow))}


def accept_node_change(
    factory: sessionmaker[Session], node: str, state: str, reason: str, actor: str, now: int
) -> None:
    """Drain (``drained``) or undrain (``up``) a node: state, inbox and audit in one transaction."""
    with factory.begin() as s:
        row = s.get(NodeStateRow, node)
        if state == "up":
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(NodeStateRow(name=node, state=state, reason=reason, changed_ms=now))
        else:
            row.state, row.reason, row.changed_ms = state, reason, now
        s.add(InboxRow(kind="undrain" if state == "up" else "drain", node=node, created_ms=now))
        audit(s, actor, "undrain" if state == "up" else "drain", f"node/{node}", {"reason": reason}, now)


def audit(s: Session, actor: str, action: str, target: str, detail: dict[str, Any], now: int) -> None:
    s.add(AuditRow(at_ms=now, actor=actor, action=action, target=target, detail=detail))


def audit_page(s: Session, limit: int, before: int | None, action: str | None = None) -> list[AuditRow]:
    q = select(AuditRow)
    if action is not None:
        q = q.where(AuditRow.action == action)
    if before is not None:
        q = q.where(AuditRow.id < before)
    return list(s.scalars(q.order_by(AuditRow.id.desc()).limit(limit)))


# -- usage --------------------------------------------------------------------------------


def usage_rows(
    s: Session, projects: Sequence[int] | None, start_ms: int, end_ms: int, model: str | None = None
) -> list[UsageRow]:
    """Usage intervals overlapping [start_ms, end_ms) (open ones included)."""
    q = select(UsageRow).where(UsageRow.start_ms < end_ms)
    q = q.where((UsageRow.end_ms.is_(None)) | (UsageRow.end_ms > start_ms))
    if projects is not None:
        q = q.where(UsageRow.project_id.in_(list(projects)))
    if model is not None:
        q = q.where(UsageRow.model == model)
    return list(s.scalars(q.order_by(UsageRow.id)))
