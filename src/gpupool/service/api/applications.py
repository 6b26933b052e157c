"""``/v1/applications``: applications to calls, their reviews, awards, declines and outputs.

This module owns the application routes (ADR 0010). A project's lead writes an application to
an open call (GPU-hours and guaranteed accelerators per model key of the call, a period
within the call's award period, justification, expected outputs; optionally the allocation it
renews or extends) and submits it while the call accepts them; only projects of an eligible
sector may. Reviewers of the call score each criterion and comment, unless they belong to the
applicant's organisation (403, conflict of interest). A pool admin awards it, in full or in
part, once the call is closed (the award becomes allocations: ``gpupool.service.programme.
awards``) or declines it. The project's members report outputs against its award. What the
caller may not read does not exist for them (404).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep, require_pool_admin
from gpupool.service.api.calls import Gpus, Hours, ModelKey, Ms, OutputOut, outputs_of, refusals, visible_call
from gpupool.service.api.jobs import resolve_project
from gpupool.service.api.problems import ApiProblem, invalid, responses
from gpupool.service.api.tenants import validate_tree
from gpupool.service.auth import Caller
from gpupool.service.db import (
    AllocationRow,
    ApplicationRow,
    AwardRow,
    CallRow,
    OutputRow,
    ReviewRow,
    TenantRow,
    UserRow,
)
from gpupool.service.programme import awards, calls
from gpupool.service.programme.applications import (
    ApplicationState,
    is_lead,
    is_reviewer,
    may_read,
    move,
    readable,
)
from gpupool.service.programme.calls import CallState
from gpupool.service.programme.refusal import Refusal
from gpupool.service.programme.reviews import SCORE_MAX, conflict
from gpupool.service.request_body import RequestBody

router = APIRouter(prefix="/v1/applications", tags=["applications"])
AppId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LongText = Annotated[str, Field(max_length=20_000)]


class ApplicationIn(RequestBody):
    call_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    project: Annotated[str, Field(min_length=1, max_length=255)]
    title: Annotated[str, Field(min_length=1, max_length=255)]
    gpu_hours: Annotated[dict[ModelKey, Hours], Field(min_length=1, max_length=64)]
    guaranteed: Annotated[dict[ModelKey, Gpus], Field(max_length=64)] = Field(default_factory=dict)
    #: the period asked for (default: the call's award period; must lie within it)
    period_start_ms: Ms | None = None
    period_end_ms: Ms | None = None
    justification: Annotated[str, Field(min_length=1, max_length=20_000)]
    expected_outputs: LongText = ""
    #: the allocation of this project that the application renews or extends
    renews_allocation_id: Annotated[int | None, Field(ge=1, le=2**31 - 1)] = None


class ReviewIn(RequestBody):
    scores: Annotated[
        dict[str, Annotated[float, Field(ge=0, le=SCORE_MAX)]], Field(min_length=1, max_length=32)
    ]
    comment: LongText = ""


class AwardIn(RequestBody):
    gpu_hours: Annotated[dict[ModelKey, Hours], Field(min_length=1, max_length=64)]
    guaranteed: Annotated[dict[ModelKey, Gpus], Field(max_length=64)] = Field(default_factory=dict)
    note: Annotated[str, Field(max_length=1024)] = ""


class DeclineIn(RequestBody):
    note: Annotated[str, Field(max_length=1024)] = ""


class OutputIn(RequestBody):
    kind: Literal["paper", "model", "product", "dataset", "software", "other"]
    title: Annotated[str, Field(min_length=1, max_length=512)]
    url: Annotated[str, Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$")]


class ReviewOut(BaseModel):
    reviewer: str
    scores: dict[str, float]
    comment: str
    at_ms: int


class AwardOut(BaseModel):
    gpu_hours: dict[str, float]
    guaranteed: dict[str, int]
    allocation_ids: list[int]
    note: str
    decided_by: str
    at_ms: int


class ApplicationOut(BaseModel):
    id: int
    call_id: int
    project: str
    title: str
    gpu_hours: dict[str, float]
    guaranteed: dict[str, int]
    period_start_ms: int
    period_end_ms: int
    justification: str
    expected_outputs: str
    renews_allocation_id: int | None
    state: ApplicationState
    created_by: str
    created_ms: int
    submitted_ms: int | None
    decided_ms: int | None
    #: the reviews the caller may read: every one for a pool admin, her own for a reviewer
    reviews: list[ReviewOut]
    award: AwardOut | None
    outputs: list[OutputOut]


def application_out(s: Session, caller: Caller, app: ApplicationRow) -> ApplicationOut:
    project = s.get(TenantRow, app.project_id)
    q = (
        select(ReviewRow, UserRow.name)
        .join(UserRow, UserRow.id == ReviewRow.reviewer_id)
        .where(ReviewRow.application_id == app.id)
        .order_by(ReviewRow.id)
    )
    if not caller.is_pool_admin:
        q = q.where(ReviewRow.reviewer_id == caller.user_id)
    reviews = [
        ReviewOut(reviewer=n, scores=dict(r.scores), comment=r.comment, at_ms=r.at_ms)
        for r, n in s.execute(q)
    ]
    award = s.scalar(select(AwardRow).where(AwardRow.application_id == app.id))
    return ApplicationOut(
        id=app.id,
        call_id=app.call_id,
        project=project.path if project else "",
        title=app.title,
        gpu_hours=dict(app.gpu_hours),
        guaranteed=dict(app.guaranteed),
        period_start_ms=app.period_start_ms,
        period_end_ms=app.period_end_ms,
        justification=app.justification,
        expected_outputs=app.expected_outputs,
        renews_allocation_id=app.renews_allocation_id,
        state=ApplicationState(app.state),
        created_by=app.created_by,
        created_ms=app.created_ms,
        submitted_ms=app.submitted_ms,
        decided_ms=app.decided_ms,
        reviews=reviews,
        award=None
        if award is None
        else AwardOut(
            gpu_hours=dict(award.gpu_hours),
            guaranteed=dict(award.guaranteed),
            allocation_ids=list(award.allocation_ids),
            note=award.note,
            decided_by=award.decided_by,
            at_ms=award.at_ms,
        ),
        outputs=[] if award is None else outputs_of(s, award.id),
    )


def _eligible(call: CallRow, project: TenantRow) -> None:
    sector = project.path.split("/", 1)[0]
    if sector not in call.eligible_sectors:
        raise ApiProblem(
            403,
            f"call {call.id} is for {', '.join(call.eligible_sectors)}; {project.path} is in {sector}",
            kind="not-eligible",
        )


def _lead(s: Session, caller: Caller, app_or_project_id: int, path: str) -> None:
    if not is_lead(s, caller, app_or_project_id):
        raise ApiProblem(403, f"only a lead of {path} may write its applications", kind="forbidden")


@router.post(
    "",
    status_code=201,
    response_model=ApplicationOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Write an application to an open call (a draft)",
)
def create_application(body: ApplicationIn, caller: CallerDep, rt: RuntimeDep) -> ApplicationOut:
    now = rt.clock()
    with rt.factory.begin() as s:
        call = visible_call(s, caller, body.call_id)
        project = resolve_project(s, caller, body.project)
        _lead(s, caller, project.id, project.path)
        if call.state != CallState.OPEN:
            raise ApiProblem(
                409,
                f"call {call.id} is {call.state}: applications are written while it is open",
                kind="call-not-open",
            )
        _eligible(call, project)
        for m in body.gpu_hours:
            if m not in call.gpu_hours:
                raise invalid(
                    f"gpu_hours.{m}", f"call {call.id} offers no {m} (it offers {', '.join(call.gpu_hours)})"
                )
        for m in body.guaranteed:
            if m not in call.guaranteed:
                offered = ", ".join(call.guaranteed) or "none"
                raise invalid(
                    f"guaranteed.{m}", f"call {call.id} guarantees no {m} (it may guarantee: {offered})"
                )
        start = call.period_start_ms if body.period_start_ms is None else body.period_start_ms
        end = call.period_end_ms if body.period_end_ms is None else body.period_end_ms
        if not call.period_start_ms <= start < end <= call.period_end_ms:
            raise invalid(
                "period_end_ms", "the period must be non-empty and lie within the call's award period"
            )
        if body.renews_allocation_id is not None:
            renewed = s.get(AllocationRow, body.renews_allocation_id)
            if renewed is None or renewed.project_id != project.id:
                raise invalid(
                    "renews_allocation_id", f"no allocation {body.renews_allocation_id} of {project.path}"
                )
        row = ApplicationRow(
            call_id=call.id,
            project_id=project.id,
            renews_allocation_id=body.renews_allocation_id,
            title=body.title,
            gpu_hours=dict(body.gpu_hours),
            guaranteed=dict(body.guaranteed),
            period_start_ms=start,
            period_end_ms=end,
            justification=body.justification,
            expected_outputs=body.expected_outputs,
            state=ApplicationState.DRAFT.value,
            created_by=caller.name,
            created_ms=now,
        )
        s.add(row)
        s.flush()
        store.audit(s, caller.name, "application.create", f"application/{row.id}", body.model_dump(), now)
        return application_out(s, caller, row)


@router.get(
    "", response_model=list[ApplicationOut], responses=responses(401), summary="Applications you may read"
)
def list_applications(
    caller: CallerDep,
    s: SessionDep,
    call: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    project: Annotated[str | None, Query(max_length=255)] = None,
    state: ApplicationState | None = None,
) -> list[ApplicationOut]:
    q = select(ApplicationRow).order_by(ApplicationRow.id)
    if call is not None:
        q = q.where(ApplicationRow.call_id == call)
    if project is not None:
        q = q.where(ApplicationRow.project_id == resolve_project(s, caller, project).id)
    if state is not None:
        q = q.where(ApplicationRow.state == state.value)
    return [application_out(s, caller, a) for a in s.scalars(q) if may_read(s, caller, a)]


@router.get(
    "/{application_id}",
    response_model=ApplicationOut,
    responses=responses(401, 404),
    summary="An application",
)
def get_application(application_id: AppId, caller: CallerDep, s: SessionDep) -> ApplicationOut:
    with refusals():
        return application_out(s, caller, readable(s, caller, application_id))


def _lead_step(
    application_id: int, to: ApplicationState, caller: Caller, now: int, s: Session
) -> ApplicationOut:
    with refusals():
        app = readable(s, caller, application_id)
        project = s.get(TenantRow, app.project_id)
        assert project is not None
        _lead(s, caller, app.project_id, project.path)
        call = s.get(CallRow, app.call_id)
        assert call is not None
        if to == ApplicationState.SUBMITTED:
            _eligible(call, project)
            if not calls.accepting(call, now):
                raise Refusal(
                    409,
                    f"call {call.id} does not accept applications now (it is {call.state}; "
                    f"open from {call.opens_ms} to {call.closes_ms} ms)",
                    "call-not-open",
                )
            app.submitted_ms = now
        before = move(app, to)
        store.audit(
            s,
            caller.name,
            f"application.{to}",
            f"application/{app.id}",
            {"from": before.value, "to": to.value},
            now,
        )
        return application_out(s, caller, app)


@router.post(
    "/{application_id}/submit",
    response_model=ApplicationOut,
    responses=responses(401, 403, 404, 409),
    summary="Submit an application (while its call is open)",
)
def submit_application(application_id: AppId, caller: CallerDep, rt: RuntimeDep) -> ApplicationOut:
    with rt.factory.begin() as s:
        return _lead_step(application_id, ApplicationState.SUBMITTED, caller, rt.clock(), s)


@router.post(
    "/{application_id}/withdraw",
    response_model=ApplicationOut,
    responses=responses(401, 403, 404, 409),
    summary="Withdraw an application (before it is decided)",
)
def withdraw_application(application_id: AppId, caller: CallerDep, rt: RuntimeDep) -> ApplicationOut:
    with rt.factory.begin() as s:
        return _lead_step(application_id, ApplicationState.WITHDRAWN, caller, rt.clock(), s)


@router.post(
    "/{application_id}/reviews",
    response_model=ApplicationOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Score and comment an application (a reviewer of its call; replaces her earlier review)",
)
def review_application(
    application_id: AppId, body: ReviewIn, caller: CallerDep, rt: RuntimeDep
) -> ApplicationOut:
    now = rt.clock()
    with rt.factory.begin() as s, refusals():
        app = readable(s, caller, application_id)
        if not is_reviewer(s, app.call_id, caller.user_id):
            raise ApiProblem(403, f"you are not a reviewer of call {app.call_id}", kind="forbidden")
        project = s.get(TenantRow, app.project_id)
        assert project is not None
        why = conflict(s, caller.user_id, project.path)
        if why is not None:
            raise ApiProblem(
                403,
                f"conflict of interest: you are {why}, the organisation of {project.path}; "
                "another reviewer must review this application",
                kind="conflict-of-interest",
            )
        if app.state != ApplicationState.UNDER_REVIEW:
            raise ApiProblem(
                409, f"application {app.id} is {app.state}, not under_review", kind="bad-transition"
            )
        call = s.get(CallRow, app.call_id)
        assert call is not None
        keys = {c["key"] for c in call.criteria}
        missing = sorted(keys - set(body.scores))
        unknown = sorted(set(body.scores) - keys)
        if missing or unknown:
            raise ApiProblem(
                422,
                f"score every criterion of call {call.id} ({', '.join(sorted(keys))})"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
                kind="invalid-request",
                errors=[("scores", f"missing {k}") for k in missing]
                + [(f"scores.{k}", "unknown criterion") for k in unknown],
            )
        row = s.scalar(
            select(ReviewRow).where(
                ReviewRow.application_id == app.id, ReviewRow.reviewer_id == caller.user_id
            )
        )
        if row is None:
            row = ReviewRow(
                application_id=app.id, reviewer_id=caller.user_id, scores={}, comment="", at_ms=now
            )
            s.add(row)
        row.scores = dict(body.scores)
        row.comment = body.comment
        row.at_ms = now
        s.flush()
        store.audit(s, caller.name, "application.review", f"application/{app.id}", body.model_dump(), now)
        return application_out(s, caller, app)


def _decidable(s: Session, caller: Caller, application_id: int) -> tuple[ApplicationRow, CallRow]:
    require_pool_admin(caller)
    app = readable(s, caller, application_id)
    # Lock the call's row (PostgreSQL; SQLite's writers are serial anyway): two awards made at
    # once must not both spend what the call has left.
    call = s.get(CallRow, app.call_id, with_for_update=True)
    assert call is not None
    s.refresh(app, with_for_update=True)
    if call.state != CallState.CLOSED:
        raise ApiProblem(
            409,
            f"call {call.id} is {call.state}: applications are decided while it is closed",
            kind="bad-transition",
        )
    return app, call


@router.post(
    "/{application_id}/award",
    response_model=ApplicationOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Award an application in full or in part (pool admins): creates its allocations",
)
def award_application(
    application_id: AppId, body: AwardIn, caller: CallerDep, rt: RuntimeDep
) -> ApplicationOut:
    now = rt.clock()
    with rt.factory.begin() as s, refusals():
        app, call = _decidable(s, caller, application_id)
        award = awards.award(s, call, app, body.gpu_hours, body.guaranteed, body.note, caller.name, now)
        validate_tree(s, rt)  # the guarantees it adds must fit the organisation and the fleet
        store.audit(
            s,
            caller.name,
            "application.award",
            f"application/{app.id}",
            {**body.model_dump(), "state": app.state, "allocations": award.allocation_ids},
            now,
        )
        out = application_out(s, caller, app)
    rt.request_rebuild()
    return out


@router.post(
    "/{application_id}/decline",
    response_model=ApplicationOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Decline an application (pool admins)",
)
def decline_application(
    application_id: AppId, body: DeclineIn, caller: CallerDep, rt: RuntimeDep
) -> ApplicationOut:
    now = rt.clock()
    with rt.factory.begin() as s, refusals():
        app, _ = _decidable(s, caller, application_id)
        before = move(app, ApplicationState.DECLINED)
        app.decided_ms = now
        store.audit(
            s, caller.name, "application.declined", f"application/{app.id}",
            {"from": before.value, "to": app.state, "note": body.note}, now,
        )  # fmt: skip
        return application_out(s, caller, app)


@router.post(
    "/{application_id}/outputs",
    status_code=201,
    response_model=OutputOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Report an output (paper, model, product...) against the application's award",
)
def report_output(application_id: AppId, body: OutputIn, caller: CallerDep, rt: RuntimeDep) -> OutputOut:
    now = rt.clock()
    with rt.factory.begin() as s, refusals():
        app = readable(s, caller, application_id)
        if not (caller.is_pool_admin or caller.can_submit(app.project_id)):
            raise ApiProblem(403, "only the project's members report its outputs", kind="forbidden")
        award = s.scalar(select(AwardRow).where(AwardRow.application_id == app.id))
        if award is None:
            raise ApiProblem(
                409, f"application {app.id} has no award to report outputs against", kind="no-award"
            )
        row = OutputRow(
            award_id=award.id,
            kind=body.kind,
            title=body.title,
            url=body.url,
            reported_by=caller.name,
            at_ms=now,
        )
        s.add(row)
        s.flush()
        store.audit(s, caller.name, "application.output", f"application/{app.id}", body.model_dump(), now)
        return OutputOut(
            id=row.id,
            kind=row.kind,
            title=row.title,
            url=row.url,
            reported_by=row.reported_by,
            at_ms=row.at_ms,
        )
