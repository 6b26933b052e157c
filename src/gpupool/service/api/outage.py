"""Database outages on the request path: 503 with ``Retry-After``, never 500.

This module owns ``OutageGuard``, the outermost ASGI middleware of the app. A request that
meets the database down, locked past its timeout or unreachable (``db.unavailable``: a
stopped PostgreSQL, a connection lost, SQLite's ``database is locked``) is answered
``503 Service Unavailable`` as a problem document with ``Retry-After``, whatever route or
middleware (the fast submission path included) raised it. Nothing is kept between requests:
when the database is back the next request simply works (the engines' pools reconnect, the
PostgreSQL pool pings each connection before use). Any other exception goes on to the app's
500 handler unchanged.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpupool.service.api import problems
from gpupool.service.db import unavailable
from gpupool.service.metrics import ServiceMetrics

log = logging.getLogger("gpupool.service.api")
#: at most one log line per this many seconds while the database stays unavailable
LOG_EVERY_S = 10.0


class OutageGuard:
    """Answer 503 + ``Retry-After`` for a request that failed because the database is unavailable."""

    def __init__(self, app: ASGIApp, retry_after_s: int, metrics: ServiceMetrics | None = None) -> None:
        self.app = app
        self.counted = metrics.refused.labels("database_unavailable") if metrics is not None else None
        self.retry_after = str(retry_after_s)
        self.answered = 0  # 503s answered for outages (the log says how many)
        self._logged = -LOG_EVERY_S

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as e:
            if started or not unavailable(e):
                raise
            self.answered += 1
            if self.counted is not None:
                self.counted.inc()
            now = time.monotonic()
            if now - self._logged >= LOG_EVERY_S:
                self._logged = now
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                log.warning("database unavailable (%s): answering 503 (%d so far)", first, self.answered)
            answer = problems.problem_response(
                503,
                "the database is unavailable (down or locked); retry later",
                "database-unavailable",
                headers={"Retry-After": self.retry_after},
            )
            await answer(scope, receive, send)
