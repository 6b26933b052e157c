"""``/v1/reports``: the usage report over time and the public accountability report.

This module owns the report routes. ``GET /v1/reports/usage`` gives, per time bucket, group and
accelerator model, GPU-hours, effective GPU-hours, jobs, waits and share of entitlement
(``gpupool.service.report.usage_table``), within what the caller may see: the figures say
their ``scope``. ``GET /v1/reports/public?period=2026-Q1`` gives the public report's
aggregates (``gpupool.service.report.public``) to any signed-in user: it names sectors, calls
and models, never a project, job or user.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.problems import invalid, responses
from gpupool.service.api.usage import instant
from gpupool.service.report.buckets import Every, PeriodError, buckets, period
from gpupool.service.report.public import public_report
from gpupool.service.report.usage_table import By, Scope, usage_lines

router = APIRouter(prefix="/v1/reports", tags=["reports"])
DAY_MS = 86_400_000
#: the default range: the last 30 days
DEFAULT_DAYS = 30


class UsageLineOut(BaseModel):
    period: str = Field(description="ISO date the bucket starts on (UTC)")
    start_ms: int
    end_ms: int
    key: str = Field(description="sector, organisation or project path, or user name")
    model: str
    gpu_hours: float
    effective_gpu_hours: float
    jobs: int = Field(description="jobs that ran in the bucket")
    started: int = Field(description="jobs whose first start falls in the bucket (the waits' sample)")
    wait_p50_s: float | None
    wait_p95_s: float | None
    entitlement_gpu_hours: float | None = Field(
        description="guaranteed accelerators of this model times the bucket's hours (none for users)"
    )
    share_of_entitlement: float | None


class UsageReportOut(BaseModel):
    by: By
    every: Every
    from_ms: int
    to_ms: int
    scope: Scope
    rows: list[UsageLineOut]


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


@router.get(
    "/usage",
    response_model=UsageReportOut,
    responses=responses(401, 422),
    summary="Usage over time by sector, organisation, project or user",
)
def usage_report(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    by: By = By.PROJECT,
    every: Every = Every.DAY,
    start: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description="ISO 8601 date/instant or epoch ms; default: 30 days before to",
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(alias="to", max_length=64, description="ISO 8601 date/instant or epoch ms; default: now"),
    ] = None,
) -> UsageReportOut:
    now = rt.clock()
    to_ms = instant("to", end, now)
    from_ms = instant("from", start, max(0, to_ms - DEFAULT_DAYS * DAY_MS))
    if to_ms <= from_ms:
        raise invalid("to", "must be after from")
    try:
        cuts = buckets(from_ms, to_ms, every)
    except PeriodError as e:
        raise invalid("every", str(e)) from None
    scope, lines = usage_lines(s, caller, rt.catalogue, by, cuts, now)
    return UsageReportOut(
        by=by,
        every=every,
        from_ms=from_ms,
        to_ms=to_ms,
        scope=scope,
        rows=[
            UsageLineOut(
                period=x.period,
                start_ms=x.start_ms,
                end_ms=x.end_ms,
                key=x.key,
                model=x.model,
                gpu_hours=round(x.gpu_hours, 6),
                effective_gpu_hours=round(x.effective_gpu_hours, 6),
                jobs=x.jobs,
                started=x.started,
                wait_p50_s=_r(x.wait_p50_s, 3),
                wait_p95_s=_r(x.wait_p95_s, 3),
                entitlement_gpu_hours=_r(x.entitlement_gpu_hours),
                share_of_entitlement=_r(x.share_of_entitlement, 9),
            )
            for x in lines
        ],
    )


class PoolOut(BaseModel):
    fleet_gpus: int
    capacity_gpu_hours: float
    gpu_hours: float
    effective_gpu_hours: float
    utilisation: float | None
    jobs_started: int
    wait_p50_s: float | None
    wait_p95_s: float | None
    jain_fairness: float | None = Field(description="Jain's index over projects with demand")
    projects_with_demand: int
    domestic_npu_gpu_hours: float
    domestic_npu_share: float | None


class SectorOut(BaseModel):
    sector: str
    name: str = Field(description="the sector's display name")
    granted_gpu_hours: float
    used_gpu_hours: float
    left_gpu_hours: float
    gpu_hours: float = Field(description="GPU-hours the sector used in the period (with or without a grant)")
    guaranteed_gpus: int
    target_share: float
    actual_share: float | None
    jobs_started: int
    wait_p50_s: float | None
    wait_p95_s: float | None


class CallLineOut(BaseModel):
    call_id: int
    title_ko: str
    title_en: str
    sector: str
    granted_gpu_hours: float
    used_gpu_hours: float
    left_gpu_hours: float


class ModelOut(BaseModel):
    model: str
    vendor: str
    domestic: bool
    gpu_hours: float
    effective_gpu_hours: float


class PublicReportOut(BaseModel):
    period: str
    start_ms: int
    end_ms: int
    until_ms: int = Field(description="the figures run to here: the period's end, or now if sooner")
    pool: PoolOut
    sectors: list[SectorOut]
    calls: list[CallLineOut]
    models: list[ModelOut]


@router.get(
    "/public",
    response_model=PublicReportOut,
    responses=responses(401, 422),
    summary="The public accountability report of a period (aggregates only)",
)
def public(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    period_: Annotated[
        str, Query(alias="period", max_length=16, description="2026, 2026-H1, 2026-Q1 or 2026-03 (UTC)")
    ],
) -> PublicReportOut:
    try:
        start_ms, end_ms = period(period_)
    except PeriodError as e:
        raise invalid("period", str(e)) from None
    data = public_report(s, rt.catalogue, rt.fleet.total_gpus, period_.strip(), start_ms, end_ms, rt.clock())
    return PublicReportOut.model_validate(data)
