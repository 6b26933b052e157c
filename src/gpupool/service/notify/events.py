"""Notification events: what is worth telling, derived from what the service already records.

This module owns ``EventKind`` and the three sources of events:

- the ``audit`` log: every state change of an application is audited in the transaction that
  makes it (``application.submitted|withdrawn|state|declined|award``), and an award also
  makes an ``award`` event;
- the loop's ``event_log``: a ``JobFinished`` event is ``job.ended`` (and ``job.failed`` when
  its outcome is ``failed`` or ``timeout``); a ``JobCancelled`` event and a ``Reject``
  decision are ``job.ended`` with the job's final state;
- the allocations themselves, checked periodically: ``allocation.expiring`` (its period ends
  within the set days) and ``allocation.exhausted`` (its GPU-hours are used up).

Logs are read past a stored high-water mark (``notification_cursors``), so the loop and the
API write nothing more for notifications. On PostgreSQL a row with a smaller id may commit
after a larger one has been read; the reader therefore stops at a gap in the ids until the
row after the gap is ``SETTLE_MS`` old (a gap that old is a rolled-back transaction).

Each event has a unique ``key`` (``audit:<id>:<kind>``, ``allocation:<id>:expiring:<end>``...):
it is recorded once, with one delivery per matching subscription, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpupool.core.accelerator import Catalogue
from gpupool.service import store
from gpupool.service.budget import EFFECTIVE, used_hours
from gpupool.service.db import (
    ApplicationRow,
    AuditRow,
    DeliveryRow,
    EventLogRow,
    JobRow,
    NotificationCursorRow,
    NotificationEventRow,
    SubscriptionRow,
    TenantRow,
    UserRow,
)
from gpupool.service.tenant_tree import active_allocations

#: how old the row after a gap in a log's ids must be before the gap is passed over
SETTLE_MS = 30_000
#: rows read from a log per pass
BATCH = 500
DAY_MS = 86_400_000


class EventKind(StrEnum):
    APPLICATION_STATE = "application.state"
    AWARD = "award"
    ALLOCATION_EXPIRING = "allocation.expiring"
    ALLOCATION_EXHAUSTED = "allocation.exhausted"
    JOB_ENDED = "job.ended"
    JOB_FAILED = "job.failed"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: every attempt failed
    FAILED = "failed"
    #: its subscription was deleted before it was delivered
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Event:
    key: str
    kind: EventKind
    tenant_path: str | None
    summary: str
    data: dict[str, Any]


#: audit actions that change an application's state
_APPLICATION_ACTIONS = frozenset(
    {"application.submitted", "application.withdrawn", "application.state", "application.declined",
     "application.award"}
)  # fmt: skip


def under(path: str | None, scope: str | None) -> bool:
    """Is a tenant at ``path`` within ``scope`` (None: everywhere)?"""
    if scope is None:
        return True
    return path is not None and (path == scope or path.startswith(scope + "/"))


def record(s: Session, events: Iterable[Event], now: int) -> int:
    """Record new events and one pending delivery per matching subscription; how many were new."""
    events = list(events)
    if not events:
        return 0
    keys = [e.key for e in events]
    seen = set(s.scalars(select(NotificationEventRow.key).where(NotificationEventRow.key.in_(keys))))
    subs = list(s.scalars(select(SubscriptionRow)))
    scopes = _scopes(s, subs)
    new = 0
    for e in events:
        if e.key in seen:
            continue
        seen.add(e.key)
        row = NotificationEventRow(
            key=e.key,
            kind=e.kind.value,
            tenant_path=e.tenant_path,
            payload={"summary": e.summary, **e.data},
            at_ms=now,
        )
        s.add(row)
        s.flush()
        new += 1
        for sub in subs:
            if e.kind.value in sub.events and under(e.tenant_path, scopes.get(sub.id)):
                s.add(
                    DeliveryRow(
                        event_id=row.id,
                        subscription_id=sub.id,
                        state=DeliveryState.PENDING.value,
                        attempts=0,
                        next_attempt_ms=now,
                        last_error="",
                        created_ms=now,
                    )
                )
    return new


def _scopes(s: Session, subs: Sequence[SubscriptionRow]) -> dict[int, str | None]:
    ids = {sub.tenant_id for sub in subs if sub.tenant_id is not None}
    paths = dict(s.execute(select(TenantRow.id, TenantRow.path).where(TenantRow.id.in_(ids))).all())
    return {sub.id: (paths.get(sub.tenant_id, "\x00") if sub.tenant_id is not None else None) for sub in subs}


# -- the logs -------------------------------------------------------------------------------------


def start_cursors(s: Session, now: int) -> None:
    """Begin reading each log at its end, unless a cursor exists (no history is notified)."""
    for source, table in (("audit", AuditRow), ("event_log", EventLogRow)):
        if s.get(NotificationCursorRow, source) is None:
            last = s.scalar(select(func.max(table.id))) or 0
            s.add(NotificationCursorRow(source=source, last_id=last, updated_ms=now))


def _settled(rows: Sequence[AuditRow] | Sequence[EventLogRow], last: int, now: int) -> tuple[list[Any], int]:
    """The rows that may be handled now (up to the first unsettled gap) and the new mark."""
    out: list[Any] = []
    for r in rows:
        if r.id != last + 1 and r.at_ms > now - SETTLE_MS:
            break  # a smaller id may still commit: wait for it (or for the gap to settle)
        out.append(r)
        last = r.id
    return out, last


def from_audit(s: Session, now: int) -> list[Event]:
    """Events of the audit rows past the mark (and the mark moved past them)."""
    cursor = s.get(NotificationCursorRow, "audit", with_for_update=True)
    if cursor is None:
        return []
    rows = list(
        s.scalars(select(AuditRow).where(AuditRow.id > cursor.last_id).order_by(AuditRow.id).limit(BATCH))
    )
    todo, cursor.last_id = _settled(rows, cursor.last_id, now)
    cursor.updated_ms = now
    out: list[Event] = []
    for r in todo:
        if r.action in _APPLICATION_ACTIONS:
            out.extend(_application_events(s, r))
    return out


def _application_events(s: Session, r: AuditRow) -> list[Event]:
    _, _, ident = r.target.partition("/")
    app = s.get(ApplicationRow, int(ident)) if ident.isdigit() else None
    if app is None:
        return []
    project = s.get(TenantRow, app.project_id)
    path = project.path if project is not None else None
    to = str(r.detail.get("to") or r.detail.get("state") or app.state)
    data: dict[str, Any] = {
        "application": app.id,
        "call": app.call_id,
        "project": path,
        "title": app.title,
        "action": r.action,
        "from": r.detail.get("from"),
        "to": to,
        "by": r.actor,
        "at_ms": r.at_ms,
    }
    if "because" in r.detail:
        data["because"] = r.detail["because"]
    events = [
        Event(
            f"audit:{r.id}:{EventKind.APPLICATION_STATE}",
            EventKind.APPLICATION_STATE,
            path,
            f"application {app.id} ({app.title}) of {path} is {to}",
            data,
        )
    ]
    if r.action == "application.award":
        award = {
            **data,
            "gpu_hours": r.detail.get("gpu_hours"),
            "guaranteed": r.detail.get("guaranteed"),
            "allocations": r.detail.get("allocations", []),
        }
        events.append(
            Event(
                f"audit:{r.id}:{EventKind.AWARD}",
                EventKind.AWARD,
                path,
                f"application {app.id} ({app.title}) of {path} was {to.replace('_', ' ')}",
                award,
            )
        )
    return events


def from_event_log(s: Session, now: int) -> list[Event]:
    """Events of the loop's log rows past the mark: jobs that ended, failed, were refused."""
    cursor = s.get(NotificationCursorRow, "event_log", with_for_update=True)
    if cursor is None:
        return []
    rows = list(
        s.scalars(
            select(EventLogRow).where(EventLogRow.id > cursor.last_id).order_by(EventLogRow.id).limit(BATCH)
        )
    )
    todo, cursor.last_id = _settled(rows, cursor.last_id, now)
    cursor.updated_ms = now
    wanted = [
        r
        for r in todo
        if (r.kind, r.type) in (("event", "JobFinished"), ("event", "JobCancelled"), ("decision", "Reject"))
        and r.job_id is not None
    ]
    seqs = {q for r in wanted if (q := store.job_seq(r.job_id or "")) is not None}
    if not seqs:
        return []
    jobs = {j.seq: j for j in s.scalars(select(JobRow).where(JobRow.seq.in_(seqs)))}
    paths = _paths(s, {j.project_id for j in jobs.values()})
    users = dict(
        s.execute(
            select(UserRow.id, UserRow.name).where(UserRow.id.in_({j.user_id for j in jobs.values()}))
        ).all()
    )
    out: list[Event] = []
    for r in wanted:
        job = jobs.get(store.job_seq(r.job_id or "") or 0)
        if job is None:
            continue
        outcome = str(r.payload.get("outcome", job.state)) if r.type == "JobFinished" else job.state
        path = paths.get(job.project_id)
        data = {
            "job": store.job_id(job.seq),
            "name": job.name,
            "project": path,
            "user": users.get(job.user_id),
            "state": job.state,
            "outcome": outcome,
            "exit_code": job.exit_code,
            "detail": job.detail,
            "reason": job.reason,
            "cluster": job.cluster,
            "model": job.model,
            "submit_ms": job.submit_ms,
            "start_ms": job.start_ms,
            "end_ms": job.end_ms,
            "at_ms": r.at_ms,
        }
        summary = f"job {data['job']} ({job.name or 'unnamed'}) of {path} {outcome}"
        if job.detail:
            summary += f": {job.detail}"
        out.append(Event(f"event_log:{r.id}:{EventKind.JOB_ENDED}", EventKind.JOB_ENDED, path, summary, data))
        if r.type == "JobFinished" and outcome in ("failed", "timeout"):
            out.append(
                Event(f"event_log:{r.id}:{EventKind.JOB_FAILED}", EventKind.JOB_FAILED, path, summary, data)
            )
    return out


def _paths(s: Session, ids: set[int]) -> dict[int, str]:
    return dict(s.execute(select(TenantRow.id, TenantRow.path).where(TenantRow.id.in_(ids))).all())


# -- the allocations ------------------------------------------------------------------------------


def from_allocations(
    s: Session, now: int, expiring_days: float, catalogue: Catalogue | None = None
) -> list[Event]:
    """``allocation.expiring`` and ``allocation.exhausted`` for the active allocations.

    The keys carry the period's end and the GPU-hours granted: an allocation extended or
    topped up is told about again when it nears its new end or spends its new budget.
    """
    active = active_allocations(s, now)
    paths = _paths(s, {a.project_id for a in active})
    horizon = round(expiring_days * DAY_MS)
    out: list[Event] = []
    for a in active:
        path = paths.get(a.project_id)
        data: dict[str, Any] = {
            "allocation": a.id,
            "project": path,
            "model": a.model,
            "gpu_hours": a.gpu_hours,
            "period_start_ms": a.period_start_ms,
            "period_end_ms": a.period_end_ms,
        }
        if a.period_end_ms - now <= horizon:
            days = (a.period_end_ms - now) / DAY_MS
            out.append(
                Event(
                    f"allocation:{a.id}:expiring:{a.period_end_ms}",
                    EventKind.ALLOCATION_EXPIRING,
                    path,
                    f"allocation {a.id} ({a.model}) of {path} ends in {days:.1f} days",
                    {**data, "days_left": round(days, 3)},
                )
            )
        if a.unit == EFFECTIVE and catalogue is None:
            continue  # counted in effective GPU-hours: told about where the catalogue is known
        used = used_hours(s, a, now, catalogue)
        if a.gpu_hours > 0 and used >= a.gpu_hours:
            out.append(
                Event(
                    f"allocation:{a.id}:exhausted:{a.gpu_hours:g}",
                    EventKind.ALLOCATION_EXHAUSTED,
                    path,
                    f"allocation {a.id} ({a.model}) of {path} used {used:,.1f} "
                    f"of {a.gpu_hours:,.1f} GPU-hours",
                    {**data, "used_gpu_hours": round(used, 3)},
                )
            )
    return out
