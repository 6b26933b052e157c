"""Estimated starts: when each pending job would start if nothing else changed.

This module owns ``estimate_queue`` (and ``estimate_starts``, its starts alone), the fluid
model behind every pending job's estimated start (``gpupool explain``, the queue page, the
service's ``estimated_start_ms``) and its position in its pool's order. Per pool,
accelerators come free at running jobs' walltime ends; pending jobs, in the order the cycle
uses (the caller's ``order``: for fair policies the sub-queues merged by their fair-share
prefix at ``now``, as ``QueuePass`` merges them, not the static keys alone), take them in the
pool where they would start soonest and then hold them for their own walltime; a job's
position is its place among the jobs that take that pool. Under strict order (no backfill)
a job holds up every pool it could use until it starts, as the cycle blocks them; with EASY
a later job may not start in a pool before an earlier one that took it (no backfill within a
pool: an estimate errs late for the jobs EASY lets through). It ignores topology, borrowing
limits and future arrivals, and holds the fair-share prefixes as they are at ``now``, so it
is an estimate, as every scheduler's is.

The releases of a pool are kept sorted by end time and consumed from a cursor; a job's own
release is inserted with a binary search (``insort``), not by swapping it down the list:
with 100,000 pending jobs on the national fleet the swapping took ~6 s a call, and the live
loop calls this every few seconds.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Sequence

from gpupool.core.job_state import JobState
from gpupool.core.pool_state import PoolState


def _end(release: tuple[int, int]) -> int:
    return release[0]


def estimate_starts(
    state: PoolState, now: int, order: Sequence[JobState] | None = None
) -> dict[str, int | None]:
    """An estimated start (ms) for every pending job of ``state``; None where none can be given."""
    return estimate_queue(state, now, order)[0]


def estimate_queue(
    state: PoolState, now: int, order: Sequence[JobState] | None = None
) -> tuple[dict[str, int | None], dict[str, tuple[int, int]]]:
    """Estimated starts, and per pending job (its pool, its 1-based place in that pool's order).

    ``order``: the pending jobs in the cycle's order (default: the static keys,
    ``PoolState.pending_jobs``). A job no pool can take is placed in its first candidate's.
    """
    by_seq = state.by_seq
    strict = state.config.backfill != "easy"
    releases: list[list[tuple[int, int]]] = [
        [(end, by_seq[s].gpus) for end, s in rl] for rl in state.running_by_pool
    ]
    free = [p.free for p in state.capacity.pools]
    cursor = [0] * len(free)
    clock = [now] * len(free)
    out: dict[str, int | None] = {}
    places: dict[str, tuple[int, int]] = {}
    taken = [0] * len(free)  # jobs placed in each pool's order so far
    for j in state.pending_jobs() if order is None else order:
        g = j.gpus
        best: int | None = None
        best_pool = -1
        for pi in j.candidates:
            f, t = free[pi], clock[pi]
            if f < g:
                rel, cur, n = releases[pi], cursor[pi], len(releases[pi])
                while f < g and cur < n:
                    end, gpus = rel[cur]
                    if end > t:
                        t = end
                    f += gpus
                    cur += 1
            if f >= g and (best is None or t < best):
                best, best_pool = t, pi
        out[j.spec.id] = best
        if strict and best is not None and best > now:
            # the cycle blocks every pool of a job that does not fit: none starts a later
            # job before this one starts
            for pi in j.candidates:
                if clock[pi] < best:
                    clock[pi] = best
        at = best_pool if best is not None else j.candidates[0]
        taken[at] += 1
        places[j.spec.id] = (at, taken[at])
        if best is None:
            continue
        rel, cur, f = releases[best_pool], cursor[best_pool], free[best_pool]
        while f < g and cur < len(rel):
            f += rel[cur][1]
            cur += 1
        free[best_pool], cursor[best_pool] = f - g, cur
        if best > clock[best_pool]:
            clock[best_pool] = best
        # the job itself releases its accelerators after its walltime: after every release
        # that ends no later (the order the swapping kept), never before the cursor
        insort(rel, (best + state.walltime(j), g), lo=cur, key=_end)
    return out, places
