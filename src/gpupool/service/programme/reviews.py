"""Reviews: the conflict-of-interest rule and the ranked list by weighted score.

Conflict of interest: a reviewer may not review an application of a project whose
organisation she belongs to: any membership at or below the applicant's organisation, or an
admin membership above it (she administers the applicant). Scores are given per criterion of
the call, from 0 to ``SCORE_MAX``; an application's score is the weighted mean (the call's
weights) of each criterion's mean over its reviews.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service.db import MembershipRow, ReviewRow, TenantRow

SCORE_MAX = 10.0


def organisation_of(project_path: str) -> str:
    """The organisation path of a project path (``sector/org/project`` -> ``sector/org``)."""
    return "/".join(project_path.split("/")[:2])


def conflict(s: Session, user_id: int, project_path: str) -> str | None:
    """The membership (tenant path and role) that bars the user from reviewing this project's
    application, or None."""
    org = organisation_of(project_path)
    rows = s.execute(
        select(TenantRow.path, MembershipRow.role)
        .join(MembershipRow, MembershipRow.tenant_id == TenantRow.id)
        .where(MembershipRow.user_id == user_id)
        .order_by(TenantRow.path)
    ).all()
    for path, role in rows:
        if path == org or path.startswith(org + "/"):
            return f"{role} of {path}"
        if role == "admin" and org.startswith(path + "/"):
            return f"admin of {path}"
    return None


def weighted_score(criteria: Sequence[dict[str, Any]], reviews: Iterable[ReviewRow]) -> float | None:
    """The weighted mean of per-criterion mean scores (None without reviews)."""
    got = list(reviews)
    if not got:
        return None
    total_w = sum(float(c["weight"]) for c in criteria)
    score = 0.0
    for c in criteria:
        marks = [float(r.scores[c["key"]]) for r in got if c["key"] in r.scores]
        if marks:
            score += float(c["weight"]) * sum(marks) / len(marks)
    return score / total_w if total_w else None
