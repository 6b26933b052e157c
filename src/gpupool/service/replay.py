"""The live event log, read back as the core's calls, and fed to a fresh core again.

This module owns ``logged_cycles`` (the ``event_log`` rows, one ``LoggedCycle`` per loop cycle:
the time, the restore point the core was rebuilt from before it if any, the events given to
``Scheduler.handle`` and the decisions it returned), ``replay`` (the same calls on another
``Scheduler``, returning its decisions) and ``check`` (a replay from a time on that compares
decisions and reports the first divergence). ADR 0001 (``docs/adr/0001-core-and-twin.md``)
asks that the same events give the same decisions in the twin and live.

Restarts (ADR 0017): a rebuild (a restart, a tenancy change, a failed cycle) replaces the live
core by one restored from the database, whose allocation ids, re-derived usage and tenancy
are not what the events alone give; a replay that went on with its own core diverged there.
The loop logs each rebuild's restore point (``gpupool.service.restore_point``, kind
``restore``) with the next cycle, and the replay rebuilds from it at the same place.

Rows of the ``executor`` kind are what executors reported; the loop already turned them into
the events logged beside them, so they are not fed again. Rows from before the ``cycle``
column existed cannot be grouped into calls and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.decisions import Decision
from gpupool.core.events import Event
from gpupool.core.fleet import Fleet
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.service.db import EventLogRow
from gpupool.service.event_codec import DECISION_TYPES, decode, encode
from gpupool.service.restore_point import RESTORE_KIND, RestorePoint, restore

#: one event-log row as a replay reads it: (cycle, at_ms, kind, type, payload)
LogRow = tuple[int | None, int, str, str, dict[str, Any]]


@dataclass(slots=True)
class LoggedCycle:
    """One ``Scheduler.handle(events, at_ms)`` call as the loop logged it."""

    cycle: int
    at_ms: int
    events: list[Event] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    #: the core was rebuilt from this point just before this call
    restore: RestorePoint | None = None


def cycles_of(rows: Iterable[LogRow]) -> list[LoggedCycle]:
    """Group log rows (in id order) into calls."""
    out: list[LoggedCycle] = []
    for cycle, at_ms, kind, type_name, payload in rows:
        if cycle is None or kind not in ("event", "decision", RESTORE_KIND):
            continue
        if not out or out[-1].cycle != cycle:
            out.append(LoggedCycle(int(cycle), int(at_ms)))
        if kind == RESTORE_KIND:
            out[-1].restore = RestorePoint.from_doc(payload)
            continue
        obj = decode(type_name, payload)
        if kind == "decision" and type_name in DECISION_TYPES:
            out[-1].decisions.append(cast(Decision, obj))
        elif kind == "event" and type_name not in DECISION_TYPES:
            out[-1].events.append(cast(Event, obj))
    return out


def log_rows(s: Session, after_id: int = 0, since_ms: int | None = None) -> list[LogRow]:
    """The replayable rows with ids above ``after_id``; with ``since_ms``, from the last restore
    point at or before that time on (a replay needs the state it starts from)."""
    q = select(
        EventLogRow.cycle, EventLogRow.at_ms, EventLogRow.kind, EventLogRow.type, EventLogRow.payload
    ).where(EventLogRow.id > after_id, EventLogRow.cycle.is_not(None), EventLogRow.kind != "executor")
    if since_ms is not None:
        start = s.scalar(
            select(EventLogRow.id)
            .where(EventLogRow.kind == RESTORE_KIND, EventLogRow.at_ms <= since_ms, EventLogRow.id > after_id)
            .order_by(EventLogRow.id.desc())
            .limit(1)
        )
        if start is None:  # no point before: from the first one after, or the log's start
            start = s.scalar(
                select(EventLogRow.id)
                .where(
                    EventLogRow.kind == RESTORE_KIND, EventLogRow.at_ms > since_ms, EventLogRow.id > after_id
                )
                .order_by(EventLogRow.id)
                .limit(1)
            )
        if start is not None:
            q = q.where(EventLogRow.id >= start)
    return [(c, int(t), k, ty, p) for c, t, k, ty, p in s.execute(q.order_by(EventLogRow.id))]


def logged_cycles(s: Session, after_id: int = 0) -> list[LoggedCycle]:
    """The logged calls in order (rows with ids above ``after_id``)."""
    return cycles_of(log_rows(s, after_id))


def replay(sched: Scheduler, cycles: Iterable[LoggedCycle]) -> list[list[Decision]]:
    """Feed each logged call to ``sched`` (rebuilt, with its fleet and config, where the log
    holds a restore point); its decisions, call by call."""
    out: list[list[Decision]] = []
    for c in cycles:
        if c.restore is not None:
            sched = restore(c.restore, sched.fleet, sched.config).scheduler
        out.append(sched.handle(c.events, c.at_ms))
    return out


@dataclass(slots=True)
class Divergence:
    """The first call whose replayed decisions differ from the logged ones."""

    cycle: int
    at_ms: int
    #: index of the first differing decision in the call
    index: int
    logged: list[dict[str, Any]]
    replayed: list[dict[str, Any]]


@dataclass(slots=True)
class ReplayCheck:
    """What a replay compared, and the first divergence (None: the decisions match)."""

    cycles: int = 0
    events: int = 0
    decisions: int = 0
    #: restore points crossed (the first one, where the replay starts, included)
    restores: int = 0
    first_cycle: int | None = None
    last_cycle: int | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    divergence: Divergence | None = None

    @property
    def matches(self) -> bool:
        return self.divergence is None and self.cycles > 0

    def to_doc(self) -> dict[str, Any]:
        d = self.divergence
        return {
            "matches": self.matches,
            "cycles": self.cycles,
            "events": self.events,
            "decisions": self.decisions,
            "restores": self.restores,
            "first_cycle": self.first_cycle,
            "last_cycle": self.last_cycle,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "divergence": None
            if d is None
            else {
                "cycle": d.cycle,
                "at_ms": d.at_ms,
                "index": d.index,
                "logged": d.logged,
                "replayed": d.replayed,
            },
        }


def _typed(ds: Sequence[Decision]) -> list[dict[str, Any]]:
    return [{"type": type(x).__name__, **encode(x)} for x in ds]


def check(
    cycles: Sequence[LoggedCycle], fleet: Fleet, config: SchedulerConfig, start: Scheduler | None = None
) -> ReplayCheck:
    """Replay ``cycles`` and compare. The replay starts at the first restore point (calls
    before it are skipped), or with ``start`` (a core as it was before the first call, e.g. a
    bare one for a log that began on an empty service)."""
    report = ReplayCheck()
    sched = start
    for c in cycles:
        if c.restore is not None:
            sched = restore(c.restore, fleet, config).scheduler
            report.restores += 1
        if sched is None:
            continue
        got = sched.handle(c.events, c.at_ms)
        report.cycles += 1
        report.events += len(c.events)
        report.decisions += len(c.decisions)
        report.first_cycle = c.cycle if report.first_cycle is None else report.first_cycle
        report.from_ms = c.at_ms if report.from_ms is None else report.from_ms
        report.last_cycle, report.to_ms = c.cycle, c.at_ms
        if got != c.decisions:
            i = next((k for k, (a, b) in enumerate(zip(got, c.decisions, strict=False)) if a != b), None)
            i = min(len(got), len(c.decisions)) if i is None else i
            report.divergence = Divergence(
                c.cycle, c.at_ms, i, _typed(c.decisions[i : i + 5]), _typed(got[i : i + 5])
            )
            break
    return report
