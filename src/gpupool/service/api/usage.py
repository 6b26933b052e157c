"""``/v1/usage``: GPU-hours and effective GPU-hours per project, organisation or sector.

This module owns the usage route. Viewers and pool admins see everyone's usage. Other callers
see their own projects' usage by project, and, by organisation or sector, the whole totals of
the organisations and sectors they may see (aggregates: projects they may not see count in
them, but never appear on their own), so a sector's figure is never a partial sum.
Effective GPU-hours weigh each hour by the relative throughput of the
accelerator model for the job's workload class (``gpupool.service.usage``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.problems import invalid, responses
from gpupool.service.db import TenantRow
from gpupool.service.usage import group_key, roll_up

router = APIRouter(prefix="/v1/usage", tags=["usage"])
MAX_MS = 2**62


class UsageRowOut(BaseModel):
    key: str
    gpu_hours: float
    effective_gpu_hours: float
    allocations: int


class UsageOut(BaseModel):
    by: str
    start_ms: int
    end_ms: int
    items: list[UsageRowOut]
    gpu_hours: float
    effective_gpu_hours: float


def instant(field: str, text: str | None, default: int) -> int:
    """Epoch milliseconds from ``text`` (digits: ms; else ISO 8601); 422 naming ``field``."""
    if text is None:
        return default
    if text.isascii() and text.isdigit():
        value = int(text)
    else:
        try:
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            raise invalid(field, "expected an ISO 8601 instant or epoch milliseconds") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        try:
            value = int(t.timestamp() * 1000)
        except (OverflowError, ValueError, OSError):
            raise invalid(field, "out of range") from None
    if not 0 <= value <= MAX_MS:
        raise invalid(field, "out of range")
    return value


@router.get("", response_model=UsageOut, responses=responses(401, 422), summary="Usage over a time range")
def usage(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    by: Literal["project", "organisation", "sector"] = "project",
    start: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 instant or epoch ms; default: 0")
    ] = None,
    end: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 instant or epoch ms; default: now")
    ] = None,
    path: Annotated[
        str | None, Query(max_length=255, description="Only this tenant and what is under it")
    ] = None,
) -> UsageOut:
    now = rt.clock()
    start_ms = instant("start", start, 0)
    end_ms = instant("end", end, now)
    if end_ms <= start_ms:
        raise invalid("end", "must be after start")
    paths = {k: v for k, v in s.execute(select(TenantRow.id, TenantRow.path))}
    projects: list[int] | None = None
    if not caller.sees_all:
        if by == "project":
            projects = sorted(caller.member_of | caller.admin_of)
        else:
            # Whole groups the caller may see: every project whose sector or organisation is one.
            ids = {p: t for t, p in paths.items()}
            projects = sorted(
                t
                for t, p in paths.items()
                if (g := ids.get(group_key(p, by))) is not None and caller.can_see(g)
            )
    if path is not None:
        under = [t for t, p in paths.items() if p == path or p.startswith(path + "/")]
        projects = sorted(under if projects is None else set(under) & set(projects))
    rows = store.usage_rows(s, projects, start_ms, end_ms)
    totals = roll_up(rows, paths, by, rt.catalogue, start_ms, end_ms, now)
    out = [
        UsageRowOut(
            key=t.key,
            gpu_hours=round(t.gpu_hours, 6),
            effective_gpu_hours=round(t.effective_gpu_hours, 6),
            allocations=t.allocations,
        )
        for t in totals
    ]
    return UsageOut(
        by=by,
        start_ms=start_ms,
        end_ms=end_ms,
        items=out,
        gpu_hours=round(sum(t.gpu_hours for t in totals), 6),
        effective_gpu_hours=round(sum(t.effective_gpu_hours for t in totals), 6),
    )
