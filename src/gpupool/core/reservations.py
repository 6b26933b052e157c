"""EASY reservations: when a blocked job could start, and holding that start for it.

This module owns, for an EASY-backfill cycle over one pool state:

* reservations (``Reservation``, a record of the cycle's scratch state in
  ``gpupool.core.cycle_scratch``): the job at the head of a pool that could not start, the
  time it is expected to (its shadow time) and the accelerators spare then, which later
  jobs may use without delaying it;
* the shadow time of a pool (``shadow_time``): when running jobs' walltimes free enough of it;
* giving the first blocked job of its pools a reservation at the soonest shadow time among
  them and telling it so (``reserve``).

The queue pass (``gpupool.core.queue_pass``) reads the reservations to decide what may backfill.
Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpupool.core.cycle_scratch import CycleScratch, Reservation
from gpupool.core.decisions import Reason, Reserve
from gpupool.core.job_state import JobState
from gpupool.core.pool_state import PoolState

__all__ = ["Reservation", "reserve", "shadow_time"]

INF = float("inf")


def shadow_time(state: PoolState, pool: int, need: int, now: int) -> tuple[float, int]:
    """When ``need`` accelerators of a pool will be free from walltimes; and the spare then."""
    p = state.capacity.pools[pool]
    free = p.free
    if free >= need:
        return float(now), free - need
    for end, seq in state.running_by_pool[pool]:
        free += state.by_seq[seq].gpus
        if free >= need:
            return float(max(end, now)), free - need
    return INF, 0


def reserve(state: PoolState, j: JobState, avail: Sequence[int], cyc: CycleScratch) -> bool:
    """EASY: the first blocked job of a pool gets a reservation at its shadow time.

    True when ``j`` got one (and was told so); False when it must say why it waits.
    """
    if any(cyc.reservations.get(p) is not None for p in avail):
        return False  # a job ahead holds the reservation: this one is a backfill candidate
    best: tuple[float, int, int] | None = None
    for pi in avail:
        if state.advance:  # not onto nodes a window keeps it off
            shadow, extra = state.advance.shadow(state, pi, j.project, j.gpus, cyc.now, state.walltime(j))
        else:
            shadow, extra = shadow_time(state, pi, j.gpus, cyc.now)
        if best is None or shadow < best[0]:
            best = (shadow, pi, extra)
    if best is None or best[0] == INF:
        return False
    shadow, pi, extra = best
    cyc.reservations[pi] = Reservation(j, shadow, extra)
    state.touch()
    start = int(shadow)
    p = state.capacity.pools[pi]
    if j.reserved_start != start:
        j.reserved_start = start
        cyc.out.append(Reserve(j.spec.id, state.fleet.clusters[p.cluster].name, p.model, start))
    why = f"expected start at {start} ms ({p.model})"
    if state.advance and (held := state.advance.blocking(j.project, cyc.now, state.walltime(j))):
        why = f"{state.advance.note(held)}; {why}"
    state.explain(j, Reason.RESERVED, why, cyc.out)
    return True
