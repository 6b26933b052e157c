"""Errors as RFC 9457 problem details (``application/problem+json``).

This module owns ``ApiProblem`` (raised by routers), the ``Problem`` schema shown in OpenAPI,
and the exception handlers that turn every error (validation, HTTP, ours) into a problem
document with ``type``, ``title``, ``status``, ``detail`` and, for invalid input,
``errors: [{field, message}]`` naming each offending field. An unexpected exception becomes a
500 problem without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("gpupool.service.api")
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://gpupool.dev/problems/"


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = []


class ApiProblem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _slug(status)
        self.errors = errors or []
        self.headers = headers


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-")
    except ValueError:
        return "error"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    detail: str,
    kind: str | None = None,
    errors: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (kind or _slug(status)),
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [{"field": f, "message": m} for f, m in errors]
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, f"{what} not found")


def invalid(field: str, message: str, status: int = 422) -> ApiProblem:
    return ApiProblem(status, f"{field}: {message}", kind="invalid-request", errors=[(field, message)])


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """``('body', 'groups', 0, 'workers')`` -> ``groups[0].workers``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts.pop(0)
        if not parts:
            return "body" if where == "body" else where
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


#: told of every 401 and 403 before it is answered (the audit of refusals)
OnRefusal = Callable[[Request, int, str], Awaitable[None]]


def install(app: FastAPI, on_refusal: OnRefusal | None = None) -> None:
    """Register the handlers that make every error a problem document."""

    @app.exception_handler(ApiProblem)
    async def _ours(request: Request, exc: ApiProblem) -> JSONResponse:
        if on_refusal is not None and exc.status in (401, 403):
            await on_refusal(request, exc.status, exc.detail)
        return problem_response(exc.status, exc.detail, exc.kind, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = e.get("loc", ())
            field = _field(loc)
            msg = str(e.get("msg", "invalid"))
            if e.get("type") == "extra_forbidden":
                msg = "unknown field"
            errors.append((field, msg))
        detail = "; ".join(f"{f}: {m}" for f, m in errors[:5]) or "invalid request"
        return problem_response(422, detail, "invalid-request", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, detail, headers=headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error (logged on the server)")


#: OpenAPI ``responses`` entries for the problems most routes may answer.
def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": _title(c)} for c in codes}
