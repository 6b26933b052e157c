"""``/v1/dashboard/session``: who the caller is and what the dashboard may offer them.

This module owns the caller's session as the dashboard sees it: user, role, memberships, the
projects they may submit to, whether they may run what-if studies or drain nodes, and the
fleet's models (per project, those it may run on) and walltime limits for the submit form.
It is computed with the same ``Caller`` rules as the routes, so the page never offers what
the API would refuse. It also owns ``usage_projects``: whose jobs and usage a caller sees on
the dashboard's pages.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.problems import responses
from gpupool.service.api.users import memberships
from gpupool.service.auth import Caller
from gpupool.service.db import TenantRow, UserRow
from gpupool.service.runtime import Runtime

router = APIRouter(tags=["dashboard"])


def usage_projects(caller: Caller) -> frozenset[int] | None:
    """Projects whose jobs and usage the caller sees (None: all), as ``/v1/jobs`` and ``/v1/usage``."""
    return None if caller.sees_all else frozenset(caller.member_of | caller.admin_of)


def project_models(s: Session, rt: Runtime, project_ids: list[int]) -> dict[str, list[str]]:
    """The models each project may run on: the core confines a project to its clusters, or to
    its nearest ancestor's (a child narrows, never leaves them), so a model found only in
    other clusters would be accepted by the API and then never start."""
    if not project_ids:
        return {}
    rows = {r.id: r for r in s.scalars(select(TenantRow))}
    fleet = rt.fleet
    names = {c.index: c.name for c in fleet.clusters}
    out: dict[str, list[str]] = {}
    for pid in project_ids:
        row: TenantRow | None = rows[pid]
        path = rows[pid].path
        confined: list[str] = []
        while row is not None and not confined:
            confined = list(row.clusters or [])
            row = rows.get(row.parent_id) if row.parent_id is not None else None
        out[path] = sorted(
            {
                m
                for (ci, m), g in fleet.gpus_by_pool.items()
                if g > 0 and (not confined or names[ci] in confined)
            }
        )
    return out


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
    project_models: dict[str, list[str]] = Field(
        description="Per project of submit_projects, the accelerator models its jobs may run on "
        "(those in the clusters it, or its nearest ancestor with a restriction, is confined to)"
    )
    can_whatif: bool
    can_start_whatif: bool = Field(description="May start and stop what-if studies (pool admins)")
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
    submit = [(i, p) for i, p in projects if caller.can_submit(i)]
    return SessionOut(
        user=user.name,
        display_name=user.display_name,
        role=user.role,
        sees_all=caller.sees_all,
        memberships=[MembershipOut(tenant=p, role=r) for p, r in memberships(s, user.id)],
        submit_projects=[p for _, p in submit],
        project_models=project_models(s, rt, [i for i, _ in submit]),
        can_whatif=caller.sees_all,
        can_start_whatif=caller.is_pool_admin,
        can_drain=caller.is_pool_admin,
        fleet=rt.fleet.name,
        models=sorted(rt.fleet.gpus_by_model()),
        max_walltime_s=rt.settings.max_walltime_s,
        default_walltime_s=rt.settings.default_walltime_s,
    )
