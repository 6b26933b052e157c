"""Awards: granting an application in full or in part, within what its call has left.

An award names GPU-hours (and guaranteed accelerators) per model key of the call. It may not
exceed what the application asked, nor what the call has left per model (refused, naming
model and amounts). It becomes one active allocation per model for the application's period,
carrying the guaranteed accelerators, so the existing budget check charges jobs against it
and the clock ends it. An application granted all it asked is ``awarded``, otherwise
``partly_awarded``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpupool.service.db import AllocationRow, ApplicationRow, AwardRow, CallRow
from gpupool.service.programme import calls
from gpupool.service.programme.applications import ApplicationState, move
from gpupool.service.programme.refusal import Refusal

#: GPU-hours are floats: a remainder this small is "nothing left", not a refusal
EPS = 1e-6


def award(
    s: Session,
    call: CallRow,
    app: ApplicationRow,
    gpu_hours: dict[str, float],
    guaranteed: dict[str, int],
    note: str,
    actor: str,
    now: int,
) -> AwardRow:
    """Grant ``app`` these amounts: the award row and its allocations (added to ``s``)."""
    if ApplicationState(app.state) != ApplicationState.UNDER_REVIEW:
        raise Refusal(
            409,
            f"application {app.id} cannot go from {app.state} to awarded (it must be under_review)",
            "bad-transition",
        )
    hours = {m: float(h) for m, h in gpu_hours.items() if h > 0}
    guards = {m: int(g) for m, g in guaranteed.items() if g > 0}
    if not hours:
        raise Refusal(
            422, "an award grants some GPU-hours (decline the application instead)", "invalid-request"
        )
    for m, h in hours.items():
        asked = float(app.gpu_hours.get(m, 0.0))
        if h > asked + EPS:
            raise Refusal(
                422,
                f"{m}: {h:,.1f} GPU-hours awarded but the application asked {asked:,.1f}",
                "invalid-request",
            )
    for m, g in guards.items():
        asked_g = int(app.guaranteed.get(m, 0))
        if g > asked_g:
            raise Refusal(
                422,
                f"{m}: {g} guaranteed accelerators awarded but the application asked {asked_g}",
                "invalid-request",
            )
        if m not in hours:
            raise Refusal(422, f"{m}: a guarantee comes with GPU-hours of the same model", "invalid-request")
    hours_left, guaranteed_left = calls.left(s, call)
    over = [
        f"{m}: {h:,.1f} GPU-hours asked, {max(hours_left.get(m, 0.0), 0.0):,.1f} left"
        for m, h in hours.items()
        if h > hours_left.get(m, 0.0) + EPS
    ] + [
        f"{m}: {g} guaranteed accelerators asked, {max(guaranteed_left.get(m, 0), 0)} left"
        for m, g in guards.items()
        if g > guaranteed_left.get(m, 0)
    ]
    if over:
        raise Refusal(409, f"call {call.id} has not that much left: {'; '.join(over)}", "over-award")
    full = all(hours.get(m, 0.0) + EPS >= float(h) for m, h in app.gpu_hours.items()) and all(
        guards.get(m, 0) >= int(g) for m, g in app.guaranteed.items()
    )
    move(app, ApplicationState.AWARDED if full else ApplicationState.PARTLY_AWARDED)
    app.decided_ms = now
    renews = f", renewing allocation {app.renews_allocation_id}" if app.renews_allocation_id else ""
    rows = [
        AllocationRow(
            project_id=app.project_id,
            model=m,
            gpu_hours=h,
            period_start_ms=app.period_start_ms,
            period_end_ms=app.period_end_ms,
            guaranteed=guards.get(m, 0),
            over_budget="preemptible",
            state="active",
            note=f"award of application {app.id} to call {call.id}{renews}",
            created_ms=now,
            unit=call.unit,  # as the call counts its GPU-hours (ADR 0018)
        )
        for m, h in sorted(hours.items())
    ]
    s.add_all(rows)
    s.flush()
    row = AwardRow(
        application_id=app.id,
        call_id=call.id,
        gpu_hours=hours,
        guaranteed=guards,
        allocation_ids=[a.id for a in rows],
        note=note,
        decided_by=actor,
        at_ms=now,
    )
    s.add(row)
    s.flush()
    return row
