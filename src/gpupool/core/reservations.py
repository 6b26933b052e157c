"""EASY reservations: when a blocked job could start, and holding that start for it.

This module owns, for an EASY-backfill cycle of one ``Scheduler``:

* a reservation (``Reservation``): the job at the head of a pool that could not start, the
  time it is expected to (its shadow time) and the accelerators spare then, which later
  jobs may use without delaying it;
* the shadow time of a pool (``shadow_time``): when running jobs' walltimes free enough of it;
* giving the first blocked job of its pools a reservation at the soonest shadow time among
  them and telling it so (``reserve``).

The cycle (``Scheduler._try_start``) reads the reservations to decide what may backfill.
Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpupool.core.decisions import Reason, Reserve
from gpupool.core.job_state import JobState

if TYPE_CHECKING:
    from gpupool.core.scheduler import Scheduler, _Cycle

INF = float("inf")


@dataclass(slots=True)
class Reservation:
    """A blocked job's reservation of one pool in a cycle: its shadow time and the spare then."""

    job: JobState
    shadow: float
    extra: int


def shadow_time(sched: Scheduler, pool: int, need: int, now: int) -> tuple[float, int]:
    """When ``need`` accelerators of a pool will be free from walltimes; and the spare then."""
    p = sched.capacity.pools[pool]
    free = p.free
    if free >= need:
        return float(now), free - need
    for end, seq in sched._running_by_pool[pool]:
        free += sched._by_seq[seq].gpus
        if free >= need:
            return float(max(end, now)), free - need
    return INF, 0


def reserve(sched: Scheduler, j: JobState, avail: Sequence[int], cyc: _Cycle) -> bool:
    """EASY: the first blocked job of a pool gets a reservation at its shadow time.

    True when ``j`` got one (and was told so); False when it must say why it waits.
    """
    if any(cyc.reservations.get(p) is not None for p in avail):
        return False  # a job ahead holds the reservation: this one is a backfill candidate
    best: tuple[float, int, int] | None = None
    for pi in avail:
        shadow, extra = shadow_time(sched, pi, j.gpus, cyc.now)
        if best is None or shadow < best[0]:
            best = (shadow, pi, extra)
    if best is None or best[0] == INF:
        return False
    shadow, pi, extra = best
    cyc.reservations[pi] = Reservation(j, shadow, extra)
    sched._version += 1
    start = int(shadow)
    p = sched.capacity.pools[pi]
    if j.reserved_start != start:
        j.reserved_start = start
        cyc.out.append(Reserve(j.spec.id, sched.fleet.clusters[p.cluster].name, p.model, start))
    sched._set_reason(j, Reason.RESERVED, f"expected start at {start} ms ({p.model})", cyc.out)
    return True
