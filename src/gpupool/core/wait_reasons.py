"""Wait reasons for the pending jobs a cycle did not reach: no job is left "not yet considered".

This module owns ``tell_untold``: after each cycle, every pending job that no one has told
why it waits (reason ``QUEUED``: new, and past where the cycle's budget, ``backfill_depth``,
let it look) is told from the pool state alone, at the cost of a few comparisons per such
job, never a placement search:

* ``borrow-limit``: on every pool it could use, a borrowing limit on its tenant path would
  be exceeded (its project is above its guarantee and borrowing is capped);
* ``resources``: no pool it could use has its size free (the pool is full);
* ``behind-higher-priority``: a pool it could use has room, but a job of a higher class
  waits for the same pools;
* ``reserved``: a pool with room is held for another job's reservation;
* ``backfill-depth``: otherwise: jobs ahead of it in its pools' order came first.

The reason is the cycle's own wording where there is one (``QueuePass.try_start``), so the
first cycle that tries the job says nothing new unless something changed. Only jobs without
a reason are visited, so an incremental cycle pays for its arrivals alone; a job told once
keeps its reason until a cycle tries it. Where the job stands in its pools' order is
``gpupool.core.estimate.queue_positions``.

Part of the pure core.
"""

from __future__ import annotations

from gpupool.core.decisions import Decision, Explain, Reason
from gpupool.core.job_state import PENDING, JobState
from gpupool.core.pool_state import PoolState
from gpupool.core.unavailable_capacity import unavailable_note


def tell_untold(state: PoolState, reserved: set[int], out: list[Decision]) -> None:
    """Give every pending job without a reason one (an ``Explain`` each), in submission order.

    ``reserved``: the pools a reservation holds after the cycle.
    """
    untold = state.untold
    if not untold:
        return
    by_seq = state.by_seq
    best_rank: list[dict[int, int] | None] = []  # made on first need: it reads every sub-queue
    # nothing changes the state here, so a reason depends on the job's pools, size, project
    # and class alone: a national queue repeats a few hundred of those
    seen: dict[tuple[object, ...], tuple[Reason, str]] = {}
    for seq in sorted(untold):
        j = by_seq[seq]
        if j.status != PENDING or j.reason is not Reason.QUEUED:
            continue
        key = (j.cset, j.usable, j.gpus, j.project, j.rank)
        got = seen.get(key)
        if got is None:
            got = seen[key] = _why(state, j, reserved, best_rank)
        reason, detail = got
        j.reason, j.detail, j.presumed = reason, detail, True
        out.append(Explain(j.spec.id, reason, detail))
    untold.clear()


def _why(
    state: PoolState, j: JobState, reserved: set[int], best_rank: list[dict[int, int] | None]
) -> tuple[Reason, str]:
    pools = state.capacity.pools
    cands = j.candidates if len(j.spec.stacks) <= 1 or not j.usable else j.usable
    g = j.gpus
    roomy = [p for p in cands if pools[p].free >= g]
    if not roomy:
        return Reason.RESOURCES, f"waiting for {g} x {state.models_label(cands)}" + unavailable_note(
            pools, cands, g
        )
    limit = state.ledger.borrow_limit_hit
    hit = ""
    for p in roomy:
        got = limit(j.project, pools[p].model, g)
        if got is None:
            break
        hit = f"{got} would exceed its borrowing limit of {pools[p].model}"
    else:
        return Reason.BORROW_LIMIT, hit
    if not best_rank:
        best_rank.append(_best_pending_ranks(state) if state.policy.by_rank else None)
    ranks = best_rank[0]
    if ranks is not None and any(ranks.get(p, j.rank) < j.rank for p in roomy):
        return Reason.BEHIND, f"a higher class waits for {state.models_label(roomy)}"
    if all(p in reserved for p in roomy):
        return Reason.RESERVED, f"{state.models_label(roomy)} held for a reservation"
    return Reason.NOT_REACHED, f"behind earlier jobs in the order of {state.models_label(cands)}"


def _best_pending_ranks(state: PoolState) -> dict[int, int]:
    """Per pool: the best class among pending sub-queues that could use it."""
    sets = state.cands.sets
    best: dict[int, int] = {}
    for cset, _, rank in state.queues:
        for p in sets[cset]:
            if best.get(p, rank + 1) > rank:
                best[p] = rank
    return best
