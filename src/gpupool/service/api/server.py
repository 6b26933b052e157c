"""How the API is served: uvicorn with the settings' connection limits, timeouts and TLS.

This module owns ``run`` (what ``gpupool serve`` and the load benchmark call) and
``LimitedHttpProtocol``, uvicorn's httptools protocol with two limits it lacks:

- the request line and headers together may hold at most ``max_header_bytes``: past it the
  request is answered ``431 Request Header Fields Too Large`` and the connection closed
  (httptools itself accepts headers of any size);
- a request must arrive (line, headers and body) within ``request_read_timeout_s`` of its
  first byte, and a new connection must start one within that time: a client that trickles
  bytes (slowloris) or stops half-way is answered ``408 Request Timeout`` and closed, and its
  request never reaches the app.

An idle keep-alive connection is closed after ``keep_alive_timeout_s`` (uvicorn's own
timer). With ``tls_cert`` and ``tls_key`` the server speaks HTTPS only. ``X-Forwarded-For``
is believed only from the proxies ``forwarded_allow_ips`` names (none by default: a local
job could otherwise claim any address and slip past the per-address rate limit).
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gpupool.service.api.problems import MEDIA_TYPE, TYPE_BASE
from gpupool.service.settings import ServiceSettings


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that broke a limit."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-size limit and a request read deadline."""

    max_header_bytes = 64 * 1024
    read_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._refusal: tuple[int, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    # -- the read deadline ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:  # the first request keeps the deadline of the connection
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # an answer is under way (e.g. 413 before the body): cut it
            return
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's reads end; whatever it sends is dropped
        self._answer(408, f"the request did not arrive within {self.read_timeout_s:g} s")

    # -- the header limit -----------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            self._refusal = (431, f"request line and headers larger than {self.max_header_bytes} bytes")
            raise _Refused  # the parser stops; uvicorn calls send_400_response (below)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, detail = self._refusal
        self._refusal = None
        self._answer(status, detail)

    def _answer(self, status: int, detail: str) -> None:
        """Write a problem document and close the connection (the app never saw the request)."""
        self._disarm()
        kind = {408: "request-timeout", 431: "request-header-fields-too-large"}.get(status, "error")
        body = json.dumps(
            {"type": TYPE_BASE + kind, "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
        ).encode()
        head = [
            STATUS_LINE[status],
            f"content-type: {MEDIA_TYPE}\r\n".encode(),
            f"content-length: {len(body)}\r\n".encode(),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def limited_protocol(settings: ServiceSettings) -> type[LimitedHttpProtocol]:
    """``LimitedHttpProtocol`` with the limits of ``settings``."""

    class Limited(LimitedHttpProtocol):
        max_header_bytes = settings.max_header_bytes
        read_timeout_s = settings.request_read_timeout_s

    return Limited


def uvicorn_config(
    app: FastAPI, settings: ServiceSettings, *, log_level: str = "info", access_log: bool = True
) -> uvicorn.Config:
    """The uvicorn configuration that serves ``app`` by ``settings``."""
    return uvicorn.Config(
        app,
        access_log=access_log,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        http=limited_protocol(settings),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )


def run(app: FastAPI, settings: ServiceSettings, *, log_level: str = "info", access_log: bool = True) -> None:
    """Serve ``app`` until interrupted (the caller starts and stops the runtime)."""
    uvicorn.Server(uvicorn_config(app, settings, log_level=log_level, access_log=access_log)).run()
