"""``/v1/users`` and ``/v1/tokens``: people, their roles and their API tokens.

This module owns the user and token routes. A pool admin creates users of any role; an org
admin may create plain users (to make them members). Anyone but a viewer may mint tokens for
themselves, with at most the scopes of the token they mint with; everyone may list and revoke
their own; a pool admin may mint one for another user and revoke any. A token expires
(``expires_in`` seconds, default 90 days). The last pool-admin credential cannot be revoked
(409): ``gpupool admin recover`` is the way back, not the way in. The token's secret is in the
response of ``POST /v1/tokens`` only: the database keeps its SHA-256. Every change is audited.
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
from gpupool.service.auth import DEFAULT_TOKEN_TTL_MS, MAX_TOKEN_TTL_MS, Scope
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
    scopes: Annotated[
        list[Scope] | None,
        Field(
            min_length=1,
            max_length=3,
            description="read, submit, admin (default: those of the token minting it; "
            "at most those, for one's own tokens)",
        ),
    ] = None
    expires_in: Annotated[
        int,
        Field(ge=60, le=MAX_TOKEN_TTL_MS // 1000, description="Lifetime in seconds (default 90 days)"),
    ] = DEFAULT_TOKEN_TTL_MS // 1000


class TokenOut(BaseModel):
    id: int
    name: str
    user: str
    created_ms: int
    revoked: bool
    scopes: list[str] = []
    expires_ms: int | None = None
    last_used_ms: int | None = None


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
    user_id, user_name, user_role = caller.user_id, caller.name, caller.role
    if body.user is not None and body.user != caller.name:
        require_pool_admin(caller)
        with rt.reader() as s:
            other = s.scalars(select(UserRow).where(UserRow.name == body.user)).first()
            if other is None:
                raise invalid("user", f"no user {body.user!r}")
            user_id, user_name, user_role = other.id, other.name, other.role
        scopes = frozenset(body.scopes) if body.scopes is not None else auth.ALL_SCOPES
    else:
        # one's own token never has more scopes than the token that mints it
        scopes = frozenset(body.scopes) if body.scopes is not None else caller.scopes
        wider = [s for s in Scope if s in scopes and not caller.has(s)]
        if wider:
            raise ApiProblem(
                403,
                f"scopes: this token may not mint a token with the {wider[0].value!r} scope "
                "(a token never has more scopes than the one that mints it)",
                kind="insufficient-scope",
            )
    if user_role == "viewer":
        scopes = scopes & {Scope.READ} or frozenset({Scope.READ})  # viewers only read
    expires = now + body.expires_in * 1000
    token_id, plain = rt.directory.issue_token(
        user_id, name=body.name, scopes=scopes, expires_at_ms=expires, now_ms=now, actor=caller.name
    )
    return NewToken(
        id=token_id,
        name=body.name,
        user=user_name,
        created_ms=now,
        revoked=False,
        scopes=[s.value for s in Scope if s in scopes],
        expires_ms=expires,
        token=plain,
    )


def token_out(r: TokenRow, user: str) -> TokenOut:
    return TokenOut(
        id=r.id,
        name=r.name,
        user=user,
        created_ms=r.created_ms,
        revoked=r.revoked,
        scopes=auth.scopes_text(auth.parse_scopes(r.scopes)).split(),
        expires_ms=r.expires_ms,
        last_used_ms=r.last_used_ms,
    )


@router.get("/v1/tokens", response_model=list[TokenOut], responses=responses(401), summary="My tokens")
def list_tokens(caller: CallerDep, s: SessionDep) -> list[TokenOut]:
    rows = s.scalars(select(TokenRow).where(TokenRow.user_id == caller.user_id).order_by(TokenRow.id))
    return [token_out(r, caller.name) for r in rows]


@router.delete(
    "/v1/tokens/{token_id}",
    status_code=204,
    responses=responses(401, 404, 409),
    summary="Revoke a token (not the last pool-admin one)",
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], caller: CallerDep, rt: RuntimeDep
) -> Response:
    now = rt.clock()
    with rt.factory.begin() as s:
        row = s.get(TokenRow, token_id)
        if row is None or (row.user_id != caller.user_id and not caller.is_pool_admin):
            raise not_found(f"token {token_id}")
        # Lock the pool admins' live tokens (PostgreSQL; SQLite writers are serial anyway), so
        # two revocations at once cannot both see "another one is left".
        s.execute(
            select(TokenRow.id)
            .join(UserRow, UserRow.id == TokenRow.user_id)
            .where(UserRow.role == "pool-admin", TokenRow.revoked.is_(False))
            .with_for_update()
        ).all()
        live = auth.live_pool_admin_tokens(s, now)
        if live == [row.id]:
            raise ApiProblem(
                409,
                f"token {token_id} is the last pool-admin credential: mint another pool-admin token "
                "first (POST /v1/tokens), or the pool has no administrator left "
                "(`gpupool admin recover` on the server's machine is the way back)",
                kind="last-pool-admin",
            )
        row.revoked = True
        store.audit(s, caller.name, "token.revoke", f"token/{token_id}", {}, now)
    return Response(status_code=204)
