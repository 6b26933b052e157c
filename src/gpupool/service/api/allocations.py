"""``/v1/allocations``: grants of GPU-hours per accelerator class and period, and their lifecycle.

This module owns the allocation routes. An allocation belongs to a project: GPU-hours of one
accelerator model (or ``*``) for a period, a guaranteed share (accelerators added to the
project's guarantee while active) and what happens past the budget (``preemptible`` or
``reject``). Lifecycle: requested > approved > active > exhausted / expired; ``exhausted`` and
``expired`` are read off usage and the clock. Members of a project read its allocations and
may request one; a pool admin creates them in any state and moves them along.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.accelerator import Catalogue
from gpupool.core.tenancy import ANY_MODEL
from gpupool.service import budget, store, tenant_budget
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.jobs import resolve_project
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.api.tenants import validate_tree
from gpupool.service.auth import Caller
from gpupool.service.db import AllocationRow, TenantRow
from gpupool.service.request_body import RequestBody

router = APIRouter(prefix="/v1/allocations", tags=["allocations"])
Stored = Literal["requested", "approved", "active", "rejected", "expired"]
Shown = Literal["requested", "approved", "active", "exhausted", "expired", "rejected"]
#: lifecycle moves a pool admin may make
MOVES: dict[str, tuple[str, ...]] = {
    "requested": ("approved", "active", "rejected"),
    "approved": ("active", "rejected"),
    "active": ("expired",),
    "rejected": (),
    "expired": (),
}
MAX_MS = 2**62


class AllocationIn(RequestBody):
    project: Annotated[str, Field(min_length=1, max_length=255)]
    model: Annotated[
        str, Field(min_length=1, max_length=32, description="Accelerator model, or * for any")
    ] = "*"
    gpu_hours: Annotated[float, Field(gt=0, le=1e12)]
    period_start_ms: Annotated[int, Field(ge=0, le=MAX_MS)]
    period_end_ms: Annotated[int, Field(ge=0, le=MAX_MS)]
    guaranteed: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    over_budget: Literal["preemptible", "reject"] = "preemptible"
    state: Literal["requested", "approved", "active"] = "requested"
    note: Annotated[str, Field(max_length=1024)] = ""
    #: what ``gpu_hours`` counts: accelerator-hours, or effective (H100-equivalent) hours
    unit: Literal["gpu_hours", "effective"] = "gpu_hours"

    @model_validator(mode="after")
    def _period(self) -> AllocationIn:
        if self.period_end_ms <= self.period_start_ms:
            raise ValueError("period_end_ms must be after period_start_ms")
        return self


class AllocationPatch(RequestBody):
    state: Stored


class AllocationOut(BaseModel):
    id: int
    project: str
    model: str
    gpu_hours: float
    used_gpu_hours: float
    period_start_ms: int
    period_end_ms: int
    guaranteed: int
    over_budget: str
    state: Shown
    note: str
    #: the unit of ``gpu_hours`` and ``used_gpu_hours``: ``gpu_hours`` or ``effective``
    unit: str = "gpu_hours"


def allocation_out(s: Session, a: AllocationRow, path: str, now: int, catalogue: Catalogue) -> AllocationOut:
    # an organisation's or a sector's allocation counts the usage of every project under it
    under = None if path.count("/") >= 2 else tenant_budget.projects_under(s, path)
    used = budget.used_hours(s, a, now, catalogue, under)
    shown: str = a.state
    if a.state == "active":
        if now >= a.period_end_ms:
            shown = "expired"
        elif used >= a.gpu_hours:
            shown = "exhausted"
    return AllocationOut(
        id=a.id,
        project=path,
        model=a.model,
        gpu_hours=a.gpu_hours,
        used_gpu_hours=round(used, 6),
        period_start_ms=a.period_start_ms,
        period_end_ms=a.period_end_ms,
        guaranteed=a.guaranteed,
        over_budget=a.over_budget,
        state=shown,  # type: ignore[arg-type]
        note=a.note,
        unit=a.unit,
    )


def _tenant_of(s: Session, caller: Caller, body: AllocationIn) -> TenantRow:
    """The project the allocation is for; or, for a pool admin, an organisation or a sector
    (a budget over every project under it, ADR 0018: GPU-hours only, no guarantee)."""
    row = s.scalar(select(TenantRow).where(TenantRow.path == body.project))
    if row is None or row.kind == "project" or not caller.is_pool_admin:
        return resolve_project(s, caller, body.project)
    if body.guaranteed:
        raise invalid(
            "guaranteed",
            f"{row.path} is a {row.kind}: its allocation is a budget; guarantee accelerators "
            "to it in the tenant tree (PATCH /v1/tenants)",
        )
    return row


@router.get("", response_model=list[AllocationOut], responses=responses(401), summary="Allocations")
def list_allocations(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    project: Annotated[str | None, Query(max_length=255)] = None,
) -> list[AllocationOut]:
    paths = {k: v for k, v in s.execute(select(TenantRow.id, TenantRow.path))}
    q = select(AllocationRow).order_by(AllocationRow.id)
    if project is not None:
        q = q.where(AllocationRow.project_id == resolve_project(s, caller, project).id)
    now = rt.clock()
    return [
        allocation_out(s, a, paths.get(a.project_id, ""), now, rt.catalogue)
        for a in s.scalars(q)
        if caller.sees_all or a.project_id in caller.member_of or a.project_id in caller.admin_of
    ]


@router.post(
    "",
    status_code=201,
    response_model=AllocationOut,
    responses=responses(401, 403, 404, 422),
    summary="Create or request an allocation",
)
def create_allocation(body: AllocationIn, caller: CallerDep, rt: RuntimeDep) -> AllocationOut:
    if body.model != ANY_MODEL and body.model not in rt.fleet.gpus_by_model():
        raise invalid(
            "model",
            f"the fleet has no {body.model} accelerators (known: {', '.join(rt.fleet.gpus_by_model())}, *)",
        )
    now = rt.clock()
    with rt.factory.begin() as s:
        project = _tenant_of(s, caller, body)
        if not caller.is_pool_admin:
            if not caller.can_submit(project.id):
                raise ApiProblem(403, f"you are not a member of {project.path}", kind="forbidden")
            if body.state != "requested":
                raise ApiProblem(
                    403, "only a pool admin may approve or activate an allocation", kind="forbidden"
                )
        row = AllocationRow(
            project_id=project.id,
            model=body.model,
            gpu_hours=body.gpu_hours,
            period_start_ms=body.period_start_ms,
            period_end_ms=body.period_end_ms,
            guaranteed=body.guaranteed,
            over_budget=body.over_budget,
            state=body.state,
            note=body.note,
            created_ms=now,
            unit=body.unit,
        )
        s.add(row)
        validate_tree(s, rt)
        store.audit(s, caller.name, "allocation.create", f"tenant/{project.path}", body.model_dump(), now)
        s.flush()
        out = allocation_out(s, row, project.path, now, rt.catalogue)
    rt.request_rebuild()
    return out


@router.patch(
    "/{allocation_id}",
    response_model=AllocationOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Move an allocation along its lifecycle",
)
def patch_allocation(
    allocation_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: AllocationPatch,
    caller: CallerDep,
    rt: RuntimeDep,
) -> AllocationOut:
    now = rt.clock()
    with rt.factory.begin() as s:
        row = s.get(AllocationRow, allocation_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found(f"allocation {allocation_id}")
        if not caller.is_pool_admin:
            raise ApiProblem(403, "only a pool admin may change an allocation", kind="forbidden")
        if body.state != row.state and body.state not in MOVES[row.state]:
            raise ApiProblem(
                409, f"an allocation cannot go from {row.state} to {body.state}", kind="bad-transition"
            )
        before = row.state
        row.state = body.state
        validate_tree(s, rt)
        store.audit(
            s,
            caller.name,
            "allocation.update",
            f"allocation/{row.id}",
            {"from": before, "to": body.state},
            now,
        )
        path = s.get(TenantRow, row.project_id)
        out = allocation_out(s, row, path.path if path else "", now, rt.catalogue)
    rt.request_rebuild()
    return out
