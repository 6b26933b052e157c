"""The client's errors: one tree, so a caller catches as broadly or narrowly as it needs.

This module owns the exceptions ``gpupool.client`` raises. An error response of the server is
an RFC 9457 ``application/problem+json`` document; ``ApiError`` carries its fields (``type``,
``title``, ``status``, ``detail`` and, for validation, ``errors: [{field, message}]``)::

    ClientError
     ├── NotConfigured          no server URL or token (run ``gpupool login``)
     ├── ConnectionFailed       the server could not be reached (refused, DNS, timeout)
     └── ApiError               the server answered with an error status
          ├── BadRequest        400, 413, 422: the request is wrong; ``errors`` names fields
          ├── Unauthorized      401: no token, or a wrong or revoked one
          ├── Forbidden         403: the token may not do this
          ├── NotFound          404: no such object, or one the caller may not see
          ├── Conflict          409: the object's state forbids it (cancel a finished job)
          ├── RateLimited       429
          └── ServerError       5xx
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ApiError",
    "BadRequest",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "FieldError",
    "Forbidden",
    "NotConfigured",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "error_for",
]


class ClientError(Exception):
    """Anything the client could not do."""


class NotConfigured(ClientError):
    """No server URL or no token: neither in the environment nor in the config file."""


class ConnectionFailed(ClientError):
    """The server could not be reached."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation problem: which field (a dotted path) and what is wrong with it."""

    field: str
    message: str


class ApiError(ClientError):
    """The server answered with an error status; the problem document's fields are kept."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        type: str = "about:blank",
        errors: tuple[FieldError, ...] = (),
        body: Any = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors = errors
        self.body = body
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        for e in self.errors:
            text += f"\n  {e.field}: {e.message}" if e.field else f"\n  {e.message}"
        return text


class BadRequest(ApiError):
    """400, 413 or 422: the request is wrong (``errors`` lists the fields)."""


class Unauthorized(ApiError):
    """401: no token, or a token the server does not accept."""


class Forbidden(ApiError):
    """403: the caller may not do this."""


class NotFound(ApiError):
    """404: no such object, or one the caller may not see (the server does not say which)."""


class Conflict(ApiError):
    """409: the object's state does not allow it."""


class RateLimited(ApiError):
    """429: too many requests."""


class ServerError(ApiError):
    """5xx: the server failed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
    429: RateLimited,
}


def error_for(status: int, body: Any, reason: str = "") -> ApiError:
    """The ``ApiError`` for an error response, from its problem document when it has one.

    A body that is not a problem document (a proxy's HTML page, FastAPI's bare ``{"detail"}``)
    still gives a useful error: the status, its reason phrase and whatever text there is.
    """
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    if isinstance(body, dict):
        errors = tuple(_field_errors(body.get("errors")))
        detail = body.get("detail", "")
        if not isinstance(detail, str):  # FastAPI's own 422 puts a list of errors in "detail"
            errors = errors or tuple(_field_errors(detail))
            detail = ""
        return cls(
            status,
            str(body.get("title") or reason or "error"),
            detail,
            str(body.get("type") or "about:blank"),
            errors,
            body,
        )
    text = body.strip()[:500] if isinstance(body, str) else ""
    return cls(status, reason or "error", text, body=body)


def _field_errors(raw: Any) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if not isinstance(item, dict):
            out.append(FieldError("", str(item)))
            continue
        where = item.get("field", item.get("loc", ""))
        if isinstance(where, list):
            where = ".".join(str(p) for p in where if p != "body")
        out.append(FieldError(str(where), str(item.get("message", item.get("msg", "")))))
    return out
