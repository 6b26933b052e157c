"""``/v1/whatif``: what-if studies started, followed and read from the dashboard.

This module owns the what-if routes over ``gpupool.service.whatif.WhatIfRuns``: the options and
limits of a study, starting one (one at a time, bounded in size and time), listing, following
and stopping runs, and a finished run's figures and report page (served with a policy that
allows no script). Studies are read by viewers and pool admins; only a pool admin starts one
(a viewer only reads: ADR 0007), and only its owner or a pool admin stops it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator

from gpupool.core.policy import POLICIES
from gpupool.service.api.caller import CallerDep, RuntimeDep
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.auth import Caller
from gpupool.service.live_whatif import (
    MAX_SCALE,
    SYNTAX,
    ChangeError,
    Changes,
    changed_fleet,
    changed_tenants,
)
from gpupool.service.request_body import RequestBody
from gpupool.service.runtime import Runtime
from gpupool.service.tenant_tree import tenant_rows
from gpupool.service.twin_snapshot import take, write_folder
from gpupool.service.whatif import (
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
#: a policy the core knows, optionally with EASY backfilling ("fairshare+easy")
POLICY_PATTERN = "^(" + "|".join(re.escape(p) for p in POLICIES) + r")(\+easy)?$"


def _require_viewer(caller: Caller) -> None:
    if not caller.sees_all:
        raise ApiProblem(403, "what-if studies are for viewers and pool admins", kind="forbidden")


_Item = Annotated[str, Field(min_length=3, max_length=200)]


class LiveChangesIn(RequestBody):
    """Changes to the live state (``gpupool.service.live_whatif.SYNTAX`` gives each item's form)."""

    add_nodes: Annotated[list[_Item], Field(max_length=50, description="CLUSTER:MODEL:COUNT[:GPUS]")] = Field(
        default_factory=list
    )
    remove_nodes: Annotated[list[_Item], Field(max_length=50, description="CLUSTER:MODEL:COUNT")] = Field(
        default_factory=list
    )
    move_nodes: Annotated[list[_Item], Field(max_length=50, description="FROM:TO:MODEL:COUNT")] = Field(
        default_factory=list
    )
    guarantees: Annotated[list[_Item], Field(max_length=200, description="PROJECT/PATH:MODEL:GPUS")] = Field(
        default_factory=list
    )
    weights: Annotated[list[_Item], Field(max_length=200, description="TENANT/PATH:WEIGHT")] = Field(
        default_factory=list
    )
    awards: Annotated[list[_Item], Field(max_length=200, description="PROJECT/PATH:GPU_HOURS")] = Field(
        default_factory=list
    )
    scale_load: Annotated[float, Field(gt=0, le=MAX_SCALE, description="recent arrival rate times this")] = (
        1.0
    )


class WhatIfIn(RequestBody):
    source: Annotated[
        Literal["preset", "live"], Field(description="presets, or the live pool's snapshot plus changes")
    ] = "preset"
    changes: LiveChangesIn | None = None
    fleet: Annotated[str, Field(max_length=64, description="A fleet preset (source preset)")] = ""
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
    workers: int
    #: what a live study's form offers: the live fleet's clusters and models, the tenants
    live: dict[str, Any]


class WhatIfProgress(BaseModel):
    stage: str = ""
    policy: str | None = None
    policy_index: int | None = None
    policies: int | None = None
    done: int = 0
    total: int = 0


class WhatIfRunOut(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    queue_position: int | None = None
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


def _runs(request: Request) -> WhatIfRuns:
    """The app's what-if runs (``install`` made them)."""
    return cast(WhatIfRuns, request.app.state.dashboard_whatif)


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
        queue_position=doc.get("queue_position"),
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
        workers=runs.workers,
        live=live_options(rt),
    )


@router.post(
    "/v1/whatif",
    status_code=202,
    response_model=WhatIfRunOut,
    responses=responses(401, 403, 409, 422),
    summary="Queue a what-if study (presets, or the live pool plus changes) for the background workers",
)
def whatif_start(body: WhatIfIn, request: Request, caller: CallerDep, rt: RuntimeDep) -> WhatIfRunOut:
    _require_viewer(caller)
    if not caller.is_pool_admin:
        raise ApiProblem(403, "only a pool admin may start a what-if study", kind="forbidden")
    runs = _runs(request)
    if body.source == "live":
        return _start_live(body, runs, caller, rt)
    if body.fleet not in fleets():
        raise invalid("fleet", f"not a fleet preset (known: {', '.join(fleets())})")
    if body.tenants is not None and body.tenants not in tenants():
        raise invalid("tenants", f"not a tenants preset (known: {', '.join(tenants())})")
    if body.workload not in WORKLOADS:
        raise invalid("workload", f"not a shipped workload (known: {', '.join(WORKLOADS)})")
    spec = body.model_dump(exclude={"source", "changes"})
    if not spec["title"]:
        spec["title"] = f"what-if: {', '.join(body.policies)} on {body.fleet}"
    try:
        run_id = runs.start(spec, caller.name, rt.clock())
    except WhatIfBusy as e:
        raise ApiProblem(409, str(e), kind="busy") from None
    doc = runs.status(run_id)
    assert doc is not None
    return _run_out(doc)


def live_options(rt: Runtime) -> dict[str, Any]:
    """The live fleet's clusters and models and the tenants' paths, for the live form."""
    fleet = rt.fleet
    pools = sorted({(fleet.clusters[n.cluster].name, n.model, n.gpus) for n in fleet.nodes})
    with rt.reader() as s:
        paths = [t.path for t in tenant_rows(s)]
    return {
        "clusters": sorted({c for c, _, _ in pools}),
        "models": sorted({m for _, m, _ in pools}),
        "pools": [{"cluster": c, "model": m, "gpus": g} for c, m, g in pools],
        "tenants": paths,
        "projects": [p for p in paths if p.count("/") == 2],
        "syntax": SYNTAX,
        "max_scale": MAX_SCALE,
    }


def _start_live(body: WhatIfIn, runs: WhatIfRuns, caller: Caller, rt: Runtime) -> WhatIfRunOut:
    """Queue a live study: check the changes now (422 naming the field), snapshot on queueing."""
    changes = body.changes or LiveChangesIn()
    items = changes.model_dump(exclude={"scale_load"})
    try:
        ch = Changes(items).build(scale_load=changes.scale_load, hours=body.hours, seed=body.seed)
    except ChangeError as e:
        field = str(e).split(" ", 1)[0]
        raise invalid(f"changes.{field}", str(e)) from None
    policy = rt.config.policy + ("+easy" if rt.config.backfill == "easy" else "")
    spec = {
        "source": "live",
        "changes": changes.model_dump(),
        "hours": body.hours,
        "seed": body.seed,
        "policies": [policy],
        "fleet": "live",
        "workload": f"recent history x{changes.scale_load:g}",
        "load": changes.scale_load,
        "title": body.title or f"what-if from the live pool: {'; '.join(ch.describe()) or 'no change'}",
    }

    with rt.reader() as s:
        snapshot = take(s, rt.fleet, rt.config, rt.clock())
    try:  # the changes must apply to the live fleet and tenants: refused now, not in the run
        changed_fleet(snapshot["fleet"], ch)
        changed_tenants(snapshot["tenants"], ch)
    except ChangeError as e:
        raise invalid(f"changes.{str(e).split(' ', 1)[0]}", str(e)) from None

    def prepare(folder: Path) -> None:
        write_folder(snapshot, folder / "snapshot")

    try:
        run_id = runs.start(spec, caller.name, rt.clock(), prepare=prepare)
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
    if doc["owner"] != caller.name and not caller.is_pool_admin:
        raise ApiProblem(403, f"what-if run {run_id} is {doc['owner']}'s: only they or a pool admin stop it")
    # Only a run queued or running (by its files: a finished child may linger) can stop.
    if doc["state"] not in ("queued", "running") or not runs.cancel(run_id):
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
    summary="A finished run's report page (the report.html of gpupool.sim.report)",
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
