"""Advance reservations as stored: rows to the core's reservations, and the check before a write.

This module owns the mapping between ``ReservationRow`` (migration 0015) and the core's
``AdvanceReservation`` (``gpupool.core.advance_reservations``, ADR 0020): the core id is
``r<id>``; ``live_rows`` are the rows whose window has not ended (what a rebuild restores);
``check`` resolves a new reservation against the live ones on the fleet exactly as the core
will (rows in id order, then the new one), so a write the core could not hold is refused
before it is stored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.advance_reservations import AdvanceReservation, AdvanceReservations
from gpupool.core.fleet import Fleet
from gpupool.core.tenancy import Tenancy
from gpupool.service.db import ReservationRow


def core_id(row_id: int) -> str:
    return f"r{row_id}"


def to_core(row: ReservationRow) -> AdvanceReservation:
    return AdvanceReservation(
        core_id(row.id),
        row.start_ms,
        row.end_ms,
        tenants=tuple(row.tenants),
        cluster=row.cluster,
        model=row.model,
        count=row.count,
        nodes=tuple(row.nodes),
    )


def doc(r: AdvanceReservation) -> dict[str, Any]:
    """A reservation in a restore point (``gpupool.service.restore_point``)."""
    return {
        "id": r.id,
        "start_ms": r.start_ms,
        "end_ms": r.end_ms,
        "tenants": list(r.tenants),
        "cluster": r.cluster,
        "model": r.model,
        "count": r.count,
        "nodes": list(r.nodes),
    }


def from_doc(d: dict[str, Any]) -> AdvanceReservation:
    return AdvanceReservation(
        str(d["id"]),
        int(d["start_ms"]),
        int(d["end_ms"]),
        tenants=tuple(str(t) for t in d["tenants"]),
        cluster=str(d["cluster"]),
        model=str(d["model"]),
        count=int(d["count"]),
        nodes=tuple(str(n) for n in d["nodes"]),
    )


def live_rows(s: Session, now: int) -> list[ReservationRow]:
    """Reservations whose window has not ended, in id order (the order the core adds them)."""
    q = select(ReservationRow).where(ReservationRow.end_ms > now).order_by(ReservationRow.id)
    return list(s.scalars(q))


def check(s: Session, fleet: Fleet, new: AdvanceReservation, now: int) -> list[str]:
    """The nodes ``new`` would hold beside the live reservations; ``ReservationConflict``
    (naming the field, ``overlap`` when others hold what it needs) if it cannot be held.
    Tenants are checked by the caller against the tenant rows (the core is not asked)."""
    held = AdvanceReservations(fleet, Tenancy("check", []))
    for row in live_rows(s, now):
        if core_id(row.id) == new.id:
            continue  # the new row itself, already flushed for its id
        try:
            held.add(dataclasses.replace(to_core(row), tenants=()))
        except ValueError:
            continue  # a row the fleet no longer holds (a node removed): the core skips it too
    held.add(dataclasses.replace(new, tenants=()))
    return held.nodes_of(new.id)
