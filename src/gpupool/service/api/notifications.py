"""``/v1/notifications``: subscriptions to events (webhooks and e-mail) and their deliveries.

This module owns the notification routes (ADR 0011). A pool admin subscribes a webhook URL or
an e-mail address to event kinds (``EventKind``), for every tenant or one subtree; an
organisation or project admin may subscribe only for a tenant they administer. A webhook's
host must be in ``GPUPOOL_WEBHOOK_ALLOW_HOSTS`` (422 otherwise); e-mail needs an SMTP server
(``GPUPOOL_SMTP_HOST``). The answer to a new subscription carries its signing secret, the
only time it is shown. ``GET /deliveries`` lists deliveries newest first with their attempts.
What a caller may not manage does not exist for them (404).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.paging import CursorQ, LimitQ, Page, after, next_cursor
from gpupool.service.api.problems import ApiProblem, invalid, responses
from gpupool.service.auth import Caller
from gpupool.service.db import (
    DeliveryAttemptRow,
    DeliveryRow,
    NotificationEventRow,
    SubscriptionRow,
    TenantRow,
)
from gpupool.service.notify.destinations import Refused, check_email, check_webhook
from gpupool.service.notify.events import DeliveryState, EventKind
from gpupool.service.request_body import RequestBody

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])
SubId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Channel = Literal["webhook", "email"]


class SubscriptionIn(RequestBody):
    channel: Channel
    #: the webhook's URL, or the e-mail address
    target: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Annotated[list[EventKind], Field(min_length=1, max_length=len(EventKind))]
    #: only events about this tenant (path) and those below it; omit for every tenant
    tenant: Annotated[str | None, Field(min_length=1, max_length=255)] = None


class SubscriptionOut(BaseModel):
    id: int
    channel: Channel
    target: str
    events: list[EventKind]
    tenant: str | None
    created_by: str
    created_ms: int


class NewSubscriptionOut(SubscriptionOut):
    #: the key of the webhook signatures (``X-Gpupool-Signature``): shown this once
    secret: str


class AttemptOut(BaseModel):
    at_ms: int
    ok: bool
    #: HTTP status or SMTP reply code (none when no answer came)
    status: int | None
    error: str
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    subscription_id: int
    event: EventKind
    event_key: str
    tenant: str | None
    summary: str
    state: DeliveryState
    attempts: int
    next_attempt_ms: int | None
    last_error: str
    created_ms: int
    delivered_ms: int | None
    history: list[AttemptOut]


def _out(sub: SubscriptionRow, path: str | None) -> SubscriptionOut:
    return SubscriptionOut(
        id=sub.id,
        channel=sub.channel,  # type: ignore[arg-type]
        target=sub.target,
        events=[EventKind(e) for e in sub.events],
        tenant=path,
        created_by=sub.created_by,
        created_ms=sub.created_ms,
    )


def _manages(caller: Caller, sub: SubscriptionRow) -> bool:
    if caller.reads_as_pool_admin:
        return True
    return sub.tenant_id is not None and sub.tenant_id in caller.admin_of


def _managed(s: Session, caller: Caller) -> list[SubscriptionRow]:
    q = select(SubscriptionRow).order_by(SubscriptionRow.id)
    if not caller.reads_as_pool_admin:
        if not caller.admin_of:
            return []
        q = q.where(SubscriptionRow.tenant_id.in_(caller.admin_of))
    return list(s.scalars(q))


def _paths(s: Session, subs: list[SubscriptionRow]) -> dict[int, str]:
    ids = {sub.tenant_id for sub in subs if sub.tenant_id is not None}
    return dict(s.execute(select(TenantRow.id, TenantRow.path).where(TenantRow.id.in_(ids))).all())


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=NewSubscriptionOut,
    responses=responses(401, 403, 404, 422),
    summary="Subscribe a webhook or an e-mail address to events",
)
def subscribe(body: SubscriptionIn, caller: CallerDep, rt: RuntimeDep) -> NewSubscriptionOut:
    settings = rt.notifier.settings
    try:
        target = (
            check_webhook(body.target, rt.notifier.allow)
            if body.channel == "webhook"
            else check_email(body.target)
        )
    except Refused as e:
        message = str(e).partition(": ")[2]
        raise invalid("target", message) from None
    if body.channel == "email" and not settings.smtp_enabled:
        raise invalid("channel", "e-mail needs an SMTP server: the operator sets GPUPOOL_SMTP_HOST")
    now = rt.clock()
    with rt.factory.begin() as s:
        tenant: TenantRow | None = None
        if body.tenant is not None:
            tenant = s.scalars(select(TenantRow).where(TenantRow.path == body.tenant)).first()
            if tenant is None or not caller.can_see(tenant.id):
                raise ApiProblem(404, f"tenant {body.tenant!r} not found", kind="not-found")
        if not caller.is_pool_admin and (tenant is None or not caller.can_manage(tenant.id)):
            raise ApiProblem(
                403,
                "only a pool admin may subscribe to every tenant's events; an organisation or "
                "project admin subscribes for a tenant they administer (give tenant)",
                kind="forbidden",
            )
        sub = SubscriptionRow(
            channel=body.channel,
            target=target,
            events=sorted({e.value for e in body.events}),
            tenant_id=tenant.id if tenant is not None else None,
            secret=secrets.token_urlsafe(32),
            created_by=caller.name,
            created_ms=now,
        )
        s.add(sub)
        s.flush()
        store.audit(
            s,
            caller.name,
            "notification.subscribe",
            f"subscription/{sub.id}",
            {"channel": sub.channel, "target": sub.target, "events": sub.events, "tenant": body.tenant},
            now,
        )
        out = _out(sub, tenant.path if tenant is not None else None)
    return NewSubscriptionOut(**out.model_dump(), secret=sub.secret)


@router.get(
    "/subscriptions",
    response_model=list[SubscriptionOut],
    responses=responses(401),
    summary="The subscriptions the caller manages (a pool admin: all)",
)
def subscriptions(caller: CallerDep, s: SessionDep) -> list[SubscriptionOut]:
    subs = _managed(s, caller)
    paths = _paths(s, subs)
    return [_out(sub, paths.get(sub.tenant_id) if sub.tenant_id is not None else None) for sub in subs]


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404),
    summary="Delete a subscription (its pending deliveries are dropped; the record stays)",
)
def unsubscribe(subscription_id: SubId, caller: CallerDep, rt: RuntimeDep) -> Response:
    now = rt.clock()
    with rt.factory.begin() as s:
        sub = s.get(SubscriptionRow, subscription_id)
        if sub is None or not _manages(caller, sub):
            raise ApiProblem(404, f"subscription {subscription_id} not found", kind="not-found")
        if not (caller.is_pool_admin or (sub.tenant_id is not None and caller.can_manage(sub.tenant_id))):
            raise ApiProblem(403, "this token may not delete subscriptions", kind="forbidden")
        s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.subscription_id == sub.id, DeliveryRow.state == DeliveryState.PENDING)
            .values(state=DeliveryState.DROPPED.value, last_error="subscription deleted")
        )
        store.audit(
            s, caller.name, "notification.unsubscribe", f"subscription/{sub.id}",
            {"channel": sub.channel, "target": sub.target}, now,
        )  # fmt: skip
        s.delete(sub)
    return Response(status_code=204)


@router.get(
    "/deliveries",
    response_model=Page[DeliveryOut],
    responses=responses(401, 422),
    summary="Deliveries of the caller's subscriptions, newest first, with every attempt",
)
def deliveries(
    caller: CallerDep,
    s: SessionDep,
    limit: LimitQ = 100,
    cursor: CursorQ = None,
    subscription: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Only this subscription's")
    ] = None,
    state: Annotated[DeliveryState | None, Query(description="Only deliveries in this state")] = None,
) -> Page[DeliveryOut]:
    q = (
        select(DeliveryRow, NotificationEventRow)
        .join(NotificationEventRow, NotificationEventRow.id == DeliveryRow.event_id)
        .order_by(DeliveryRow.id.desc())
        .limit(limit)
    )
    if not caller.reads_as_pool_admin:
        # a tenant admin sees the deliveries of the subscriptions they manage now
        mine = [sub.id for sub in _managed(s, caller)]
        q = q.where(DeliveryRow.subscription_id.in_(mine))
    if subscription is not None:
        q = q.where(DeliveryRow.subscription_id == subscription)
    if state is not None:
        q = q.where(DeliveryRow.state == state.value)
    before = after(cursor)
    if before is not None:
        q = q.where(DeliveryRow.id < before)
    rows = s.execute(q).all()
    ids = [d.id for d, _ in rows]
    history: dict[int, list[AttemptOut]] = {}
    for a in s.scalars(
        select(DeliveryAttemptRow)
        .where(DeliveryAttemptRow.delivery_id.in_(ids))
        .order_by(DeliveryAttemptRow.id)
    ):
        history.setdefault(a.delivery_id, []).append(
            AttemptOut(at_ms=a.at_ms, ok=a.ok, status=a.status, error=a.error, duration_ms=a.duration_ms)
        )
    items = [
        DeliveryOut(
            id=d.id,
            subscription_id=d.subscription_id,
            event=EventKind(ev.kind),
            event_key=ev.key,
            tenant=ev.tenant_path,
            summary=str(ev.payload.get("summary", "")),
            state=DeliveryState(d.state),
            attempts=d.attempts,
            next_attempt_ms=d.next_attempt_ms if d.state == DeliveryState.PENDING else None,
            last_error=d.last_error,
            created_ms=d.created_ms,
            delivered_ms=d.delivered_ms,
            history=history.get(d.id, []),
        )
        for d, ev in rows
    ]
    return Page[DeliveryOut](items=items, next_cursor=next_cursor(ids, limit))


def install(app: FastAPI) -> None:
    app.include_router(router)
