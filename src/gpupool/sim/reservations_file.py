"""Advance reservations in the digital twin: a CSV file of maintenance windows and workshops.

This module owns the twin's reservations file and the events it becomes. A row is
``id,start_s,end_s,cluster,model,count,nodes,tenants``: the window in seconds after the first
submission, either ``cluster``/``model``/``count`` or ``nodes`` (names separated by ``;``),
and ``tenants`` (paths separated by ``;``; empty: maintenance). A ``#`` line is a comment.
Bad rows raise ``ReservationsFileError`` naming the file, line and field.

``reservation_events`` gives the simulator (``gpupool.sim.simulator``) each reservation as a
``ReservationCreated`` at the start of the run (so the planner sees it in advance, as the
live service does once a pool admin made it) and a ``Tick`` at each window's edge (the core
decides only at events; a window opening or closing changes what may start).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable
from pathlib import Path

from gpupool.core.advance_reservations import AdvanceReservation, AdvanceReservations, ReservationConflict
from gpupool.core.events import Event, ReservationCreated, Tick
from gpupool.core.fleet import Fleet
from gpupool.core.tenancy import Tenancy

COLUMNS = ("id", "start_s", "end_s", "cluster", "model", "count", "nodes", "tenants")


class ReservationsFileError(ValueError):
    """A reservations file that cannot be read; the message names file, line and field."""


def read_reservations(path: Path) -> list[AdvanceReservation]:
    """The reservations of a CSV file (see the module docstring); times in ms after the start."""
    out: list[AdvanceReservation] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReservationsFileError(f"{path}: cannot read: {e.strerror}") from None
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.startswith("#")]
    if not lines:
        return out
    header = next(csv.reader([lines[0][1]]))
    if tuple(h.strip() for h in header) != COLUMNS:
        raise ReservationsFileError(f"{path}:{lines[0][0]}: the header must be {','.join(COLUMNS)}")
    seen: set[str] = set()
    for n, line in lines[1:]:
        row = dict(zip(COLUMNS, (c.strip() for c in next(csv.reader([line]))), strict=False))

        def bad(field: str, why: str, n: int = n) -> ReservationsFileError:
            return ReservationsFileError(f"{path}:{n}: {field}: {why}")

        nums: dict[str, int] = {}
        for field in ("start_s", "end_s", "count"):
            raw = row.get(field) or ("0" if field == "count" else "")
            try:
                nums[field] = int(float(raw) * (1000 if field != "count" else 1))
            except ValueError:
                raise bad(field, f"not a number: {raw!r}") from None
            if nums[field] < 0:
                raise bad(field, "must be >= 0")
        rid = row.get("id") or f"line{n}"
        if rid in seen:
            raise bad("id", f"{rid!r} appears twice")
        seen.add(rid)
        if nums["end_s"] <= nums["start_s"]:
            raise bad("end_s", "the window must end after it starts")
        nodes = tuple(x.strip() for x in (row.get("nodes") or "").split(";") if x.strip())
        if not nodes and not (row.get("cluster") and row.get("model") and nums["count"]):
            raise bad("nodes", "name nodes, or cluster, model and count")
        tenants = tuple(x.strip() for x in (row.get("tenants") or "").split(";") if x.strip())
        out.append(
            AdvanceReservation(
                rid,
                nums["start_s"],
                nums["end_s"],
                tenants=tenants,
                cluster="" if nodes else row.get("cluster") or "",
                model="" if nodes else row.get("model") or "",
                count=0 if nodes else nums["count"],
                nodes=nodes,
            )
        )
    return out


def reservation_events(reservations: Iterable[AdvanceReservation], start_ms: int) -> list[tuple[int, Event]]:
    """(time, event) for the simulator: each reservation made at ``start_ms`` (its window
    shifted by it), and a ``Tick`` at each window's edge."""
    out: list[tuple[int, Event]] = []
    for r in reservations:
        moved = dataclasses.replace(r, start_ms=start_ms + r.start_ms, end_ms=start_ms + r.end_ms)
        out.append((start_ms, ReservationCreated(moved)))
        out.extend([(moved.start_ms, Tick()), (moved.end_ms, Tick())])
    return out


def load_reservations(path: Path, fleet: Fleet, tenancy: Tenancy) -> tuple[AdvanceReservation, ...]:
    """``read_reservations``, each checked against the fleet and tenants as the core will
    hold it (unknown cluster, model, node or tenant, a count beyond the fleet, an overlap
    without room): ``ReservationsFileError`` naming the file, the reservation and the field."""
    got = read_reservations(path)
    held = AdvanceReservations(fleet, tenancy)
    for r in got:
        try:
            held.add(r)
        except ReservationConflict as e:
            raise ReservationsFileError(f"{path}: reservation {r.id}: {e.field}: {e}") from None
    return tuple(got)
