"""``/v1/reservations``: advance reservations for a workshop, a training run or maintenance.

This module owns the reservation routes (ADR 0020). A pool admin creates and deletes them
(audited); viewers and pool admins read all of them, anyone else those that name a tenant
they can see (their project or a tenant above it). A reservation is whole nodes, named or
``cluster`` + ``model`` + ``count``, for ``[start_ms, end_ms)``, for ``tenants`` or, when none
is named, for maintenance. Bad input is 422 naming the field; one that overlapping
reservations leave no room for is 409. A write asks the loop to rebuild the core, which
restores the live reservations from the table (``gpupool.service.restore_point``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.advance_reservations import AdvanceReservation, ReservationConflict
from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.auth import Caller
from gpupool.service.db import ReservationRow, TenantRow
from gpupool.service.request_body import RequestBody
from gpupool.service.reservation_rows import check, core_id

router = APIRouter(prefix="/v1/reservations", tags=["reservations"])
MAX_MS = 2**62
Name = Annotated[str, Field(min_length=1, max_length=255)]
#: the request's field for each field the core names
_FIELDS = {"end": "end_ms", "nodes": "nodes", "cluster": "cluster", "model": "model", "count": "count"}


class ReservationIn(RequestBody):
    start_ms: Annotated[int, Field(ge=0, le=MAX_MS)]
    end_ms: Annotated[int, Field(ge=0, le=MAX_MS)]
    cluster: Annotated[str, Field(max_length=64)] = ""
    model: Annotated[str, Field(max_length=32)] = ""
    count: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    nodes: Annotated[list[Name], Field(default_factory=list, max_length=10_000)]
    tenants: Annotated[
        list[Name],
        Field(default_factory=list, max_length=1_000, description="Tenant paths allowed; none: maintenance"),
    ]
    note: Annotated[str, Field(max_length=1024)] = ""

    @model_validator(mode="after")
    def _shape(self) -> ReservationIn:
        if self.end_ms <= self.start_ms:
            raise ValueError("end_ms must be after start_ms")
        if self.nodes and (self.cluster or self.model or self.count):
            raise ValueError("name either nodes or cluster, model and count, not both")
        if not self.nodes and not (self.cluster and self.model and self.count):
            raise ValueError("name nodes, or cluster, model and count")
        return self


class ReservationOut(BaseModel):
    id: int
    start_ms: int
    end_ms: int
    cluster: str
    model: str
    count: int
    nodes: list[str]
    tenants: list[str]
    purpose: Literal["tenants", "maintenance"]
    state: Literal["scheduled", "active", "ended"]
    note: str
    created_by: str


def _out(row: ReservationRow, now: int) -> ReservationOut:
    state = "ended" if now >= row.end_ms else "active" if now >= row.start_ms else "scheduled"
    return ReservationOut(
        id=row.id,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        cluster=row.cluster,
        model=row.model,
        count=row.count,
        nodes=list(row.nodes),
        tenants=list(row.tenants),
        purpose="tenants" if row.tenants else "maintenance",
        state=state,  # type: ignore[arg-type]
        note=row.note,
        created_by=row.created_by,
    )


def _visible(s: Session, caller: Caller) -> set[str] | None:
    """Tenant paths the caller can see; None: all (viewers and pool admins)."""
    if caller.sees_all:
        return None
    return {path for tid, path in s.execute(select(TenantRow.id, TenantRow.path)) if caller.can_see(tid)}


def _sees(row: ReservationRow, paths: set[str] | None) -> bool:
    return paths is None or any(t in paths for t in row.tenants)


@router.get("", response_model=list[ReservationOut], responses=responses(401), summary="Reservations")
def list_reservations(caller: CallerDep, rt: RuntimeDep, s: SessionDep) -> list[ReservationOut]:
    paths, now = _visible(s, caller), rt.clock()
    rows = s.scalars(select(ReservationRow).order_by(ReservationRow.id))
    return [_out(r, now) for r in rows if _sees(r, paths)]


@router.get(
    "/{reservation_id}", response_model=ReservationOut, responses=responses(401, 404), summary="A reservation"
)
def get_reservation(
    reservation_id: Annotated[int, Path(ge=1, le=2**31 - 1)], caller: CallerDep, rt: RuntimeDep, s: SessionDep
) -> ReservationOut:
    row = s.get(ReservationRow, reservation_id)
    if row is None or not _sees(row, _visible(s, caller)):
        raise not_found(f"reservation {reservation_id}")
    return _out(row, rt.clock())


@router.post(
    "",
    status_code=201,
    response_model=ReservationOut,
    responses=responses(401, 403, 409, 422),
    summary="Reserve accelerators for a window",
)
def create_reservation(body: ReservationIn, caller: CallerDep, rt: RuntimeDep) -> ReservationOut:
    if not caller.is_pool_admin:
        raise ApiProblem(403, "only a pool admin may reserve accelerators", kind="forbidden")
    now = rt.clock()
    if body.end_ms <= now:
        raise invalid("end_ms", "the window has already ended")
    with rt.factory.begin() as s:
        known = set(s.scalars(select(TenantRow.path)))
        for t in body.tenants:
            if t not in known:
                raise invalid("tenants", f"unknown tenant {t!r}")
        row = ReservationRow(
            start_ms=body.start_ms,
            end_ms=body.end_ms,
            cluster=body.cluster,
            model=body.model,
            count=body.count,
            nodes=sorted(set(body.nodes)),
            tenants=sorted(set(body.tenants)),
            note=body.note,
            created_by=caller.name,
            created_ms=now,
        )
        s.add(row)
        s.flush()
        new = AdvanceReservation(
            core_id(row.id),
            row.start_ms,
            row.end_ms,
            cluster=row.cluster,
            model=row.model,
            count=row.count,
            nodes=tuple(row.nodes),
        )
        try:
            check(s, rt.fleet, new, now)
        except ReservationConflict as e:
            field = _FIELDS.get(e.field, e.field)
            if e.overlap:
                raise ApiProblem(409, f"{field}: {e}", kind="conflict", errors=[(field, str(e))]) from None
            raise invalid(field, str(e)) from None
        store.audit(s, caller.name, "reservation.create", f"reservation/{row.id}", body.model_dump(), now)
        out = _out(row, now)
    rt.request_rebuild()
    return out


@router.delete(
    "/{reservation_id}", status_code=204, responses=responses(401, 403, 404), summary="Delete a reservation"
)
def delete_reservation(
    reservation_id: Annotated[int, Path(ge=1, le=2**31 - 1)], caller: CallerDep, rt: RuntimeDep
) -> Response:
    now = rt.clock()
    with rt.factory.begin() as s:
        row = s.get(ReservationRow, reservation_id)
        if row is None or not _sees(row, _visible(s, caller)):
            raise not_found(f"reservation {reservation_id}")
        if not caller.is_pool_admin:
            raise ApiProblem(403, "only a pool admin may delete a reservation", kind="forbidden")
        what = {"tenants": row.tenants, "start_ms": row.start_ms, "end_ms": row.end_ms}
        store.audit(s, caller.name, "reservation.delete", f"reservation/{row.id}", what, now)
        s.delete(row)
    rt.request_rebuild()
    return Response(status_code=204)
