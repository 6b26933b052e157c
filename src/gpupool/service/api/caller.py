"""Request context: the runtime, a database session, and the authenticated caller.

This module owns the FastAPI dependencies every router uses: ``RuntimeDep`` (the service
instance), ``SessionDep`` (a session per request, closed after it) and ``CallerDep`` (the
``Caller`` behind ``Authorization: Bearer <token>``: 401 when missing, unknown, revoked or
expired). ``CallerDep`` also enforces the one rule every write shares (ADR 0007): a request
that changes something needs a token scope that allows it (``needed_scope``), so a viewer or
a ``read`` token is refused every write, whichever route it names; the routes then check the
caller's rights on the object.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gpupool.service.api.problems import ApiProblem
from gpupool.service.api.rate_limit import AUTHENTICATED
from gpupool.service.auth import Caller, Scope
from gpupool.service.runtime import Runtime

log = logging.getLogger("gpupool.service.api")
_bearer = HTTPBearer(auto_error=False, description="An API token (POST /v1/tokens)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_runtime(request: Request) -> Runtime:
    # async: a plain attribute read must not cost a hop to the thread pool
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.reader() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session)]


def needed_scope(method: str, path: str) -> Scope:
    """The token scope a request needs: ``read`` to read, ``submit`` for jobs, else ``admin``."""
    if method in SAFE_METHODS:
        return Scope.READ
    if method == "DELETE" and path.startswith("/v1/tokens/"):
        return Scope.READ  # revoking one's own token only ever takes access away
    if method == "POST" and (
        path in ("/v1/jobs", "/v1/allocations", "/v1/tokens")
        or (path.startswith("/v1/jobs/") and path.endswith("/cancel"))
    ):
        # a new token never has more scopes than the one that mints it (users.py)
        return Scope.SUBMIT
    return Scope.ADMIN


def scope_refusal(caller: Caller, method: str, path: str, needed: Scope) -> ApiProblem:
    if caller.role == "viewer":
        return ApiProblem(403, f"viewers only read: {method} {path} is a change", kind="forbidden")
    held = ", ".join(s.value for s in Scope if s in caller.scopes) or "none"
    return ApiProblem(
        403,
        f"this token's scopes ({held}) do not allow {method} {path}: it needs the {needed.value!r} scope",
        kind="insufficient-scope",
    )


def expired_problem(caller: Caller) -> ApiProblem:
    assert caller.expires_ms is not None
    when = dt.datetime.fromtimestamp(caller.expires_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ApiProblem(
        401,
        f"token expired at {when}: mint a new one (gpupool tokens create) or sign in again",
        kind="token-expired",
        headers=_CHALLENGE,
    )


async def get_caller(
    request: Request,
    rt: RuntimeDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    # async: a cached caller costs no thread-pool hop; only a miss reads the database (in
    # the pool, never on the event loop)
    if creds is None or not creds.credentials:
        raise ApiProblem(401, "missing bearer token", kind="unauthorized", headers=_CHALLENGE)
    token = creds.credentials
    if len(token) > 512:
        raise ApiProblem(401, "unknown or revoked token", kind="unauthorized", headers=_CHALLENGE)
    known, caller = rt.directory.cached_caller(token)
    if not known:
        caller = await run_in_threadpool(rt.directory.caller, token)
    if caller is None:
        raise ApiProblem(401, "unknown or revoked token", kind="unauthorized", headers=_CHALLENGE)
    request.state.caller = caller  # who was refused, for the audit of refusals
    now = rt.clock()
    if caller.expired(now):
        raise expired_problem(caller)
    needed = needed_scope(request.method, request.url.path)
    if not caller.has(needed):
        raise scope_refusal(caller, request.method, request.url.path, needed)
    if caller.token_id is not None and rt.directory.touch(caller.token_id, now):
        await run_in_threadpool(touch, rt, caller.token_id, now)
    request.scope[AUTHENTICATED] = True  # the rate limiter's proof the token is valid
    return caller


def touch(rt: Runtime, token_id: int, now: int) -> None:
    """Write a token's last use; a failure costs the request nothing (it is a statistic)."""
    try:
        rt.directory.write_last_used(token_id, now)
    except SQLAlchemyError as e:
        log.warning("could not record the last use of token %s: %s", token_id, e)


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_pool_admin(caller: Caller) -> None:
    if not caller.is_pool_admin:
        raise ApiProblem(403, "only a pool admin may do this", kind="forbidden")
