"""``/v1/dashboard/burndown``: a project's allocations burning down over their periods.

This module owns the burn-down: for each allocation of a project, GPU-hours and effective
GPU-hours used since its period began, sampled at evenly spaced instants, and its state as the
page shows it (an active allocation past its period is expired, past its grant exhausted).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from gpupool.core.tenancy import ANY_MODEL
from gpupool.service import budget, store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.dashboard.session import usage_projects
from gpupool.service.api.jobs import resolve_project
from gpupool.service.api.problems import responses
from gpupool.service.db import AllocationRow
from gpupool.service.usage import HOUR_MS, gpu_ms_within, speed

router = APIRouter(tags=["dashboard"])


class BurnPoint(BaseModel):
    at_ms: int
    gpu_hours: float = Field(description="used since the period began")
    effective_gpu_hours: float


class BurnDown(BaseModel):
    id: int
    project: str
    model: str
    state: str
    gpu_hours: float = Field(description="granted")
    #: what ``gpu_hours`` counts: accelerator-hours or effective (H100-equivalent) hours (ADR 0018)
    unit: str = "gpu_hours"
    used_gpu_hours: float
    used_effective_gpu_hours: float
    guaranteed: int
    over_budget: str
    period_start_ms: int
    period_end_ms: int
    points: list[BurnPoint]


@router.get(
    "/v1/dashboard/burndown",
    response_model=list[BurnDown],
    responses=responses(401, 404, 422),
    summary="A project's allocations: GPU-hours used over each period against the grant",
)
def burndown(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    project: Annotated[str, Query(min_length=1, max_length=255)],
    points: Annotated[int, Query(ge=2, le=500)] = 60,
) -> list[BurnDown]:
    p = resolve_project(s, caller, project)
    shown = usage_projects(caller)
    if shown is not None and p.id not in shown:
        return []  # as /v1/allocations: the branch is visible, its allocations are not
    now = rt.clock()
    cat = rt.catalogue
    out = []
    for a in s.scalars(
        select(AllocationRow).where(AllocationRow.project_id == p.id).order_by(AllocationRow.id)
    ):
        model = None if a.model == ANY_MODEL else a.model
        usage = store.usage_rows(s, [p.id], a.period_start_ms, a.period_end_ms, model)
        end = max(a.period_start_ms + 1, min(a.period_end_ms, now))
        step = (end - a.period_start_ms) / (points - 1)
        series = []
        for i in range(points):
            t = int(a.period_start_ms + step * i) if i < points - 1 else end
            gh = egh = 0.0
            for u in usage:
                h = gpu_ms_within(u, a.period_start_ms, t, now) / HOUR_MS
                gh += h
                egh += h * speed(cat, u)
            series.append(BurnPoint(at_ms=t, gpu_hours=round(gh, 6), effective_gpu_hours=round(egh, 6)))
        shown_state = a.state
        if a.state == "active":
            if now >= a.period_end_ms:
                shown_state = "expired"
            elif budget.used_hours(s, a, now, cat) >= a.gpu_hours:
                shown_state = "exhausted"
        out.append(
            BurnDown(
                id=a.id,
                project=p.path,
                model=a.model,
                state=shown_state,
                gpu_hours=a.gpu_hours,
                unit=a.unit,
                used_gpu_hours=series[-1].gpu_hours,
                used_effective_gpu_hours=series[-1].effective_gpu_hours,
                guaranteed=a.guaranteed,
                over_budget=a.over_budget,
                period_start_ms=a.period_start_ms,
                period_end_ms=a.period_end_ms,
                points=series,
            )
        )
    return out
