"""Rate limits: token buckets per token, per client address, and on failed authentications.

This module owns ``TokenBuckets`` (a bucket per key: ``burst`` requests at once, refilled at
``rate`` a second) and ``RateLimit``, an ASGI middleware in front of the app. Before any
other work a request takes one unit from its client address's bucket and, when it carries a
bearer token, one from that token's bucket; an empty bucket answers ``429 Too Many Requests``
as a problem document with ``Retry-After`` (the seconds until a unit is back) and naming the
limit. A failed authentication (a request with a token answered 401) also takes a unit from
the address's failure bucket, much smaller: once it is empty, the address gets 429 for any
token not seen valid recently (a guessing run stops there; a valid user behind the same
address is unaffected, and so are requests without a token, which guess nothing).

Tokens are keyed by a digest of the secret, never the secret, and without looking them up:
the limit applies before (and whether or not) the token is known. Addresses are the peer's,
or ``X-Forwarded-For``'s when the peer is a proxy trusted by ``forwarded_allow_ips``
(uvicorn rewrites the scope). State is in memory, per process, bounded in keys: a fresh
process starts with full buckets. Everything runs on the event loop: no locks.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpupool.service.api import problems
from gpupool.service.metrics import ServiceMetrics
from gpupool.service.settings import ServiceSettings

#: keys a set of buckets holds before it forgets the full ones (then the oldest half)
MAX_KEYS = 100_000
#: token digests remembered as valid (a route authenticated a request with them)
MAX_GOOD_TOKENS = 100_000
#: set in a request's scope by whatever authenticated its token (``caller.get_caller``,
#: ``FastSubmit``): only such tokens are exempt from the failure lockout (a bad token sent
#: to a route that reads no token, ``/v1/health``, proves nothing)
AUTHENTICATED = "gpupool.authenticated"


class TokenBuckets:
    """One token bucket per key: ``burst`` units, refilled at ``rate`` units a second."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = MAX_KEYS) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        #: key -> [units left, when they were counted]
        self._buckets: dict[object, list[float]] = {}

    def take(self, key: object, now: float) -> float:
        """Take one unit: 0.0 if there was one, else the seconds until there will be."""
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._forget(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        units = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if units >= 1.0:
            b[0] = units - 1.0
            return 0.0
        b[0] = units
        return (1.0 - units) / self.rate

    def empty(self, key: object, now: float) -> float:
        """The seconds until ``key`` has a unit again (0.0: it has one), taking nothing."""
        b = self._buckets.get(key)
        if b is None:
            return 0.0
        units = min(self.burst, b[0] + (now - b[1]) * self.rate)
        return 0.0 if units >= 1.0 else (1.0 - units) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget(self, now: float) -> None:
        # A full bucket is the same as none; if that frees too little, drop the oldest half
        # (dicts keep insertion order): memory stays bounded whatever keys an attacker sends.
        full = [k for k, (u, t) in self._buckets.items() if u + (now - t) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            for k in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[k]


def token_key(token: bytes) -> bytes:
    """The key a token's bucket is kept under: a digest, so no secret stays in memory."""
    return hashlib.blake2b(token, digest_size=16).digest()


def _buckets(rate: float, burst: int) -> TokenBuckets | None:
    return TokenBuckets(rate, burst) if rate > 0 else None


class RateLimit:
    """Refuse requests over the limits with 429; count failed authentications."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ServiceSettings,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock
        self.per_token = _buckets(settings.rate_limit_token_per_s, settings.rate_limit_token_burst)
        self.per_address = _buckets(settings.rate_limit_address_per_s, settings.rate_limit_address_burst)
        self.auth_failures = _buckets(
            settings.rate_limit_auth_failures_per_s, settings.rate_limit_auth_failures_burst
        )
        #: digests of tokens recently authenticated (exempt from the failure lockout)
        self.good: dict[bytes, None] = {}
        #: 429s answered, by limit (``token``, ``address``, ``auth``)
        self.refused: dict[str, int] = {"token": 0, "address": 0, "auth": 0}
        self.enabled = any(b is not None for b in (self.per_token, self.per_address, self.auth_failures))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = self.clock()
        client = scope.get("client")
        address = client[0] if client else ""
        token: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, secret = value.partition(b" ")
                if scheme.lower() == b"bearer" and secret:
                    token = token_key(secret.strip())
                break
        if self.per_address is not None:
            wait = self.per_address.take(address, now)
            if wait:
                await self._refuse(scope, receive, send, "address", wait, "requests from this address")
                return
        if self.per_token is not None and token is not None:
            wait = self.per_token.take(token, now)
            if wait:
                await self._refuse(scope, receive, send, "token", wait, "requests with this token")
                return
        failures = self.auth_failures
        if failures is None or token is None:  # without a token nothing is guessed
            await self.app(scope, receive, send)
            return
        if token not in self.good:
            wait = failures.empty(address, now)
            if wait:
                await self._refuse(
                    scope, receive, send, "auth", wait, "failed authentications from this address"
                )
                return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 401:
                    failures.take(address, self.clock())
                    self.good.pop(token, None)
                elif token not in self.good and scope.get(AUTHENTICATED):
                    if len(self.good) >= MAX_GOOD_TOKENS:
                        self.good.pop(next(iter(self.good)))
                    self.good[token] = None
            await send(message)

        await self.app(scope, receive, watched)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, limit: str, wait: float, what: str
    ) -> None:
        self.refused[limit] += 1
        if self.metrics is not None:
            self.metrics.refused.labels(f"rate_limit_{limit}").inc()
        answer = problems.problem_response(
            429,
            f"too many {what}; retry after the Retry-After seconds",
            "too-many-requests",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
        await answer(scope, receive, send)
