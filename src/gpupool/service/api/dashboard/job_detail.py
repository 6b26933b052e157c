"""``/v1/dashboard/jobs/{job_id}``: the job page.

This module owns what the job page shows beyond ``JobOut``: the timeline from the job's usage
intervals (one per attempt: started, preempted, resumed, how it ended), the attempts with
their GPU-hours, the placement in the topology (site, cluster, block, rack, NVLink domain, and
the tightest unit that holds it all), and GPU telemetry where an executor recorded some.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from gpupool.core.fleet import Node
from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.dashboard.queue import MS_MAX, can_cancel
from gpupool.service.api.jobs import JobOut, job_out_of, visible_job
from gpupool.service.api.problems import responses
from gpupool.service.db import JobRow, UsageRow
from gpupool.service.job_status import JobStatus
from gpupool.service.runtime import Runtime
from gpupool.service.usage import HOUR_MS, gpu_ms_within

router = APIRouter(tags=["dashboard"])


class TimelineEvent(BaseModel):
    at_ms: int
    what: Literal[
        "submitted", "started", "preempted", "resumed", "completed", "failed", "cancelled", "rejected"
    ]
    attempt: int
    detail: str = ""


class AttemptOut(BaseModel):
    attempt: int
    allocation_id: str
    model: str
    gpus: int
    start_ms: int
    end_ms: int | None
    gpu_hours: float


class PlacedNode(BaseModel):
    node: str
    accelerators: list[int]
    model: str
    site: str
    cluster: str
    block: str
    rack: str
    nvlink_rack: bool
    nvlink_domain: int


class TelemetryPoint(BaseModel):
    at_ms: int
    device: str
    utilization_pct: int
    memory_used_mib: int


class JobDetail(BaseModel):
    job: JobOut
    can_cancel: bool
    timeline: list[TimelineEvent]
    attempts: list[AttemptOut]
    placement: list[PlacedNode]
    span: str = Field(description="the smallest topology unit holding the whole placement")
    telemetry: list[TelemetryPoint]


#: a job's timeline lists at most this many attempts (the latest ones)
MAX_ATTEMPTS_SHOWN = 200


@router.get(
    "/v1/dashboard/jobs/{job_id}",
    response_model=JobDetail,
    responses=responses(401, 404),
    summary="A job with its timeline, placement in the topology and telemetry",
)
def job_detail(job_id: str, caller: CallerDep, rt: RuntimeDep, s: SessionDep) -> JobDetail:
    row = visible_job(s, caller, job_id)
    out = job_out_of(s, row)
    first = max(1, row.attempt - MAX_ATTEMPTS_SHOWN + 1)
    ids = [store.allocation_id(row.seq, a) for a in range(first, row.attempt + 1)]
    # By allocation id (unique, indexed): the usage table is the largest one in the service.
    usage = list(s.scalars(select(UsageRow).where(UsageRow.allocation_id.in_(ids)))) if ids else []
    usage.sort(key=lambda u: u.start_ms)
    now = rt.clock()
    timeline = [TimelineEvent(at_ms=row.submit_ms, what="submitted", attempt=0)]
    attempts = []
    for u in usage:
        n = int(u.allocation_id.rsplit(".", 1)[-1])
        attempts.append(
            AttemptOut(
                attempt=n,
                allocation_id=u.allocation_id,
                model=u.model,
                gpus=u.gpus,
                start_ms=u.start_ms,
                end_ms=u.end_ms,
                gpu_hours=round(gpu_ms_within(u, u.start_ms, MS_MAX, now) / HOUR_MS, 6),
            )
        )
        timeline.append(TimelineEvent(at_ms=u.start_ms, what="started" if n == 1 else "resumed", attempt=n))
        last = n == row.attempt
        if u.end_ms is not None and not (last and row.state in store.FINAL_STATES):
            detail = row.detail if last and row.reason == "preempted" else ""
            timeline.append(TimelineEvent(at_ms=u.end_ms, what="preempted", attempt=n, detail=detail))
    if row.state in store.FINAL_STATES and row.end_ms is not None:
        what = cast(Any, row.state)
        detail = row.detail
        if row.state == JobStatus.FAILED and row.exit_code is not None and not detail:
            detail = f"exit status {row.exit_code}"
        timeline.append(TimelineEvent(at_ms=row.end_ms, what=what, attempt=row.attempt, detail=detail))
    timeline.sort(key=lambda e: (e.at_ms, e.attempt))
    placement, span = _placement(rt, row)
    return JobDetail(
        job=out,
        can_cancel=can_cancel(caller, row),
        timeline=timeline,
        attempts=attempts,
        placement=placement,
        span=span,
        telemetry=_telemetry(rt, ids[-3:]),
    )


def _placement(rt: Runtime, row: JobRow) -> tuple[list[PlacedNode], str]:
    f = rt.fleet
    out = []
    nodes = []
    for name, acc in row.placement or []:
        idx = f.node_by_name.get(str(name))
        if idx is None:
            continue
        n = f.nodes[idx]
        nodes.append(n)
        rack = f.racks[n.rack]
        out.append(
            PlacedNode(
                node=n.name,
                accelerators=[int(i) for i in acc],
                model=n.model,
                site=f.clusters[n.cluster].site,
                cluster=f.clusters[n.cluster].name,
                block=f.blocks[n.block].name,
                rack=rack.name,
                nvlink_rack=rack.nvlink,
                nvlink_domain=n.nvlink,
            )
        )
    span = ""
    if nodes:
        levels: list[tuple[str, Callable[[Node], int]]] = [
            ("one node", lambda n: n.index),
            ("one NVLink domain", lambda n: n.nvlink),
            ("one rack", lambda n: n.rack),
            ("one network block", lambda n: n.block),
            ("one cluster", lambda n: n.cluster),
        ]
        span = next((label for label, key in levels if len({key(n) for n in nodes}) == 1), "several clusters")
    return out, span


def _telemetry(rt: Runtime, allocation_ids: list[str]) -> list[TelemetryPoint]:
    """Samples the executors kept for these allocations (the local executor on real GPUs)."""
    # this process's executors, or what the leader's scheduler process published (ADR 0006)
    out: list[TelemetryPoint] = []
    for aid in allocation_ids:
        for t in rt.telemetry(aid):
            out.append(
                TelemetryPoint(
                    at_ms=int(t.at_ms),
                    device=str(t.device),
                    utilization_pct=int(t.utilization_pct),
                    memory_used_mib=int(t.memory_used_mib),
                )
            )
    out.sort(key=lambda p: (p.at_ms, p.device))
    return out[-2000:]
