"""The audit of refusals: every 401 and 403, who, what route, when and why, without a flood.

This module owns ``RefusalLog``. Each refusal becomes an audit row (action ``refused``,
target ``METHOD path``, detail: status, reason, route, client address), readable by pool
admins at ``GET /v1/audit?action=refused``. So that a flood of bad tokens cannot turn the
audit log into a denial of service (a write per request, an unbounded table), refusals are
coalesced: the first of each (who, client address, method, route, status, reason) in a
wall-clock minute is written, repeats in that minute are only counted, and at most
``per_minute`` rows are written a minute in all. The counts of what was coalesced or dropped
go into one ``refused.coalesced`` row, written with the first refusal of a later minute (no
timer: nothing is written while nothing is refused).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gpupool.service import store

log = logging.getLogger("gpupool.service")
MINUTE_MS = 60_000
#: refusal rows written per minute at most (beyond: counted, not written)
PER_MINUTE = 120
#: distinct refusals remembered per minute at most (memory stays bounded under a flood)
MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request, as the audit row will say it."""

    actor: str  # the user's name, or "anonymous" when no valid token was given
    method: str
    path: str  # the URL path asked for
    route: str  # the route's template (``/v1/jobs/{job_id}/cancel``): the coalescing key
    status: int
    reason: str
    client: str

    def key(self) -> tuple[str, str, str, str, int, str]:
        return (self.actor, self.client, self.method, self.route, self.status, self.reason)


class RefusalLog:
    """Decides which refusals to write (memory only, cheap) and writes them."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Callable[[], int],
        per_minute: int = PER_MINUTE,
    ) -> None:
        self._factory = factory
        self._clock = clock
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._minute = -1
        self._seen: set[tuple[str, str, str, str, int, str]] = set()
        self._written = 0
        self._coalesced = 0
        self._dropped = 0

    def admit(self, r: Refusal) -> list[tuple[str, str, dict[str, Any], int]]:
        """The audit rows (action, target, detail, at) to write for ``r``; often none."""
        now = self._clock()
        minute = now // MINUTE_MS
        rows: list[tuple[str, str, dict[str, Any], int]] = []
        with self._lock:
            if minute != self._minute:
                if self._coalesced or self._dropped:
                    rows.append(
                        (
                            "refused.coalesced",
                            "audit",
                            {
                                "minute_start_ms": self._minute * MINUTE_MS,
                                "repeats_not_written": self._coalesced,
                                "dropped_over_cap": self._dropped,
                            },
                            now,
                        )
                    )
                self._minute, self._written, self._coalesced, self._dropped = minute, 0, 0, 0
                self._seen.clear()
            key = r.key()
            if key in self._seen:
                self._coalesced += 1
                return rows
            if self._written >= self.per_minute or len(self._seen) >= MAX_KEYS:
                self._dropped += 1
                return rows
            self._seen.add(key)
            self._written += 1
        detail = {
            "status": r.status,
            "reason": r.reason,
            "route": r.route,
            "client": r.client,
        }
        rows.append(("refused", f"{r.method} {r.path}"[:255], detail, now))
        return rows

    def write(self, actor: str, rows: list[tuple[str, str, dict[str, Any], int]]) -> None:
        """Write rows ``admit`` gave (blocks: call it from a worker thread).

        A database fault loses the rows (logged) but never changes the refusal's answer.
        """
        if not rows:
            return
        try:
            with self._factory.begin() as s:
                for action, target, detail, at in rows:
                    who = actor[:64] if action == "refused" else "gpupool"
                    store.audit(s, who, action, target, detail, at)
        except SQLAlchemyError as e:
            log.warning("could not audit %d refusal row(s): %s", len(rows), e)

    def record(self, r: Refusal) -> None:
        """``admit`` then ``write`` (blocks)."""
        self.write(r.actor, self.admit(r))
