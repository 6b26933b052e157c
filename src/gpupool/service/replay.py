"""The live event log, read back as the core's calls, and fed to a fresh core again.

This module owns ``logged_cycles`` (the ``event_log`` rows, one ``LoggedCycle`` per loop cycle:
the time, the events given to ``Scheduler.handle`` and the decisions it returned) and
``replay`` (the same calls on another ``Scheduler``, returning its decisions). ADR 0001
(``docs/adr/0001-core-and-twin.md``) asks that the same events give the same decisions in
the twin and live; a test replays a live log through a core built from the same fleet and
tenancy and compares the two streams.

Rows of the ``executor`` kind are what executors reported; the loop already turned them into
the events logged beside them, so they are not fed again. Rows from before the ``cycle``
column existed cannot be grouped into calls and are skipped. A log that spans a restart is
replayed from the restart on only if the caller restores the core as ``rebuild`` did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.decisions import Decision
from gpupool.core.events import Event
from gpupool.core.scheduler import Scheduler
from gpupool.service.db import EventLogRow
from gpupool.service.event_codec import DECISION_TYPES, decode


@dataclass(slots=True)
class LoggedCycle:
    """One ``Scheduler.handle(events, at_ms)`` call as the loop logged it."""

    cycle: int
    at_ms: int
    events: list[Event] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


def logged_cycles(s: Session, after_id: int = 0) -> list[LoggedCycle]:
    """The logged calls in order (rows with ids above ``after_id``)."""
    q = (
        select(EventLogRow.cycle, EventLogRow.at_ms, EventLogRow.kind, EventLogRow.type, EventLogRow.payload)
        .where(EventLogRow.id > after_id, EventLogRow.cycle.is_not(None))
        .order_by(EventLogRow.id)
    )
    out: list[LoggedCycle] = []
    for cycle, at_ms, kind, type_name, payload in s.execute(q):
        if kind not in ("event", "decision"):
            continue
        if not out or out[-1].cycle != cycle:
            out.append(LoggedCycle(int(cycle), int(at_ms)))
        obj = decode(type_name, payload)
        if kind == "decision" and type_name in DECISION_TYPES:
            out[-1].decisions.append(cast(Decision, obj))
        elif kind == "event" and type_name not in DECISION_TYPES:
            out[-1].events.append(cast(Event, obj))
    return out


def replay(sched: Scheduler, cycles: Iterable[LoggedCycle]) -> list[list[Decision]]:
    """Feed each logged call to ``sched``; its decisions, call by call."""
    return [sched.handle(c.events, c.at_ms) for c in cycles]
