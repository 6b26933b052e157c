"""``/v1/audit``: every administrative change and every refusal, newest first (pool admins only).

``?action=refused`` shows the refused requests (401 and 403: ``gpupool.service.refusals``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, SessionDep
from gpupool.service.api.paging import CursorQ, LimitQ, Page, after, next_cursor
from gpupool.service.api.problems import ApiProblem, responses

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    at_ms: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@router.get("", response_model=Page[AuditOut], responses=responses(401, 403, 422), summary="The audit log")
def audit(
    caller: CallerDep,
    s: SessionDep,
    limit: LimitQ = 100,
    cursor: CursorQ = None,
    action: Annotated[str | None, Query(max_length=64, description="Only rows of this action")] = None,
) -> Page[AuditOut]:
    if not caller.reads_as_pool_admin:  # a pool admin's read-only token may read it too
        raise ApiProblem(403, "only a pool admin may read the audit log", kind="forbidden")
    rows = store.audit_page(s, limit, after(cursor), action)
    items = [
        AuditOut(id=r.id, at_ms=r.at_ms, actor=r.actor, action=r.action, target=r.target, detail=r.detail)
        for r in rows
    ]
    return Page[AuditOut](items=items, next_cursor=next_cursor([r.id for r in rows], limit))
