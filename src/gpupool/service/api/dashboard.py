"""``/v1/dashboard/*`` and ``/v1/whatif``: what the web dashboard needs beyond the core API.

This module owns the read models the dashboard draws and the API alone cannot give without
shipping the whole database to the browser:

- ``session``: who the caller is and what they may do (computed with the same ``Caller``
  rules as the routes, so the UI never offers what the API would refuse);
- ``fleet``: occupancy aggregated per site, cluster, model, network block and, for one block,
  per rack and node (a national fleet has tens of thousands of nodes: the browser gets the
  level it shows);
- ``series``: queue depth, busy accelerators and loop cycle time over time
  (``gpupool.web.sampler``);
- ``jobs``: the queue, filtered (tenant subtree, project, user, accelerator model, state),
  sorted (submission, estimated start, start, priority, size) and cursor-paginated by keyset,
  so the 100,000th job costs what the first does; each row says whether the caller may
  cancel it;
- ``jobs/{id}``: a job's timeline (from its usage intervals, one per attempt), its placement
  in the topology, and GPU telemetry where the executor recorded some;
- ``tenants`` and ``burndown``: the tenant tree with guarantees, accelerators in use and usage,
  and allocation burn-down in GPU-hours and effective GPU-hours;
- ``/v1/whatif``: simulations in the background (``gpupool.web.whatif``), for viewers and pool
  admins only, bounded in size and time.

Visibility is the API's: members see their projects' jobs and usage; viewers and pool admins
see everything; an object the caller may not see is a 404.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import String, and_, case, func, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from gpupool.core.fleet import Node
from gpupool.core.policy import POLICIES
from gpupool.core.tenancy import ANY_MODEL
from gpupool.service import budget, store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.jobs import JobOut, job_names, job_out, job_out_of, resolve_project, visible_job
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.api.users import memberships
from gpupool.service.auth import Caller
from gpupool.service.db import AllocationRow, JobRow, TenantRow, UsageRow, UserRow
from gpupool.service.request_body import RequestBody
from gpupool.service.runtime import Runtime
from gpupool.service.tenant_tree import active_allocations, guarantees, tenant_rows
from gpupool.service.usage import HOUR_MS, gpu_ms_within, speed
from gpupool.web.sampler import DEFAULT_INTERVAL_S, SeriesSampler
from gpupool.web.whatif import (
    MAX_HOURS,
    MAX_LOAD,
    MAX_POLICIES,
    WORKLOADS,
    WhatIfBusy,
    WhatIfRuns,
    fleets,
    tenants,
)

router = APIRouter(tags=["dashboard"])
MS_MAX = 2**62
PRIORITY_RANK = {"reserved": 0, "high": 1, "normal": 2, "low": 3, "preemptible": 4}


def install(app: FastAPI) -> None:
    """Add these routes, the series sampler and the what-if runs to ``app``.

    The sampler runs while the app serves: the app's lifespan is wrapped so that it starts
    after the service's own start-up and stops (and what-if runs are ended) before its
    shutdown.
    """
    rt = cast(Runtime, app.state.runtime)
    app.state.dashboard_sampler = SeriesSampler(rt.metrics.registry, rt.clock, interval_s=sample_interval_s())
    app.state.dashboard_whatif = WhatIfRuns(rt.settings.data_dir / "whatif")
    app.include_router(router)
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            app.state.dashboard_sampler.start()
            try:
                yield state
            finally:
                app.state.dashboard_sampler.stop()
                app.state.dashboard_whatif.close()

    app.router.lifespan_context = lifespan


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
    return cast(SeriesSampler, request.app.state.dashboard_sampler)


def _runs(request: Request) -> WhatIfRuns:
    return cast(WhatIfRuns, request.app.state.dashboard_whatif)


def _usage_projects(caller: Caller) -> frozenset[int] | None:
    """Projects whose jobs and usage the caller sees (None: all), as ``/v1/jobs`` and ``/v1/usage``."""
    return None if caller.sees_all else frozenset(caller.member_of | caller.admin_of)


# ---------------------------------------------------------------------------------- session


class MembershipOut(BaseModel):
    tenant: str
    role: str


class SessionOut(BaseModel):
    user: str
    display_name: str
    role: str
    sees_all: bool
    memberships: list[MembershipOut]
    submit_projects: list[str] = Field(description="Projects the caller may submit jobs to")
    can_whatif: bool
    can_drain: bool
    fleet: str
    models: list[str]
    max_walltime_s: int
    default_walltime_s: int


@router.get(
    "/v1/dashboard/session",
    response_model=SessionOut,
    responses=responses(401),
    summary="Who the caller is and what the dashboard may offer them",
)
def session(caller: CallerDep, rt: RuntimeDep, s: SessionDep) -> SessionOut:
    user = s.get(UserRow, caller.user_id)
    assert user is not None
    projects = s.execute(
        select(TenantRow.id, TenantRow.path).where(TenantRow.kind == "project").order_by(TenantRow.path)
    ).all()
    return SessionOut(
        user=user.name,
        display_name=user.display_name,
        role=user.role,
        sees_all=caller.sees_all,
        memberships=[MembershipOut(tenant=p, role=r) for p, r in memberships(s, user.id)],
        submit_projects=[p for i, p in projects if caller.can_submit(i)],
        can_whatif=caller.sees_all,
        can_drain=caller.is_pool_admin,
        fleet=rt.fleet.name,
        models=sorted(rt.fleet.gpus_by_model()),
        max_walltime_s=rt.settings.max_walltime_s,
        default_walltime_s=rt.settings.default_walltime_s,
    )


# ------------------------------------------------------------------------------------ fleet


class Occupancy(BaseModel):
    name: str
    total: int = Field(default=0, description="accelerators")
    busy: int = Field(default=0, description="accelerators held by running jobs")
    unavailable: int = Field(default=0, description="free accelerators on drained or down nodes")
    nodes: int = Field(default=0, description="nodes")
    drained: int = Field(default=0, description="nodes")
    down: int = Field(default=0, description="nodes")


class BlockOccupancy(Occupancy):
    racks: int = 0


class ClusterOccupancy(Occupancy):
    site: str
    models: list[Occupancy]
    blocks: list[BlockOccupancy]


class SiteOccupancy(Occupancy):
    region: str


class NodeCell(BaseModel):
    name: str
    model: str
    gpus: int
    busy: int
    state: str
    reason: str


class UnavailableNode(NodeCell):
    cluster: str


class RackOccupancy(Occupancy):
    nvlink: bool
    node_cells: list[NodeCell]


#: drained or down nodes listed by name in the fleet view (their counts are always complete)
MAX_UNAVAILABLE_LISTED = 500


class FleetView(BaseModel):
    name: str
    description: str
    total: int
    busy: int
    unavailable: int
    sites: list[SiteOccupancy]
    models: list[Occupancy]
    clusters: list[ClusterOccupancy]
    cluster: str | None = None
    block: str | None = None
    racks: list[RackOccupancy] = Field(default_factory=list, description="racks of the chosen block")
    unavailable_nodes: list[UnavailableNode] = Field(
        default_factory=list, description=f"nodes down, then drained (at most {MAX_UNAVAILABLE_LISTED})"
    )


class _Tally:
    """Counts for one unit of the fleet. Plain slots, not a model: a national fleet adds up
    35,000 nodes into five levels on every refresh, and model attribute writes cost ~10x."""

    __slots__ = ("busy", "down", "drained", "nodes", "total", "unavailable")

    def __init__(self) -> None:
        self.total = self.busy = self.unavailable = self.nodes = self.drained = self.down = 0

    def add(self, total: int, busy: int, state: str) -> None:
        self.total += total
        self.busy += busy
        self.nodes += 1
        if state != "up":
            self.unavailable += total - busy
            if state == "drained":
                self.drained += 1
            elif state == "down":
                self.down += 1

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def _busy_by_node(s: Session) -> dict[str, int]:
    """Accelerators held per node. A count, not a set of ids: the core never places two
    allocations on one accelerator, and a national fleet holds 200,000 of them."""
    out: dict[str, int] = {}
    for _, placement in store.running_placements(s):
        for node, ids in placement:
            out[str(node)] = out.get(str(node), 0) + len(ids)
    return out


@router.get(
    "/v1/dashboard/fleet",
    response_model=FleetView,
    responses=responses(401, 404, 422),
    summary="Occupancy per site, cluster, model and block; racks and nodes of one block",
)
def fleet_view(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    cluster: Annotated[str | None, Query(max_length=64)] = None,
    block: Annotated[str | None, Query(max_length=64)] = None,
) -> FleetView:
    f = rt.fleet
    if (cluster is None) != (block is None):
        raise invalid("block", "give both cluster and block, or neither")
    want_block = -1
    if cluster is not None:
        ci = f.cluster_by_name.get(cluster)
        found = [b.index for b in f.blocks if ci is not None and b.cluster == ci and b.name == block]
        if not found:
            raise not_found(f"block {block!r} of cluster {cluster!r}")
        want_block = found[0]
    busy = _busy_by_node(s)
    states = store.node_states(s)
    sites = {st.name: _Tally() for st in f.sites}
    clusters = [_Tally() for _ in f.clusters]
    blocks = [_Tally() for _ in f.blocks]
    models: defaultdict[str, _Tally] = defaultdict(_Tally)
    per_cluster_model: defaultdict[tuple[int, str], _Tally] = defaultdict(_Tally)
    racks: dict[int, tuple[_Tally, list[NodeCell]]] = {}
    unavailable: list[UnavailableNode] = []
    for n in f.nodes:
        st = states.get(n.name)
        state = st.state if st is not None else "up"
        held = min(busy.get(n.name, 0), n.gpus)
        clusters[n.cluster].add(n.gpus, held, state)
        sites[f.clusters[n.cluster].site].add(n.gpus, held, state)
        blocks[n.block].add(n.gpus, held, state)
        models[n.model].add(n.gpus, held, state)
        per_cluster_model[(n.cluster, n.model)].add(n.gpus, held, state)
        listed = st is not None and state != "up"
        if not listed and n.block != want_block:
            continue  # counted only: a national fleet's 35,000 nodes get no cell each
        reason = st.reason if st is not None else ""
        cell = NodeCell(name=n.name, model=n.model, gpus=n.gpus, busy=held, state=state, reason=reason)
        if listed:
            unavailable.append(UnavailableNode(**cell.model_dump(), cluster=f.clusters[n.cluster].name))
        if n.block == want_block:
            tally, cells = racks.setdefault(n.rack, (_Tally(), []))
            tally.add(n.gpus, held, state)
            cells.append(cell)
    racks_in_block = [0] * len(f.blocks)
    for r in f.racks:
        racks_in_block[r.block] += 1
    cluster_out = [
        ClusterOccupancy(name=c.name, site=c.site, models=[], blocks=[], **clusters[c.index].counts())
        for c in f.clusters
    ]
    for b in f.blocks:
        cluster_out[b.cluster].blocks.append(
            BlockOccupancy(name=b.name, racks=racks_in_block[b.index], **blocks[b.index].counts())
        )
    for (ci, model), tally in sorted(per_cluster_model.items()):
        cluster_out[ci].models.append(Occupancy(name=model, **tally.counts()))
    unavailable.sort(key=lambda u: (u.state != "down", u.cluster, u.name))
    return FleetView(
        name=f.name,
        description=f.description,
        total=sum(c.total for c in clusters),
        busy=sum(c.busy for c in clusters),
        unavailable=sum(c.unavailable for c in clusters),
        sites=[SiteOccupancy(name=st.name, region=st.region, **sites[st.name].counts()) for st in f.sites],
        models=[Occupancy(name=k, **models[k].counts()) for k in sorted(models)],
        clusters=cluster_out,
        cluster=cluster,
        block=block,
        racks=[
            RackOccupancy(name=f.racks[k].name, nvlink=f.racks[k].nvlink, node_cells=cells, **tally.counts())
            for k, (tally, cells) in sorted(racks.items())
        ],
        unavailable_nodes=unavailable[:MAX_UNAVAILABLE_LISTED],
    )


# ----------------------------------------------------------------------------------- series


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


# ------------------------------------------------------------------------------------- jobs

QueueState = Literal[
    "active", "pending", "running", "finished", "completed", "failed", "cancelled", "rejected", "all"
]
SortKey = Literal["submitted", "estimated_start", "started", "priority", "gpus"]
STATE_SETS: dict[str, tuple[str, ...] | None] = {
    "active": store.ACTIVE_STATES,
    "finished": store.FINAL_STATES,
    "all": None,
}


class QueueItem(JobOut):
    can_cancel: bool


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_cursor: str | None = None
    total: int = Field(description="jobs matching the filters")


def can_cancel(caller: Caller, row: JobRow) -> bool:
    """Whether the caller may cancel the job now (the rule ``POST /v1/jobs/{id}/cancel`` applies)."""
    return caller.can_act_on_job(row.project_id) and row.state not in store.FINAL_STATES


def _sort_expr(sort: str, ascending: bool) -> ColumnElement[int] | None:
    """The column a queue sort orders by (then by ``seq``); None for submission order."""
    # Jobs without the value (not started, no estimate) sort last both ways.
    missing = MS_MAX if ascending else -1
    if sort == "estimated_start":
        return func.coalesce(JobRow.estimated_start_ms, missing)
    if sort == "started":
        return func.coalesce(JobRow.start_ms, missing)
    if sort == "priority":
        return case(PRIORITY_RANK, value=JobRow.priority_class, else_=len(PRIORITY_RANK))
    if sort == "gpus":
        gpus: ColumnElement[int] = JobRow.spec["gpus"].as_integer()
        return gpus
    return None


def _encode_cursor(sort: str, ascending: bool, value: int | None, seq: int) -> str:
    raw = json.dumps([sort, ascending, value, seq], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str, ascending: bool) -> tuple[int | None, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid("cursor", "not a cursor returned by this API") from None
    ok = (
        isinstance(raw, list)
        and len(raw) == 4
        and raw[0] == sort
        and raw[1] is ascending
        and (raw[2] is None or (type(raw[2]) is int and abs(raw[2]) <= MS_MAX))
        and type(raw[3]) is int
        and 0 <= raw[3] <= store.MAX_ID
    )
    if not ok:
        raise invalid("cursor", "not a cursor of this listing (its sort and order must not change)")
    return raw[2], raw[3]


def _model_filter(model: str) -> ColumnElement[bool]:
    """Jobs placed on ``model``, or waiting and able to use it (asked for it, or for any)."""
    asked = sql_cast(JobRow.spec["models"], String)
    return or_(
        JobRow.model == model,
        and_(
            JobRow.model.is_(None),
            or_(asked.contains(f'"{model}"', autoescape=True), asked == "[]"),
        ),
    )


@router.get(
    "/v1/dashboard/jobs",
    response_model=QueuePage,
    responses=responses(401, 422),
    summary="The queue: filtered, sorted and cursor-paginated jobs",
)
def queue(
    caller: CallerDep,
    s: SessionDep,
    state: QueueState = "active",
    tenant: Annotated[
        str | None, Query(max_length=255, description="A sector, organisation or project path")
    ] = None,
    project: Annotated[str | None, Query(max_length=255)] = None,
    user: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=32)] = None,
    sort: SortKey = "submitted",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> QueuePage:
    ascending = order == "asc"
    after = _decode_cursor(cursor, sort, ascending) if cursor is not None else None
    empty = QueuePage(items=[], total=0)
    conds: list[ColumnElement[bool]] = []
    projects = _usage_projects(caller)
    for text, exact in ((tenant, False), (project, True)):
        if text is None:
            continue
        rows = s.execute(select(TenantRow.id, TenantRow.path, TenantRow.kind)).all()
        if not any(p == text and caller.can_see(i) for i, p, _ in rows):
            return empty
        under = {
            i
            for i, p, k in rows
            if k == "project" and (p == text or (not exact and p.startswith(text + "/")))
        }
        projects = frozenset(under if projects is None else under & projects)
    if projects is not None:
        if not projects:
            return empty
        conds.append(JobRow.project_id.in_(sorted(projects)))
    states = STATE_SETS.get(state, (state,))
    if states is not None:
        conds.append(JobRow.state.in_(states))
    if user is not None:
        uid = s.scalars(select(UserRow.id).where(UserRow.name == user)).first()
        if uid is None:
            return empty
        conds.append(JobRow.user_id == uid)
    if model is not None:
        conds.append(_model_filter(model))
    total = s.scalar(select(func.count()).select_from(JobRow).where(*conds)) or 0
    key = _sort_expr(sort, ascending)
    q = select(JobRow, key) if key is not None else select(JobRow)
    q = q.where(*conds)
    if after is not None:
        value, seq = after
        if key is None or value is None:
            q = q.where(JobRow.seq > seq if ascending else JobRow.seq < seq)
        else:
            if ascending:
                q = q.where(or_(key > value, and_(key == value, JobRow.seq > seq)))
            else:
                q = q.where(or_(key < value, and_(key == value, JobRow.seq < seq)))
    seq_order = JobRow.seq.asc() if ascending else JobRow.seq.desc()
    if key is not None:
        q = q.order_by(key.asc() if ascending else key.desc(), seq_order)
    else:
        q = q.order_by(seq_order)
    got = s.execute(q.limit(limit)).all()
    rows_ = [r[0] for r in got]
    keys: list[int | None] = [int(r[1]) if key is not None and r[1] is not None else None for r in got]
    paths, users = job_names(s, rows_)
    items = [
        QueueItem(
            **job_out(r, paths.get(r.project_id, ""), users.get(r.user_id, "")).model_dump(),
            can_cancel=can_cancel(caller, r),
        )
        for r in rows_
    ]
    nxt = None
    if len(rows_) == limit:
        nxt = _encode_cursor(sort, ascending, keys[-1], rows_[-1].seq)
    return QueuePage(items=items, next_cursor=nxt, total=int(total))


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
        if row.state == "failed" and row.exit_code is not None and not detail:
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
    try:
        executors = list({id(e): e for e in rt.loop.executors.values()}.values())
    except RuntimeError:  # the service is not started: no executor, no telemetry
        return []
    out: list[TelemetryPoint] = []
    for ex in executors:
        read = getattr(ex, "telemetry", None)
        if not callable(read):
            continue
        for aid in allocation_ids:
            for t in read(aid):
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


# ---------------------------------------------------------------------------------- tenants


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


class TenantsOut(BaseModel):
    fleet_gpus: int
    busy_gpus: int
    start_ms: int
    end_ms: int
    partial: bool = Field(description="usage and in-use counts cover only the caller's projects")
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
    shown = _usage_projects(caller)
    guaranteed = guarantees(rows, active_allocations(s, now))
    # Accelerators held now, per project (running jobs' gang sizes).
    held: dict[int, int] = {}
    running = s.execute(
        select(JobRow.project_id, func.sum(JobRow.spec["gpus"].as_integer()))
        .where(JobRow.state == "running")
        .group_by(JobRow.project_id)
    ).all()
    for pid, g in running:
        if shown is None or pid in shown:
            held[pid] = int(g or 0)
    hours: dict[int, list[float]] = {}
    cat = rt.catalogue
    for u in store.usage_rows(s, None if shown is None else sorted(shown), start, now):
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
        """``tid`` then its visible subtree; and its (in use, GPU-h, effective GPU-h)."""
        r = by_id[tid]
        below: list[TenantUsage] = []
        use = held.get(tid, 0)
        gh, egh = hours.get(tid, [0.0, 0.0])
        for c in children.get(tid, []):
            if not caller.can_see(c):
                continue
            items, cu, ch, ce = visit(c, depth + 1)
            below += items
            use, gh, egh = use + cu, gh + ch, egh + ce
        g = effective[tid]
        node = TenantUsage(
            path=r.path,
            name=r.name,
            kind=r.kind,
            parent=by_id[r.parent_id].path if r.parent_id is not None else None,
            depth=depth,
            guaranteed=guaranteed[tid],
            guaranteed_gpus=g,
            in_use_gpus=use,
            guaranteed_share=round(g / total, 6),
            actual_share=round(use / total, 6),
            gpu_hours=round(gh, 6),
            effective_gpu_hours=round(egh, 6),
            usage_shown=shown is None or r.kind != "project" or tid in shown,
        )
        return [node, *below], use, gh, egh

    out: list[TenantUsage] = []
    for root in children.get(None, []):
        if caller.can_see(root):
            out += visit(root, 0)[0]
    busy = int(
        s.scalar(select(func.sum(JobRow.spec["gpus"].as_integer())).where(JobRow.state == "running")) or 0
    )
    return TenantsOut(
        fleet_gpus=rt.fleet.total_gpus,
        busy_gpus=busy if shown is None else sum(held.values()),
        start_ms=start,
        end_ms=now,
        partial=shown is not None,
        tenants=out,
    )


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
    shown = _usage_projects(caller)
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
            elif budget.used_hours(s, a, now) >= a.gpu_hours:
                shown_state = "exhausted"
        out.append(
            BurnDown(
                id=a.id,
                project=p.path,
                model=a.model,
                state=shown_state,
                gpu_hours=a.gpu_hours,
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


# ----------------------------------------------------------------------------------- whatif

POLICY_PATTERN = "^(" + "|".join(re.escape(p) for p in POLICIES) + r")(\+easy)?$"


def _require_viewer(caller: Caller) -> None:
    if not caller.sees_all:
        raise ApiProblem(403, "what-if studies are for viewers and pool admins", kind="forbidden")


class WhatIfIn(RequestBody):
    fleet: Annotated[str, Field(min_length=1, max_length=64, description="A fleet preset")]
    tenants: Annotated[
        str | None, Field(max_length=64, description="A tenants preset (default: the fleet's own)")
    ] = None
    workload: Annotated[str, Field(max_length=32, description="synthetic or a shipped trace")] = "synthetic"
    load: Annotated[float, Field(gt=0, le=MAX_LOAD, description="offered load of a synthetic workload")] = 0.8
    hours: Annotated[float, Field(gt=0, le=MAX_HOURS, description="length of a synthetic workload, h")] = 24
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    policies: Annotated[
        list[Annotated[str, Field(pattern=POLICY_PATTERN)]],
        Field(min_length=1, max_length=MAX_POLICIES, description="each a policy, optionally +easy"),
    ] = Field(default_factory=lambda: ["fifo", "fairshare+easy"])
    title: Annotated[str, Field(max_length=120)] = ""

    @field_validator("policies")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("name each policy once")
        return v


class WhatIfOptions(BaseModel):
    fleets: list[str]
    tenants: list[str]
    workloads: list[str]
    policies: list[str]
    default_fleet: str | None
    max_policies: int
    max_hours: float
    max_load: float
    max_jobs: int
    max_wall_s: float


class WhatIfProgress(BaseModel):
    stage: str = ""
    policy: str | None = None
    policy_index: int | None = None
    policies: int | None = None
    done: int = 0
    total: int = 0


class WhatIfRunOut(BaseModel):
    id: str
    state: Literal["running", "done", "failed"]
    spec: dict[str, Any]
    owner: str
    created_ms: int
    progress: WhatIfProgress | None
    error: str | None
    result: dict[str, Any] | None = Field(description="policies, headline metrics, context (when done)")


class FigureOut(BaseModel):
    alt: str
    caption: str
    src: str = Field(description="a data:image/png;base64 URI, empty when there was nothing to draw")
    empty: str


def _status(runs: WhatIfRuns, run_id: str) -> dict[str, Any]:
    """A run's status document, or 404."""
    doc = runs.status(run_id)
    if doc is None:
        raise not_found(f"what-if run {run_id!r}")
    return doc


def _run_out(doc: dict[str, Any]) -> WhatIfRunOut:
    prog = doc.get("progress")
    return WhatIfRunOut(
        id=doc["id"],
        state=doc["state"],
        spec=doc["spec"],
        owner=doc["owner"],
        created_ms=int(doc["created_ms"]),
        progress=WhatIfProgress.model_validate(prog) if isinstance(prog, dict) else None,
        error=doc["error"],
        result=doc["result"],
    )


@router.get(
    "/v1/whatif/options",
    response_model=WhatIfOptions,
    responses=responses(401, 403),
    summary="What a what-if study may be made of, and its limits",
)
def whatif_options(request: Request, caller: CallerDep, rt: RuntimeDep) -> WhatIfOptions:
    _require_viewer(caller)
    runs = _runs(request)
    presets = fleets()
    return WhatIfOptions(
        fleets=presets,
        tenants=tenants(),
        workloads=list(WORKLOADS),
        policies=[p for name in POLICIES for p in (name, f"{name}+easy")],
        default_fleet=rt.settings.fleet if rt.settings.fleet in presets else None,
        max_policies=MAX_POLICIES,
        max_hours=MAX_HOURS,
        max_load=MAX_LOAD,
        max_jobs=runs.max_jobs,
        max_wall_s=runs.max_wall_s,
    )


@router.post(
    "/v1/whatif",
    status_code=202,
    response_model=WhatIfRunOut,
    responses=responses(401, 403, 409, 422),
    summary="Start a what-if simulation in the background (one at a time)",
)
def whatif_start(body: WhatIfIn, request: Request, caller: CallerDep, rt: RuntimeDep) -> WhatIfRunOut:
    _require_viewer(caller)
    if body.fleet not in fleets():
        raise invalid("fleet", f"not a fleet preset (known: {', '.join(fleets())})")
    if body.tenants is not None and body.tenants not in tenants():
        raise invalid("tenants", f"not a tenants preset (known: {', '.join(tenants())})")
    if body.workload not in WORKLOADS:
        raise invalid("workload", f"not a shipped workload (known: {', '.join(WORKLOADS)})")
    spec = body.model_dump()
    if not spec["title"]:
        spec["title"] = f"what-if: {', '.join(body.policies)} on {body.fleet}"
    runs = _runs(request)
    try:
        run_id = runs.start(spec, caller.name, rt.clock())
    except WhatIfBusy as e:
        raise ApiProblem(409, str(e), kind="busy") from None
    doc = runs.status(run_id)
    assert doc is not None
    return _run_out(doc)


@router.get(
    "/v1/whatif",
    response_model=list[WhatIfRunOut],
    responses=responses(401, 403),
    summary="What-if runs, newest first",
)
def whatif_list(request: Request, caller: CallerDep) -> list[WhatIfRunOut]:
    _require_viewer(caller)
    return [_run_out(d) for d in _runs(request).runs()]


@router.get(
    "/v1/whatif/{run_id}",
    response_model=WhatIfRunOut,
    responses=responses(401, 403, 404),
    summary="A what-if run: progress, then headline metrics",
)
def whatif_get(run_id: str, request: Request, caller: CallerDep) -> WhatIfRunOut:
    _require_viewer(caller)
    return _run_out(_status(_runs(request), run_id))


@router.post(
    "/v1/whatif/{run_id}/cancel",
    status_code=202,
    response_model=WhatIfRunOut,
    responses=responses(401, 403, 404, 409),
    summary="Stop a running what-if run",
)
def whatif_cancel(run_id: str, request: Request, caller: CallerDep) -> WhatIfRunOut:
    _require_viewer(caller)
    runs = _runs(request)
    doc = _status(runs, run_id)
    # Only a run still running (by its files: a finished child may linger a moment) can stop.
    if doc["state"] != "running" or not runs.cancel(run_id):
        raise ApiProblem(409, f"what-if run {run_id} is not running", kind="not-running")
    return _run_out(doc)


@router.get(
    "/v1/whatif/{run_id}/figures",
    response_model=list[FigureOut],
    responses=responses(401, 403, 404),
    summary="The figures of a finished run's report (PNG data URIs, with alt text and captions)",
)
def whatif_figures(run_id: str, request: Request, caller: CallerDep) -> list[FigureOut]:
    _require_viewer(caller)
    figs = _runs(request).figures(run_id)
    if figs is None:
        raise not_found(f"finished what-if run {run_id!r}")
    return [FigureOut(alt=f.alt, caption=f.caption, src=f.src, empty=f.empty) for f in figs]


#: the report is a self-contained page (inline CSS, data: images, no script): let it be that only
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


@router.get(
    "/v1/whatif/{run_id}/report.html",
    response_class=HTMLResponse,
    responses={**responses(401, 403, 404), 200: {"content": {"text/html": {}}, "description": "report"}},
    summary="A finished run's report page (sim/report.py's report.html)",
)
def whatif_report(run_id: str, request: Request, caller: CallerDep) -> HTMLResponse:
    _require_viewer(caller)
    path = _runs(request).report(run_id)
    if path is None:
        raise not_found(f"finished what-if run {run_id!r}")
    return HTMLResponse(
        path.read_text(encoding="utf-8"),
        headers={
            "Content-Security-Policy": REPORT_CSP,
            "Content-Disposition": f'attachment; filename="gpupool-{run_id}.html"',
            "X-Content-Type-Options": "nosniff",
        },
    )
