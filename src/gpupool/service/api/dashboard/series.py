"""``/v1/dashboard/series``: queue depth, busy accelerators and loop cycle time over time.

This module owns the overview's time series: the samples ``gpupool.service.sampler`` keeps in
memory (a day of them), averaged into at most the points the chart draws, and how often the
sampler reads the metrics (``sample_interval_s``).
"""

from __future__ import annotations

import math
import os
from typing import Annotated, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gpupool.service.api.caller import CallerDep, RuntimeDep
from gpupool.service.api.problems import responses
from gpupool.service.sampler import DEFAULT_INTERVAL_S, SeriesSampler

router = APIRouter(tags=["dashboard"])


def sample_interval_s() -> float:
    """Seconds between series samples: ``GPUPOOL_DASHBOARD_SAMPLE_S`` (0.2 to 3600), else 5.

    An environment variable rather than a ``ServiceSettings`` field: it only tunes the
    dashboard's in-memory chart (tests and demos want denser points), not the service.
    """
    try:
        value = float(os.environ.get("GPUPOOL_DASHBOARD_SAMPLE_S", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return min(3600.0, max(0.2, value)) if math.isfinite(value) else DEFAULT_INTERVAL_S


def _sampler(request: Request) -> SeriesSampler:
    """The app's series sampler (``install`` made it)."""
    return cast(SeriesSampler, request.app.state.dashboard_sampler)


class SeriesPoint(BaseModel):
    at_ms: int
    pending: float = Field(description="jobs waiting (mean over the bucket)")
    running: float = Field(description="jobs running (mean over the bucket)")
    busy: float = Field(description="accelerators held (mean over the bucket)")
    total: int = Field(description="accelerators in the fleet")
    cycles: int = Field(description="loop cycles in the bucket")
    cycle_ms_mean: float | None = Field(description="mean loop cycle time, ms")
    cycle_ms_p95: float | None = Field(description="95th percentile loop cycle time (bucket bound), ms")


class SeriesOut(BaseModel):
    window_s: int
    interval_s: float
    points: list[SeriesPoint]


@router.get(
    "/v1/dashboard/series",
    response_model=SeriesOut,
    responses=responses(401, 422),
    summary="Queue depth, running jobs, busy accelerators and loop cycle time over time",
)
def series(
    request: Request,
    caller: CallerDep,
    rt: RuntimeDep,
    window_s: Annotated[int, Query(ge=60, le=7 * 86_400, description="How far back, seconds")] = 3600,
    points: Annotated[int, Query(ge=10, le=2000, description="At most this many points")] = 240,
) -> SeriesOut:
    sampler = _sampler(request)
    got = sampler.samples(rt.clock() - window_s * 1000)
    # Average consecutive samples into at most ``points`` buckets (a day is 17,280 samples).
    step = max(1, -(-len(got) // points))
    out: list[SeriesPoint] = []
    for i in range(0, len(got), step):
        chunk = got[i : i + step]
        cycles = sum(c.cycles for c in chunk)
        timed = [c for c in chunk if c.cycle_ms_mean is not None and c.cycles > 0]
        mean = (
            sum((c.cycle_ms_mean or 0.0) * c.cycles for c in timed) / sum(c.cycles for c in timed)
            if timed
            else None
        )
        p95s = [c.cycle_ms_p95 for c in chunk if c.cycle_ms_p95 is not None]
        out.append(
            SeriesPoint(
                at_ms=chunk[-1].at_ms,
                pending=sum(c.pending for c in chunk) / len(chunk),
                running=sum(c.running for c in chunk) / len(chunk),
                busy=sum(c.busy for c in chunk) / len(chunk),
                total=chunk[-1].total or rt.fleet.total_gpus,
                cycles=cycles,
                cycle_ms_mean=mean,
                cycle_ms_p95=max(p95s) if p95s else None,
            )
        )
    return SeriesOut(window_s=window_s, interval_s=sampler.interval_s * step, points=out)
