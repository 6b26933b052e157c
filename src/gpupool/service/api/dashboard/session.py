"""``/v1/dashboard/session``: who the caller is and what the dashboard may offer them.

This module owns the caller's session as the dashboard sees it: user, role, memberships, the
projects they may submit to, whether they may run what-if studies or drain nodes, and the
fleet's models and walltime limits for the submit form. It is computed with the same
``Caller`` rules as the routes, so the page never offers what the API would refuse. It also
owns ``usage_projects``: whose jobs and usage a caller sees on the dashboard's pages.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.problems import responses
from gpupool.service.api.users import memberships
from gpupool.service.auth import Caller
from gpupool.service.db import TenantRow, UserRow

router = APIRouter(tags=["dashboard"])


def usage_projects(caller: Caller) -> frozenset[int] | None:
    """Projects whose jobs and usage the caller sees (None: all), as ``/v1/jobs`` and ``/v1/usage``."""
    return None if caller.sees_all else frozenset(caller.member_of | caller.admin_of)


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
    return SessionOut(
        user=user.name,
        display_name=user.display_name,
        role=user.role,
        sees_all=caller.sees_all,
        memberships=[MembershipOut(tenant=p, role=r) for p, r in memberships(s, user.id)],
        submit_projects=[p for i, p in projects if caller.can_submit(i)],
        can_whatif=caller.sees_all,
        can_start_whatif=caller.is_pool_admin,
        can_drain=caller.is_pool_admin,
        fleet=rt.fleet.name,
        models=sorted(rt.fleet.gpus_by_model()),
        max_walltime_s=rt.settings.max_walltime_s,
        default_walltime_s=rt.settings.default_walltime_s,
    )
