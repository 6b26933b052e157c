"""Applications: their states and transitions, who writes them and who may read them.

States: draft > submitted > under_review > awarded / partly_awarded / declined, and withdrawn
from any state before a decision. ``TRANSITIONS`` is the whole table; any other move is
refused with 409 naming the two states.

Writing is for the project's leads (a ``lead`` membership of the project) and for those who
administer it. Reading is for the project's members and admins, the call's reviewers (once
submitted: a draft is the team's own) and pool admins; to anyone else an application does not
exist (404, so that its existence does not leak).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service.auth import Caller
from gpupool.service.db import ApplicationRow, CallReviewerRow, MembershipRow
from gpupool.service.programme.refusal import Refusal


class ApplicationState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    AWARDED = "awarded"
    PARTLY_AWARDED = "partly_awarded"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


S = ApplicationState
TRANSITIONS: dict[ApplicationState, frozenset[ApplicationState]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.WITHDRAWN}),
    S.SUBMITTED: frozenset({S.UNDER_REVIEW, S.DECLINED, S.WITHDRAWN}),
    S.UNDER_REVIEW: frozenset({S.AWARDED, S.PARTLY_AWARDED, S.DECLINED, S.WITHDRAWN}),
    S.AWARDED: frozenset(),
    S.PARTLY_AWARDED: frozenset(),
    S.DECLINED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
DECIDED = frozenset({S.AWARDED, S.PARTLY_AWARDED, S.DECLINED})


def move(app: ApplicationRow, to: ApplicationState) -> ApplicationState:
    """Move ``app`` to ``to`` (409 naming both states if ``TRANSITIONS`` forbids it)."""
    before = ApplicationState(app.state)
    if to not in TRANSITIONS[before]:
        raise Refusal(409, f"application {app.id} cannot go from {before} to {to}", "bad-transition")
    app.state = to.value
    return before


def is_lead(s: Session, caller: Caller, project_id: int) -> bool:
    """May write the project's applications: a lead of it, or one who administers it."""
    if caller.can_manage(project_id):
        return True
    role = s.scalar(
        select(MembershipRow.role).where(
            MembershipRow.user_id == caller.user_id, MembershipRow.tenant_id == project_id
        )
    )
    return role == "lead"


def is_reviewer(s: Session, call_id: int, user_id: int) -> bool:
    found = s.scalar(
        select(CallReviewerRow.id).where(
            CallReviewerRow.call_id == call_id, CallReviewerRow.user_id == user_id
        )
    )
    return found is not None


def may_read(s: Session, caller: Caller, app: ApplicationRow) -> bool:
    if caller.is_pool_admin or caller.can_submit(app.project_id):
        return True
    return app.state != S.DRAFT and is_reviewer(s, app.call_id, caller.user_id)


def readable(s: Session, caller: Caller, application_id: int) -> ApplicationRow:
    """The application if the caller may read it; else 404 (it does not exist for them)."""
    app = s.get(ApplicationRow, application_id)
    if app is None or not may_read(s, caller, app):
        raise Refusal(404, f"application {application_id} not found", "not-found")
    return app
