"""The event log's JSON form of the core's events and decisions, and back, without loss.

This module owns ``encode`` (an event or decision as the JSON ``payload`` of an
``event_log`` row) and ``decode`` (the row's ``type`` and ``payload`` back to the very
object). ``decode(type, encode(x)) == x`` for every event and decision type, which is what
lets a test replay a live event log through a fresh ``Scheduler`` and compare decisions
(``docs/adr/0001-core-and-twin.md``: the same events give the same decisions, in the twin
and live).

The payload is the dataclass's fields, as JSON spells them: tuples as lists, ``Level`` as its
integer, ``Reason`` as its string, and a ``JobSubmitted`` is its spec's fields (flat), plus
``settled`` when it carries milestones of ended dependencies. Rows written before this module
existed have the same shape.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from gpupool.core.advance_reservations import AdvanceReservation
from gpupool.core.array_spec import ArraySpec
from gpupool.core.decisions import Decision, Explain, Preempt, Reason, Reject, Reserve, Start, Stop
from gpupool.core.dependencies import Dependency, DependencyKind, Milestone
from gpupool.core.events import (
    Event,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeDown,
    NodeDrained,
    NodeUp,
    ReservationCreated,
    ReservationDeleted,
    Tick,
)
from gpupool.core.fleet import Level
from gpupool.core.job import JobSpec, TaskGroup

EVENT_TYPES: dict[str, type[Any]] = {
    t.__name__: t
    for t in (
        JobSubmitted,
        JobCancelled,
        JobFinished,
        NodeDown,
        NodeDrained,
        NodeUp,
        Tick,
        ReservationCreated,
        ReservationDeleted,
    )
}
DECISION_TYPES: dict[str, type[Any]] = {
    t.__name__: t for t in (Start, Preempt, Stop, Reserve, Explain, Reject)
}


def _json(value: Any) -> Any:
    # dataclasses.asdict deep-copies every leaf: too slow for a thousand events a second
    if isinstance(value, str | int | float | bool) or value is None:
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return {name: _json(getattr(value, name)) for name in _field_names(type(value))}
    return value


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def encode(obj: Event | Decision) -> dict[str, Any]:
    """The JSON payload of an event or decision (a ``JobSubmitted`` is its spec's fields)."""
    target: Any = obj.spec if isinstance(obj, JobSubmitted) else obj
    data: dict[str, Any] = _json(target)
    if isinstance(obj, JobSubmitted) and obj.settled:
        data["settled"] = _json(obj.settled)
    return data


def about(obj: Event | Decision) -> str | None:
    """The job an event or decision is about (the ``job_id`` column), if any."""
    if isinstance(obj, JobSubmitted):
        return obj.spec.id
    job: str | None = getattr(obj, "job_id", None)
    return job


def _spec(p: dict[str, Any]) -> JobSpec:
    fields = dict(p)
    fields["groups"] = tuple(TaskGroup(int(g["workers"]), int(g["gpus_per_worker"])) for g in p["groups"])
    fields["topology"] = Level(int(p["topology"]))
    for name in ("models", "stacks", "clusters"):
        fields[name] = tuple(p[name])
    fields["dependencies"] = tuple(
        Dependency(DependencyKind(d["kind"]), str(d["job_id"])) for d in p.get("dependencies", ())
    )
    array = p.get("array")
    fields["array"] = None if array is None else ArraySpec(tuple(array["indices"]), int(array["limit"]))
    return JobSpec(**fields)


def decode(type_name: str, payload: dict[str, Any]) -> Event | Decision:
    """The event or decision an ``event_log`` row holds. KeyError for an unknown type."""
    if type_name == "JobSubmitted":
        payload = dict(payload)
        settled = tuple((str(j), Milestone(m)) for j, m in payload.pop("settled", ()))
        return JobSubmitted(_spec(payload), settled)
    if type_name == "ReservationCreated":
        r = dict(payload["reservation"])
        r["tenants"], r["nodes"] = tuple(r["tenants"]), tuple(r["nodes"])
        return ReservationCreated(AdvanceReservation(**r))
    if type_name == "Start":
        placement = tuple((str(n), tuple(int(i) for i in ids)) for n, ids in payload["placement"])
        return Start(**{**payload, "placement": placement})
    cls = EVENT_TYPES.get(type_name) or DECISION_TYPES[type_name]
    fields = dict(payload)
    if "reason" in fields:
        fields["reason"] = Reason(fields["reason"])
    made: Event | Decision = cls(**fields)
    return made
