"""The notifier: a thread that turns records into events and delivers them, with retries.

This module owns ``Notifier``. Each pass (``poll``) reads the audit and event logs past their
marks and, every ``notify_check_s``, the allocations (``events``), recording events and their
deliveries in one transaction; then it sends the deliveries that are due, each outside any
transaction, and records every attempt (``notification_attempts``). A failed try is retried
after ``notify_backoff_s``, doubled each time up to ``notify_max_backoff_s``; after
``notify_max_attempts`` tries the delivery is ``failed``. A delivery is claimed before it is
sent (its next try moved past the send's timeout), so two service instances do not send it
twice at once. Nothing here runs on the request path, and a database fault costs a pass,
not the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gpupool.core.accelerator import Catalogue
from gpupool.service.db import (
    DeliveryAttemptRow,
    DeliveryRow,
    NotificationEventRow,
    SubscriptionRow,
)
from gpupool.service.notify import channels, events
from gpupool.service.notify.destinations import AllowList, Refused, check_webhook
from gpupool.service.notify.events import DeliveryState
from gpupool.service.notify.settings import NotifySettings

log = logging.getLogger("gpupool.service.notify")
#: deliveries sent per pass (the rest wait for the next)
SEND_BATCH = 50


class Notifier:
    """Reads events, sends deliveries; ``start`` runs it in a thread, ``poll`` is one pass."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: NotifySettings,
        clock: Callable[[], int],
        expiring_days: float | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock
        self.allow = AllowList(settings.webhook_allow_hosts)
        self.expiring_days = expiring_days or settings.notify_expiring_days
        self._last_check: int | None = None
        #: the fleet's catalogue, for allocations in effective GPU-hours (None: those are skipped)
        self.catalogue: Catalogue | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_runtime(cls, runtime: Any) -> Notifier:
        """The notifier of a started ``Runtime``: its cursors set, its thread running if the
        runtime runs its loop (tests that drive the loop by hand call ``poll`` themselves)."""
        notifier = cls(runtime.factory, NotifySettings(), runtime.clock)
        notifier.catalogue = runtime.catalogue  # effective allocations' usage (ADR 0018)
        with notifier.factory.begin() as s:
            events.start_cursors(s, notifier.clock())
        if runtime.run_loop:
            notifier.start()
        return notifier

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpupool-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout_s + self.settings.smtp_timeout_s + 5)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except SQLAlchemyError as e:  # an outage: try again next pass
                log.warning("notifications: database unavailable: %s", e)
            except Exception:  # a bug must not end the thread silently
                log.exception("notifications: a pass failed")
            self._wake.wait(self.settings.notify_poll_s)
            self._wake.clear()

    # -- one pass -----------------------------------------------------------------------------

    def poll(self) -> int:
        """Record new events, send what is due; the number of deliveries that succeeded."""
        self.collect()
        return self.send_due()

    def collect(self) -> int:
        """Record the events of new log rows and (when due) of the allocations."""
        now = self.clock()
        check = self._last_check is None or now - self._last_check >= self.settings.notify_check_s * 1000
        with self.factory.begin() as s:
            found = events.from_audit(s, now) + events.from_event_log(s, now)
            if check:
                found += events.from_allocations(s, now, self.expiring_days, self.catalogue)
            new = events.record(s, found, now)
        if check:
            self._last_check = now
        return new

    def check_allocations(self) -> int:
        """Check the allocations now (whatever the interval)."""
        self._last_check = None
        return self.collect()

    def send_due(self) -> int:
        now = self.clock()
        with self.factory() as s:
            due = list(
                s.scalars(
                    select(DeliveryRow.id)
                    .where(DeliveryRow.state == DeliveryState.PENDING, DeliveryRow.next_attempt_ms <= now)
                    .order_by(DeliveryRow.next_attempt_ms, DeliveryRow.id)
                    .limit(SEND_BATCH)
                )
            )
        delivered = 0
        for delivery_id in due:
            if self._stop.is_set():
                break
            delivered += self._deliver(delivery_id)
        return delivered

    def _claim(self, delivery_id: int) -> tuple[DeliveryRow, SubscriptionRow, NotificationEventRow] | None:
        """Take a due delivery for this try (None: another instance has it, or it is done)."""
        now = self.clock()
        lease = round((self.settings.webhook_timeout_s + self.settings.smtp_timeout_s) * 1000) + 60_000
        with self.factory.begin() as s:
            claimed = s.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.id == delivery_id,
                    DeliveryRow.state == DeliveryState.PENDING,
                    DeliveryRow.next_attempt_ms <= now,
                )
                .values(next_attempt_ms=now + lease)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return None
            d = s.get(DeliveryRow, delivery_id)
            assert d is not None
            sub = s.get(SubscriptionRow, d.subscription_id)
            ev = s.get(NotificationEventRow, d.event_id)
            assert ev is not None
            if sub is None:
                d.state = DeliveryState.DROPPED.value
                d.last_error = "subscription deleted"
                return None
            return d, sub, ev

    def _deliver(self, delivery_id: int) -> int:
        claim = self._claim(delivery_id)
        if claim is None:
            return 0
        d, sub, ev = claim
        message = {
            "delivery": d.id,
            "event": ev.kind,
            "key": ev.key,
            "at_ms": ev.at_ms,
            "tenant": ev.tenant_path,
            "summary": ev.payload.get("summary", ""),
            "data": {k: v for k, v in ev.payload.items() if k != "summary"},
        }
        if sub.channel == "webhook":
            try:
                check_webhook(sub.target, self.allow)
            except Refused as e:  # the allow-list shrank since the subscription was made
                outcome = channels.Outcome(False, None, str(e), 0)
            else:
                outcome = channels.post_webhook(sub.target, sub.secret, message, self.settings)
        else:
            outcome = channels.send_mail(sub.target, message, self.settings)
        self._record(d.id, outcome)
        return 1 if outcome.ok else 0

    def _record(self, delivery_id: int, outcome: channels.Outcome) -> None:
        now = self.clock()
        with self.factory.begin() as s:
            d = s.get(DeliveryRow, delivery_id)
            assert d is not None
            d.attempts += 1
            s.add(
                DeliveryAttemptRow(
                    delivery_id=d.id,
                    at_ms=now,
                    ok=outcome.ok,
                    status=outcome.status,
                    error=outcome.error[:1024],
                    duration_ms=outcome.duration_ms,
                )
            )
            if outcome.ok:
                d.state, d.delivered_ms, d.last_error = DeliveryState.DELIVERED.value, now, ""
                return
            d.last_error = outcome.error[:1024]
            if d.attempts >= self.settings.notify_max_attempts:
                d.state = DeliveryState.FAILED.value
                log.warning("notification delivery %s failed for good: %s", d.id, outcome.error)
                return
            d.next_attempt_ms = now + self.backoff_ms(d.attempts)

    def backoff_ms(self, attempts: int) -> int:
        """The wait after the ``attempts``-th failed try."""
        wait = self.settings.notify_backoff_s * 2 ** (attempts - 1)
        return int(min(wait, self.settings.notify_max_backoff_s) * 1000)
