"""Calls for applications: their states, and what a call has left to award.

A call is written as a ``draft``, ``open`` for applications, ``closed`` (its submitted
applications go under review) and ``decided`` (every application still under review is
declined). It only moves forward, one step at a time. While open, applications may be
submitted only between its open and close dates (the clock decides; the state alone does not).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service.db import AwardRow, CallRow
from gpupool.service.programme.refusal import Refusal


class CallState(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    DECIDED = "decided"


#: the one move out of each state
CALL_MOVES: dict[CallState, tuple[CallState, ...]] = {
    CallState.DRAFT: (CallState.OPEN,),
    CallState.OPEN: (CallState.CLOSED,),
    CallState.CLOSED: (CallState.DECIDED,),
    CallState.DECIDED: (),
}


def move_call(call: CallRow, to: CallState) -> CallState:
    """Move ``call`` to ``to`` (409 naming both states if the table forbids it); the old state."""
    before = CallState(call.state)
    if to not in CALL_MOVES[before]:
        raise Refusal(409, f"a call cannot go from {before} to {to}", "bad-transition")
    call.state = to.value
    return before


def accepting(call: CallRow, now: int) -> bool:
    """Whether an application may be submitted to ``call`` at ``now``."""
    return call.state == CallState.OPEN and call.opens_ms <= now < call.closes_ms


def awarded(s: Session, call_id: int) -> tuple[dict[str, float], dict[str, int]]:
    """GPU-hours and guaranteed accelerators the call's awards have granted, per model key."""
    hours: dict[str, float] = {}
    guaranteed: dict[str, int] = {}
    for a in s.scalars(select(AwardRow).where(AwardRow.call_id == call_id)):
        for m, h in a.gpu_hours.items():
            hours[m] = hours.get(m, 0.0) + float(h)
        for m, g in a.guaranteed.items():
            guaranteed[m] = guaranteed.get(m, 0) + int(g)
    return hours, guaranteed


def left(s: Session, call: CallRow) -> tuple[dict[str, float], dict[str, int]]:
    """GPU-hours and guaranteed accelerators the call still has to award, per model key."""
    hours, guaranteed = awarded(s, call.id)
    return (
        {m: float(h) - hours.get(m, 0.0) for m, h in call.gpu_hours.items()},
        {m: int(g) - guaranteed.get(m, 0) for m, g in call.guaranteed.items()},
    )
