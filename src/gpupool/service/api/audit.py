"""``/v1/audit``: every administrative change, newest first (pool admins only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, SessionDep, require_pool_admin
from gpupool.service.api.paging import CursorQ, LimitQ, Page, after, next_cursor
from gpupool.service.api.problems import responses

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    at_ms: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@router.get("", response_model=Page[AuditOut], responses=responses(401, 403, 422), summary="The audit log")
def audit(caller: CallerDep, s: SessionDep, limit: LimitQ = 100, cursor: CursorQ = None) -> Page[AuditOut]:
    require_pool_admin(caller)
    rows = store.audit_page(s, limit, after(cursor))
    items = [
        AuditOut(id=r.id, at_ms=r.at_ms, actor=r.actor, action=r.action, target=r.target, detail=r.detail)
        for r in rows
    ]
    return Page[AuditOut](items=items, next_cursor=next_cursor([r.id for r in rows], limit))
