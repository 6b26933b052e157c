"""``/v1/calls``: calls for applications, their reviewers, the ranked list and the call's report.

This module owns the call routes (ADR 0010). A pool admin writes a call (titles in Korean and
English, eligible sectors, GPU-hours and guaranteed accelerators per model, the award period,
open and close dates, review criteria with weights) and moves it draft > open > closed >
decided; closing puts its submitted applications under review, deciding declines those still
undecided. Every signed-in user reads the calls past draft (they are announcements); drafts
are the pool admins'. The ranked list is the pool admins'; the report shows pool admins and
viewers every award, anyone else only the awards of their own projects (and says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.tenancy import ANY_MODEL
from gpupool.service import budget, store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep, require_pool_admin
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.auth import Caller
from gpupool.service.db import (
    AllocationRow,
    ApplicationRow,
    AwardRow,
    CallReviewerRow,
    CallRow,
    OutputRow,
    ReviewRow,
    TenantRow,
    UserRow,
)
from gpupool.service.programme import calls
from gpupool.service.programme.applications import ApplicationState, move
from gpupool.service.programme.calls import CallState
from gpupool.service.programme.refusal import Refusal
from gpupool.service.programme.reviews import SCORE_MAX, weighted_score
from gpupool.service.request_body import RequestBody
from gpupool.service.runtime import Runtime

router = APIRouter(prefix="/v1/calls", tags=["calls"])
MAX_MS = 2**62
CallId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ModelKey = Annotated[str, Field(min_length=1, max_length=32)]
Hours = Annotated[float, Field(ge=0, le=1e12)]
Gpus = Annotated[int, Field(ge=0, le=10_000_000)]
Ms = Annotated[int, Field(ge=0, le=MAX_MS)]


@contextmanager
def refusals() -> Iterator[None]:
    """Answer a programme rule's ``Refusal`` as the problem document it names."""
    try:
        yield
    except Refusal as r:
        raise ApiProblem(r.status, r.detail, kind=r.kind) from None


class Criterion(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: Annotated[str, Field(min_length=1, max_length=255)]
    weight: Annotated[float, Field(gt=0, le=1000)]


class CallIn(RequestBody):
    title_ko: Annotated[str, Field(min_length=1, max_length=255)]
    title_en: Annotated[str, Field(min_length=1, max_length=255)]
    eligible_sectors: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255)]], Field(min_length=1, max_length=64)
    ]
    gpu_hours: Annotated[
        dict[ModelKey, Hours], Field(min_length=1, max_length=64, description="GPU-hours per model, or *")
    ]
    guaranteed: Annotated[dict[ModelKey, Gpus], Field(max_length=64)] = Field(default_factory=dict)
    period_start_ms: Ms
    period_end_ms: Ms
    opens_ms: Ms
    closes_ms: Ms
    criteria: Annotated[list[Criterion], Field(min_length=1, max_length=32)]
    #: what its GPU-hours (and its awards' allocations) count: accelerator-hours or effective
    #: (H100-equivalent) hours (ADR 0018)
    unit: Literal["gpu_hours", "effective"] = "gpu_hours"

    @model_validator(mode="after")
    def _consistent(self) -> CallIn:
        if self.period_end_ms <= self.period_start_ms:
            raise ValueError("period_end_ms must be after period_start_ms")
        if self.closes_ms <= self.opens_ms:
            raise ValueError("closes_ms must be after opens_ms")
        keys = [c.key for c in self.criteria]
        if len(set(keys)) != len(keys):
            raise ValueError("criteria keys must be distinct")
        for m in self.guaranteed:
            if m not in self.gpu_hours:
                raise ValueError(f"guaranteed {m}: the call offers no {m} GPU-hours to go with it")
        return self


class CallOut(BaseModel):
    id: int
    title_ko: str
    title_en: str
    eligible_sectors: list[str]
    gpu_hours: dict[str, float]
    guaranteed: dict[str, int]
    gpu_hours_left: dict[str, float]
    guaranteed_left: dict[str, int]
    period_start_ms: int
    period_end_ms: int
    opens_ms: int
    closes_ms: int
    criteria: list[Criterion]
    state: CallState
    #: whether an application may be submitted now (open, and between the dates)
    accepting: bool
    reviewers: list[str]
    unit: str = "gpu_hours"


class ReviewerIn(RequestBody):
    user: Annotated[str, Field(min_length=1, max_length=64)]


class RankedOut(BaseModel):
    rank: int
    application_id: int
    project: str
    title: str
    state: ApplicationState
    gpu_hours: dict[str, float]
    guaranteed: dict[str, int]
    reviews: int
    #: weighted mean score (0 to 10); null before any review
    score: float | None


class RankingOut(BaseModel):
    call_id: int
    score_max: float
    gpu_hours_left: dict[str, float]
    guaranteed_left: dict[str, int]
    items: list[RankedOut]


class OutputOut(BaseModel):
    id: int
    kind: str
    title: str
    url: str
    reported_by: str
    at_ms: int


class AwardLine(BaseModel):
    application_id: int
    project: str
    title: str
    state: ApplicationState
    gpu_hours: dict[str, float]
    used_gpu_hours: dict[str, float]
    guaranteed: dict[str, int]
    allocation_ids: list[int]
    period_start_ms: int
    period_end_ms: int
    renews_allocation_id: int | None
    outputs: list[OutputOut]


class ReportOut(BaseModel):
    call: CallOut
    #: ``all`` or ``your projects only`` (the caller may not see every award)
    scope: Literal["all", "your projects only"]
    awards: list[AwardLine]
    granted_gpu_hours: dict[str, float]
    used_gpu_hours: dict[str, float]
    applications: dict[str, int]


def call_out(s: Session, call: CallRow, now: int) -> CallOut:
    hours_left, guaranteed_left = calls.left(s, call)
    reviewers = s.scalars(
        select(UserRow.name)
        .join(CallReviewerRow, CallReviewerRow.user_id == UserRow.id)
        .where(CallReviewerRow.call_id == call.id)
        .order_by(UserRow.name)
    )
    return CallOut(
        id=call.id,
        title_ko=call.title_ko,
        title_en=call.title_en,
        eligible_sectors=list(call.eligible_sectors),
        gpu_hours={m: float(h) for m, h in call.gpu_hours.items()},
        guaranteed={m: int(g) for m, g in call.guaranteed.items()},
        gpu_hours_left={m: round(h, 6) for m, h in hours_left.items()},
        guaranteed_left=guaranteed_left,
        period_start_ms=call.period_start_ms,
        period_end_ms=call.period_end_ms,
        opens_ms=call.opens_ms,
        closes_ms=call.closes_ms,
        criteria=[Criterion(**c) for c in call.criteria],
        state=CallState(call.state),
        accepting=calls.accepting(call, now),
        reviewers=list(reviewers),
        unit=call.unit,
    )


def visible_call(s: Session, caller: Caller, call_id: int) -> CallRow:
    """A call the caller may read (drafts are the pool admins'), else 404."""
    call = s.get(CallRow, call_id)
    if call is None or (call.state == CallState.DRAFT and not caller.is_pool_admin):
        raise not_found(f"call {call_id}")
    return call


def _check_models(rt: Runtime, field: str, values: dict[str, Any]) -> None:
    present = rt.fleet.gpus_by_model()
    for m in values:
        if m != ANY_MODEL and m not in present:
            raise invalid(
                f"{field}.{m}", f"the fleet has no {m} accelerators (it has: {', '.join(present)}, or *)"
            )


@router.post(
    "",
    status_code=201,
    response_model=CallOut,
    responses=responses(401, 403, 422),
    summary="Write a call (draft)",
)
def create_call(body: CallIn, caller: CallerDep, rt: RuntimeDep) -> CallOut:
    require_pool_admin(caller)
    _check_models(rt, "gpu_hours", body.gpu_hours)
    _check_models(rt, "guaranteed", body.guaranteed)
    now = rt.clock()
    with rt.factory.begin() as s:
        sectors = {p for p, k in s.execute(select(TenantRow.path, TenantRow.kind)) if k == "sector"}
        for i, sector in enumerate(body.eligible_sectors):
            if sector not in sectors:
                raise invalid(
                    f"eligible_sectors[{i}]", f"no sector {sector!r} (sectors: {', '.join(sorted(sectors))})"
                )
        row = CallRow(
            title_ko=body.title_ko,
            title_en=body.title_en,
            eligible_sectors=list(dict.fromkeys(body.eligible_sectors)),
            gpu_hours=dict(body.gpu_hours),
            guaranteed=dict(body.guaranteed),
            period_start_ms=body.period_start_ms,
            period_end_ms=body.period_end_ms,
            opens_ms=body.opens_ms,
            closes_ms=body.closes_ms,
            criteria=[c.model_dump() for c in body.criteria],
            state=CallState.DRAFT.value,
            created_by=caller.name,
            created_ms=now,
            unit=body.unit,
        )
        s.add(row)
        s.flush()
        store.audit(s, caller.name, "call.create", f"call/{row.id}", body.model_dump(), now)
        return call_out(s, row, now)


@router.get("", response_model=list[CallOut], responses=responses(401), summary="Calls")
def list_calls(
    caller: CallerDep, rt: RuntimeDep, s: SessionDep, state: CallState | None = None
) -> list[CallOut]:
    q = select(CallRow).order_by(CallRow.id)
    if state is not None:
        q = q.where(CallRow.state == state.value)
    now = rt.clock()
    return [call_out(s, c, now) for c in s.scalars(q) if c.state != CallState.DRAFT or caller.is_pool_admin]


@router.get("/{call_id}", response_model=CallOut, responses=responses(401, 404), summary="A call")
def get_call(call_id: CallId, caller: CallerDep, rt: RuntimeDep, s: SessionDep) -> CallOut:
    return call_out(s, visible_call(s, caller, call_id), rt.clock())


def _step(call_id: int, to: CallState, caller: Caller, rt: Runtime) -> CallOut:
    require_pool_admin(caller)
    now = rt.clock()
    with rt.factory.begin() as s, refusals():
        call = visible_call(s, caller, call_id)
        before = calls.move_call(call, to)
        moved: list[int] = []
        apps = list(s.scalars(select(ApplicationRow).where(ApplicationRow.call_id == call.id)))
        for app in apps:
            if to == CallState.CLOSED and app.state == ApplicationState.SUBMITTED:
                move(app, ApplicationState.UNDER_REVIEW)
                moved.append(app.id)
            elif to == CallState.DECIDED and app.state in (
                ApplicationState.SUBMITTED,
                ApplicationState.UNDER_REVIEW,
            ):
                move(app, ApplicationState.DECLINED)
                app.decided_ms = now
                moved.append(app.id)
        for app_id in moved:
            store.audit(
                s, caller.name, "application.state", f"application/{app_id}",
                {"to": ApplicationState.UNDER_REVIEW if to == CallState.CLOSED else ApplicationState.DECLINED,
                 "because": f"call {call.id} {to}"}, now,
            )  # fmt: skip
        store.audit(
            s, caller.name, f"call.{to}", f"call/{call.id}",
            {"from": before.value, "to": to.value, "applications": moved}, now,
        )  # fmt: skip
        return call_out(s, call, now)


@router.post(
    "/{call_id}/open", response_model=CallOut, responses=responses(401, 403, 404, 409), summary="Open a call"
)
def open_call(call_id: CallId, caller: CallerDep, rt: RuntimeDep) -> CallOut:
    return _step(call_id, CallState.OPEN, caller, rt)


@router.post(
    "/{call_id}/close",
    response_model=CallOut,
    responses=responses(401, 403, 404, 409),
    summary="Close a call: its submitted applications go under review",
)
def close_call(call_id: CallId, caller: CallerDep, rt: RuntimeDep) -> CallOut:
    return _step(call_id, CallState.CLOSED, caller, rt)


@router.post(
    "/{call_id}/decide",
    response_model=CallOut,
    responses=responses(401, 403, 404, 409),
    summary="Mark a call decided: applications still undecided are declined",
)
def decide_call(call_id: CallId, caller: CallerDep, rt: RuntimeDep) -> CallOut:
    return _step(call_id, CallState.DECIDED, caller, rt)


@router.post(
    "/{call_id}/reviewers",
    status_code=201,
    response_model=CallOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Assign a reviewer to a call",
)
def add_reviewer(call_id: CallId, body: ReviewerIn, caller: CallerDep, rt: RuntimeDep) -> CallOut:
    require_pool_admin(caller)
    now = rt.clock()
    with rt.factory.begin() as s:
        call = visible_call(s, caller, call_id)
        if call.state == CallState.DECIDED:
            raise ApiProblem(
                409, f"call {call.id} is decided: its reviewers are final", kind="bad-transition"
            )
        uid = s.scalar(select(UserRow.id).where(UserRow.name == body.user))
        if uid is None:
            raise invalid("user", f"no user {body.user!r}")
        exists = s.scalar(
            select(CallReviewerRow.id).where(
                CallReviewerRow.call_id == call.id, CallReviewerRow.user_id == uid
            )
        )
        if exists is None:
            s.add(CallReviewerRow(call_id=call.id, user_id=uid))
            s.flush()
            store.audit(s, caller.name, "call.reviewer.add", f"call/{call.id}", {"user": body.user}, now)
        return call_out(s, call, now)


@router.get(
    "/{call_id}/ranking",
    response_model=RankingOut,
    responses=responses(401, 403, 404),
    summary="The call's applications ranked by weighted review score (pool admins)",
)
def ranking(call_id: CallId, caller: CallerDep, s: SessionDep) -> RankingOut:
    require_pool_admin(caller)
    call = visible_call(s, caller, call_id)
    paths: dict[int, str] = {i: p for i, p in s.execute(select(TenantRow.id, TenantRow.path))}
    rows: list[tuple[float | None, ApplicationRow, int]] = []
    for app in s.scalars(select(ApplicationRow).where(ApplicationRow.call_id == call.id)):
        if app.state in (ApplicationState.DRAFT, ApplicationState.WITHDRAWN):
            continue
        revs = list(s.scalars(select(ReviewRow).where(ReviewRow.application_id == app.id)))
        rows.append((weighted_score(call.criteria, revs), app, len(revs)))
    # best score first; unreviewed last; ties by submission order
    rows.sort(key=lambda r: (r[0] is None, -(r[0] or 0.0), r[1].submitted_ms or 0, r[1].id))
    hours_left, guaranteed_left = calls.left(s, call)
    return RankingOut(
        call_id=call.id,
        score_max=SCORE_MAX,
        gpu_hours_left={m: round(h, 6) for m, h in hours_left.items()},
        guaranteed_left=guaranteed_left,
        items=[
            RankedOut(
                rank=i + 1,
                application_id=app.id,
                project=paths.get(app.project_id, ""),
                title=app.title,
                state=ApplicationState(app.state),
                gpu_hours=dict(app.gpu_hours),
                guaranteed=dict(app.guaranteed),
                reviews=n,
                score=None if score is None else round(score, 4),
            )
            for i, (score, app, n) in enumerate(rows)
        ],
    )


def outputs_of(s: Session, award_id: int) -> list[OutputOut]:
    return [
        OutputOut(id=o.id, kind=o.kind, title=o.title, url=o.url, reported_by=o.reported_by, at_ms=o.at_ms)
        for o in s.scalars(select(OutputRow).where(OutputRow.award_id == award_id).order_by(OutputRow.id))
    ]


@router.get(
    "/{call_id}/report",
    response_model=ReportOut,
    responses=responses(401, 404),
    summary="The call's awards: GPU-hours granted and used, and the outputs reported",
)
def report(call_id: CallId, caller: CallerDep, rt: RuntimeDep, s: SessionDep) -> ReportOut:
    call = visible_call(s, caller, call_id)
    now = rt.clock()
    everything = caller.sees_all
    paths: dict[int, str] = {i: p for i, p in s.execute(select(TenantRow.id, TenantRow.path))}
    lines: list[AwardLine] = []
    granted: dict[str, float] = {}
    used_total: dict[str, float] = {}
    states: dict[str, int] = {}
    for app in s.scalars(select(ApplicationRow).where(ApplicationRow.call_id == call.id)):
        if everything or caller.can_submit(app.project_id):
            states[app.state] = states.get(app.state, 0) + 1
    for award in s.scalars(select(AwardRow).where(AwardRow.call_id == call.id).order_by(AwardRow.id)):
        got = s.get(ApplicationRow, award.application_id)
        if got is None or not (everything or caller.can_submit(got.project_id)):
            continue
        app = got
        used: dict[str, float] = {}
        for aid in award.allocation_ids:
            alloc = s.get(AllocationRow, aid)
            if alloc is not None:
                got_h = budget.used_hours(s, alloc, now, rt.catalogue)
                used[alloc.model] = used.get(alloc.model, 0.0) + round(got_h, 6)
        for m, h in award.gpu_hours.items():
            granted[m] = granted.get(m, 0.0) + float(h)
        for m, h in used.items():
            used_total[m] = used_total.get(m, 0.0) + h
        lines.append(
            AwardLine(
                application_id=app.id,
                project=paths.get(app.project_id, ""),
                title=app.title,
                state=ApplicationState(app.state),
                gpu_hours=dict(award.gpu_hours),
                used_gpu_hours=used,
                guaranteed=dict(award.guaranteed),
                allocation_ids=list(award.allocation_ids),
                period_start_ms=app.period_start_ms,
                period_end_ms=app.period_end_ms,
                renews_allocation_id=app.renews_allocation_id,
                outputs=outputs_of(s, award.id),
            )
        )
    return ReportOut(
        call=call_out(s, call, now),
        scope="all" if everything else "your projects only",
        awards=lines,
        granted_gpu_hours=granted,
        used_gpu_hours=used_total,
        applications=states,
    )
