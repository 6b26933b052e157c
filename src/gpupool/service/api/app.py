"""The FastAPI application: routers, problem handlers, the body-size limit, the lifespan.

This module owns ``create_app``. The app starts and stops its ``Runtime`` with its lifespan
(unless told the caller manages it), answers every error as ``application/problem+json``, and
refuses request bodies above ``max_body_bytes`` with 413 before any of it is parsed (by the
declared ``Content-Length`` or, without one, by reading the body first), and URLs that spell
a NUL character with 422 (``NoNulInUrl``). Outermost, a database outage anywhere inside is
answered 503 with ``Retry-After`` (``outage``), then requests over the rate limits get 429
(``rate_limit``). The OpenAPI pages serve their own assets (``docs``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpupool.service.api import (
    allocations,
    audit,
    dashboard,
    docs,
    fleet,
    health,
    jobs,
    metrics,
    notifications,
    oidc,
    problems,
    programme,
    reports,
    reservations,
    tenants,
    twin,
    usage,
    users,
)
from gpupool.service.api.fast_submit import FastSubmit
from gpupool.service.api.outage import OutageGuard
from gpupool.service.api.rate_limit import RateLimit
from gpupool.service.refusals import Refusal
from gpupool.service.runtime import Runtime
from gpupool.web import mount_dashboard


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with a 413 problem."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        if not any(name == b"content-length" for name, _ in scope.get("headers", [])):
            # A streamed body: read it here (at most ``limit`` + 1 bytes), then replay it, so
            # that an oversized one is refused before the app sees a byte of it.
            buffered: list[Message] = []
            seen = 0
            while True:
                message = await receive()
                buffered.append(message)
                if message["type"] != "http.request":
                    break
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    await self._refuse(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
            replay = iter(buffered)

            async def replayed() -> Message:
                return next(replay, None) or await receive()

            await self.app(scope, replayed, send)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = problems.problem_response(
            413, f"request body larger than {self.limit} bytes", "payload-too-large"
        )
        await resp(scope, receive, send)


class NoNulInUrl:
    """Refuse a URL whose path or query holds a NUL character (``%00``) with a 422 problem.

    No name, id or filter of the API contains one, and PostgreSQL's text parameters refuse it:
    a lookup by such a path was a 500 there (found by the fuzzing run) and a 404 on SQLite.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "")
            or b"%00" in scope.get("query_string", b"")
            or b"\x00" in scope.get("query_string", b"")
        ):
            fields = _fields_with_nul(scope)
            resp = problems.problem_response(
                422,
                f"{', '.join(fields)}: must not contain NUL characters (%00)",
                "invalid-request",
                errors=[(f, "must not contain NUL characters (%00)") for f in fields],
            )
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _fields_with_nul(scope: Scope) -> list[str]:
    """The query parameters (or ``path``) whose value holds a NUL, to name them in the 422."""
    names = [] if "\x00" not in scope.get("path", "") else ["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name + value and name not in names:
            names.append(name.replace("\x00", "") or "query")
    return names or ["query"]


def create_app(runtime: Runtime, *, manage_runtime: bool = True) -> FastAPI:
    """The API over ``runtime``; with ``manage_runtime`` the app's lifespan starts and stops it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                runtime.stop()

    app = FastAPI(
        docs_url=None,  # docs.install: the same pages without a CDN
        redoc_url=None,
        title="gpupool",
        version="1",
        summary="Share a national GPU pool fairly and fast",
        description="The gpupool service: jobs, tenants, allocations, usage and the fleet. "
        "Authenticate with `Authorization: Bearer <token>`. Errors are RFC 9457 problem documents.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    async def refused(request: Request, status: int, detail: str) -> None:
        # every 401 and 403 is audited (coalesced: refusals.py); memory decides, a thread writes
        caller = getattr(request.state, "caller", None)
        route = getattr(request.scope.get("route"), "path", request.url.path)
        r = Refusal(
            actor=caller.name if caller is not None else "anonymous",
            method=request.method,
            path=request.url.path,
            route=str(route),
            status=status,
            reason=detail,
            client=request.client.host if request.client else "",
        )
        rows = runtime.refusals.admit(r)
        if rows:
            await run_in_threadpool(runtime.refusals.write, r.actor, rows)

    problems.install(app, on_refusal=refused)
    docs.install(app)
    for module in (health, metrics, fleet, tenants, users, allocations, jobs, usage, audit, reports, twin):
        app.include_router(module.router)
    app.include_router(reservations.router)  # /v1/reservations: advance reservations (ADR 0020)
    programme.install(app)  # /v1/calls and /v1/applications: the national programme (ADR 0010)
    notifications.install(app)  # /v1/notifications: webhooks and e-mail about events (ADR 0011)
    oidc.install(app)  # /v1/auth/oidc: people sign in with an identity provider (ADR 0008)
    dashboard.install(app)  # /v1/dashboard/*, /v1/whatif and the series sampler (issue #6)
    mount_dashboard(app)  # the web dashboard at / (issue #6)
    # well-formed submissions skip the framework (fast_submit.py); inside the body limit
    app.add_middleware(FastSubmit, runtime=runtime, enabled=runtime.settings.fast_submit)
    app.add_middleware(BodyLimit, limit=runtime.settings.max_body_bytes)
    app.add_middleware(NoNulInUrl)
    app.add_middleware(RateLimit, settings=runtime.settings, metrics=runtime.metrics)
    app.add_middleware(OutageGuard, retry_after_s=runtime.settings.retry_after_s, metrics=runtime.metrics)
    return app
