"""``/v1/dashboard/tenants``: the tenants page's tree.

This module owns tenant usage as the dashboard draws it: the sector > organisation > project
tree the caller may see, each tenant with its guaranteed accelerators (its own plus active
allocations'; its children's when it sets none), the accelerators its running jobs hold now,
both as shares of the fleet, and GPU-hours and effective GPU-hours over a window.

Sector and organisation rows are always the whole tenant's totals, for every role: a caller who
may see only some projects under a sector still gets the sector's real figures (aggregates, no
job detail), never a partial sum next to the sector's full guarantee. Project rows show usage
only for the caller's own projects (``usage_shown``); the rest read as zero there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.dashboard.session import usage_projects
from gpupool.service.api.problems import responses
from gpupool.service.db import JobRow
from gpupool.service.job_status import JobStatus
from gpupool.service.tenant_tree import active_allocations, guarantees, tenant_rows
from gpupool.service.usage import HOUR_MS, gpu_ms_within, speed

router = APIRouter(tags=["dashboard"])


class TenantUsage(BaseModel):
    path: str
    name: str
    kind: str
    parent: str | None
    depth: int
    guaranteed: dict[str, int] = Field(description="accelerators by model: own, plus active allocations'")
    guaranteed_gpus: int = Field(description="the tenant's guarantee, or its children's when it sets none")
    in_use_gpus: int = Field(description="accelerators its running jobs hold now")
    guaranteed_share: float = Field(description="guaranteed_gpus / accelerators in the fleet")
    actual_share: float = Field(description="in_use_gpus / accelerators in the fleet")
    gpu_hours: float
    effective_gpu_hours: float
    usage_shown: bool = Field(description="false where the caller may not see this tenant's usage")
    whole: bool = Field(
        description="the figures cover everything under this tenant, projects the caller may not see included"
    )


class TenantsOut(BaseModel):
    fleet_gpus: int
    busy_gpus: int
    start_ms: int
    end_ms: int
    partial: bool = Field(
        description="project rows show usage of the caller's projects only (sector and organisation "
        "rows are whole totals either way)"
    )
    tenants: list[TenantUsage]


@router.get(
    "/v1/dashboard/tenants",
    response_model=TenantsOut,
    responses=responses(401, 422),
    summary="The tenant tree with guarantees, accelerators in use and usage over a window",
)
def tenants_view(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    window_h: Annotated[float, Query(gt=0, le=24 * 366, description="Usage over the last hours")] = 168,
) -> TenantsOut:
    now = rt.clock()
    start = max(0, now - int(window_h * HOUR_MS))
    rows = tenant_rows(s)
    by_id = {r.id: r for r in rows}
    children: dict[int | None, list[int]] = {}
    for r in rows:
        children.setdefault(r.parent_id, []).append(r.id)
    shown = usage_projects(caller)
    guaranteed = guarantees(rows, active_allocations(s, now))
    # Accelerators held now, per project (running jobs' gang sizes).
    held: dict[int, int] = {}
    running = s.execute(
        select(JobRow.project_id, func.sum(JobRow.spec["gpus"].as_integer()))
        .where(JobRow.state == JobStatus.RUNNING)
        .group_by(JobRow.project_id)
    ).all()
    # Every project's figures are gathered: sectors and organisations sum all of theirs; only
    # project rows are then limited to what the caller may see.
    for pid, g in running:
        held[pid] = int(g or 0)
    hours: dict[int, list[float]] = {}
    cat = rt.catalogue
    for u in store.usage_rows(s, None, start, now):
        ms = gpu_ms_within(u, start, now, now)
        if ms <= 0:
            continue
        h = ms / HOUR_MS
        acc = hours.setdefault(u.project_id, [0.0, 0.0])
        acc[0] += h
        acc[1] += h * speed(cat, u)
    total = rt.fleet.total_gpus or 1

    # A tenant without a guarantee of its own guarantees what its children are guaranteed
    # (all of them: it is this tenant's figure, whichever children the caller may see).
    effective: dict[int, int] = {}

    def guarantee(tid: int) -> int:
        kids = sum(guarantee(c) for c in children.get(tid, []))
        effective[tid] = sum(guaranteed[tid].values()) or kids
        return effective[tid]

    for root in children.get(None, []):
        guarantee(root)

    def visit(tid: int, depth: int) -> tuple[list[TenantUsage], int, float, float]:
        """``tid`` then its visible subtree; and its whole (in use, GPU-h, effective GPU-h)."""
        r = by_id[tid]
        below: list[TenantUsage] = []
        use = held.get(tid, 0)
        gh, egh = hours.get(tid, [0.0, 0.0])
        for c in children.get(tid, []):
            items, cu, ch, ce = visit(c, depth + 1)
            if caller.can_see(c):
                below += items
            use, gh, egh = use + cu, gh + ch, egh + ce
        g = effective[tid]
        shown_here = shown is None or r.kind != "project" or tid in shown
        # A project the caller may not see reports nothing of its own (its parent's totals
        # include it); a sector or organisation row is the whole tenant's aggregate.
        row_use, row_gh, row_egh = (use, gh, egh) if shown_here else (0, 0.0, 0.0)
        node = TenantUsage(
            path=r.path,
            name=r.name,
            kind=r.kind,
            parent=by_id[r.parent_id].path if r.parent_id is not None else None,
            depth=depth,
            guaranteed=guaranteed[tid],
            guaranteed_gpus=g,
            in_use_gpus=row_use,
            guaranteed_share=round(g / total, 6),
            actual_share=round(row_use / total, 6),
            gpu_hours=round(row_gh, 6),
            effective_gpu_hours=round(row_egh, 6),
            usage_shown=shown_here,
            whole=r.kind != "project",
        )
        return [node, *below], use, gh, egh

    out: list[TenantUsage] = []
    for root in children.get(None, []):
        if caller.can_see(root):
            out += visit(root, 0)[0]
    busy = int(
        s.scalar(select(func.sum(JobRow.spec["gpus"].as_integer())).where(JobRow.state == JobStatus.RUNNING))
        or 0
    )
    return TenantsOut(
        fleet_gpus=rt.fleet.total_gpus,
        busy_gpus=busy,
        start_ms=start,
        end_ms=now,
        partial=shown is not None,
        tenants=out,
    )
