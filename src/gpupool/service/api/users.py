"""``/v1/users`` and ``/v1/tokens``: people, their roles and their API tokens.

This module owns the user and token routes. A pool admin creates users of any role; an org
admin may create plain users (to make them members). Anyone may mint, list and revoke their
own tokens; a pool admin may mint one for another user. The token's secret is in the response
of ``POST /v1/tokens`` only: the database keeps its SHA-256. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service import auth, store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep, require_pool_admin
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.db import MembershipRow, TenantRow, TokenRow, UserRow
from gpupool.service.request_body import RequestBody

router = APIRouter(tags=["users"])
UserName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")]


class UserIn(RequestBody):
    name: UserName
    display_name: Annotated[str, Field(max_length=255)] = ""
    role: Literal["pool-admin", "viewer", "user"] = "user"


class Membership(BaseModel):
    tenant: str
    role: str


class UserOut(BaseModel):
    name: str
    display_name: str
    role: str
    memberships: list[Membership] = []


class TokenIn(RequestBody):
    name: Annotated[str, Field(max_length=64)] = ""
    user: UserName | None = None


class TokenOut(BaseModel):
    id: int
    name: str
    user: str
    created_ms: int
    revoked: bool


class NewToken(TokenOut):
    token: str = Field(description="The secret: shown only in this response")


@router.post(
    "/v1/users",
    status_code=201,
    response_model=UserOut,
    responses=responses(401, 403, 409, 422),
    summary="Add a user",
)
def create_user(body: UserIn, caller: CallerDep, rt: RuntimeDep) -> UserOut:
    if not caller.is_pool_admin and not (caller.admin_of and body.role == "user"):
        raise ApiProblem(
            403, "only a pool admin (or an org admin, for plain users) may add users", kind="forbidden"
        )
    now = rt.clock()
    with rt.factory.begin() as s:
        if s.scalars(select(UserRow.id).where(UserRow.name == body.name)).first() is not None:
            raise ApiProblem(409, f"user {body.name!r} exists", kind="conflict")
        s.add(
            UserRow(
                name=body.name, display_name=body.display_name or body.name, role=body.role, created_ms=now
            )
        )
        store.audit(s, caller.name, "user.create", f"user/{body.name}", body.model_dump(), now)
    return UserOut(name=body.name, display_name=body.display_name or body.name, role=body.role)


@router.get("/v1/users/me", response_model=UserOut, responses=responses(401), summary="Who am I")
def me(caller: CallerDep, s: SessionDep) -> UserOut:
    user = s.get(UserRow, caller.user_id)
    assert user is not None
    return UserOut(
        name=user.name,
        display_name=user.display_name,
        role=user.role,
        memberships=[Membership(tenant=p, role=r) for p, r in memberships(s, user.id)],
    )


def memberships(s: Session, user_id: int) -> list[tuple[str, str]]:
    """(tenant path, role) of each of the user's memberships, by path."""
    got = s.execute(
        select(TenantRow.path, MembershipRow.role)
        .join(MembershipRow, MembershipRow.tenant_id == TenantRow.id)
        .where(MembershipRow.user_id == user_id)
        .order_by(TenantRow.path)
    ).all()
    return [(p, r) for p, r in got]


@router.get("/v1/users", response_model=list[UserOut], responses=responses(401, 403), summary="Users")
def list_users(caller: CallerDep, s: SessionDep) -> list[UserOut]:
    if not caller.sees_all:
        raise ApiProblem(403, "only pool admins and viewers may list users", kind="forbidden")
    return [
        UserOut(name=u.name, display_name=u.display_name, role=u.role)
        for u in s.scalars(select(UserRow).order_by(UserRow.name))
    ]


@router.post(
    "/v1/tokens",
    status_code=201,
    response_model=NewToken,
    responses=responses(401, 403, 422),
    summary="Mint an API token (shown once)",
)
def create_token(body: TokenIn, caller: CallerDep, rt: RuntimeDep) -> NewToken:
    now = rt.clock()
    plain, hashed = auth.new_token()
    with rt.factory.begin() as s:
        user_id, user_name = caller.user_id, caller.name
        if body.user is not None and body.user != caller.name:
            require_pool_admin(caller)
            other = s.scalars(select(UserRow).where(UserRow.name == body.user)).first()
            if other is None:
                raise invalid("user", f"no user {body.user!r}")
            user_id, user_name = other.id, other.name
        row = TokenRow(user_id=user_id, name=body.name, hash=hashed, created_ms=now)
        s.add(row)
        s.flush()
        store.audit(
            s, caller.name, "token.create", f"user/{user_name}", {"token_id": row.id, "name": body.name}, now
        )
        return NewToken(id=row.id, name=row.name, user=user_name, created_ms=now, revoked=False, token=plain)


@router.get("/v1/tokens", response_model=list[TokenOut], responses=responses(401), summary="My tokens")
def list_tokens(caller: CallerDep, s: SessionDep) -> list[TokenOut]:
    rows = s.scalars(select(TokenRow).where(TokenRow.user_id == caller.user_id).order_by(TokenRow.id))
    return [
        TokenOut(id=r.id, name=r.name, user=caller.name, created_ms=r.created_ms, revoked=r.revoked)
        for r in rows
    ]


@router.delete(
    "/v1/tokens/{token_id}", status_code=204, responses=responses(401, 404), summary="Revoke a token"
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], caller: CallerDep, rt: RuntimeDep
) -> Response:
    now = rt.clock()
    with rt.factory.begin() as s:
        row = s.get(TokenRow, token_id)
        if row is None or (row.user_id != caller.user_id and not caller.is_pool_admin):
            raise not_found(f"token {token_id}")
        row.revoked = True
        store.audit(s, caller.name, "token.revoke", f"token/{token_id}", {}, now)
    return Response(status_code=204)
