"""Request context: the runtime, a database session, and the authenticated caller.

This module owns the FastAPI dependencies every router uses: ``RuntimeDep`` (the service
instance), ``SessionDep`` (a session per request, closed after it) and ``CallerDep`` (the
``Caller`` behind ``Authorization: Bearer <token>``: 401 when missing, unknown or revoked).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from gpupool.service.api.problems import ApiProblem
from gpupool.service.api.rate_limit import AUTHENTICATED
from gpupool.service.auth import Caller
from gpupool.service.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="An API token (POST /v1/tokens)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def get_runtime(request: Request) -> Runtime:
    # async: a plain attribute read must not cost a hop to the thread pool
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.reader() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session)]


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
    request.scope[AUTHENTICATED] = True  # the rate limiter's proof the token is valid
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_pool_admin(caller: Caller) -> None:
    if not caller.is_pool_admin:
        raise ApiProblem(403, "only a pool admin may do this", kind="forbidden")
