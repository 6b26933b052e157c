"""The queue pass: the cycle of the queueing policies, with strict order or EASY backfill.

This module owns ``QueuePass``, the cycle of ``fifo``, ``priority``, ``fairshare`` and
``sjf`` over one pool state:

1. merge the pending sub-queues lazily by their order (the fair-share prefix of
   ``gpupool.core.fairshare``, or the class), so no cycle re-sorts the whole queue;
2. place what fits, tightest topology first (``try_start``); with strict order a job that
   does not fit blocks its pools; with EASY backfill the first blocked job of a pool gets a
   reservation (``gpupool.core.reservations``) and later jobs may use those pools only
   without delaying it; runs of waiting jobs that would be told the same again are passed
   over at once (``gpupool.core.waiting``);
   jobs past the starvation bound (``gpupool.core.starvation``) are tried before the order
   and block or reserve their pools the same way;
3. preempt where that helps (``gpupool.core.preemption``): reclaim a guarantee, or make
   room for a higher class;
4. explain: every job looked at that still waits has a reason code, with its subject as
   data (``PoolState.explain``).

The cycle's budgets (``backfill_depth``, per project, preemption searches) bound its cost.

Part of the pure core.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from gpupool.core.cycle_scratch import CycleScratch
from gpupool.core.decisions import Decision, Reason
from gpupool.core.fairshare import FairShareOrder
from gpupool.core.fleet import Level
from gpupool.core.heterogeneity import portable_order
from gpupool.core.job_state import JobState
from gpupool.core.pool_state import PoolState
from gpupool.core.preemption import Preemptor
from gpupool.core.reservations import reserve
from gpupool.core.starvation import StarvingJobs
from gpupool.core.unavailable_capacity import unavailable_note
from gpupool.core.wait_index import DELAY
from gpupool.core.waiting import WaitingJobs


class QueuePass:
    """The queueing policies' cycle (strict or EASY) over one pool state."""

    def __init__(
        self, state: PoolState, fairshare: FairShareOrder, preemptor: Preemptor, waiting: WaitingJobs
    ) -> None:
        self.state = state
        self.fairshare = fairshare
        self.preemptor = preemptor
        self.waiting = waiting
        #: the pools a reservation held when the last cycle ended (its wait reasons read it)
        self.reserved: set[int] = set()
        self.starving = StarvingJobs(state)

    def run(self, now: int, out: list[Decision]) -> None:
        """One cycle: place pending work in fair-share (or policy) order; see the module docstring."""
        state = self.state
        self.reserved = set()
        if not state.pending:
            return
        cyc = CycleScratch(now, out)
        fairshare = self.fairshare
        fairshare.new_cycle()
        self.preemptor.new_cycle()
        self.waiting.new_cycle()
        config = state.config
        max_attempts = config.max_preemption_attempts
        depth = config.backfill_depth
        per_project = config.backfill_depth_per_project
        project_failures = cyc.project_failures
        pools = state.capacity.pools
        open_free = sum(p.free for p in pools)
        can_preempt = config.preemption and (state.has_guarantees or self._ranks_differ())
        easy = config.backfill == "easy"
        explain = state.explain
        heap: list[tuple[tuple[float, ...], int, tuple[int, int, int]]] = []
        cursor: dict[tuple[int, int, int], int] = {}
        queues = state.queues
        if state.policy.fair:
            fairshare.first_prefixes(now, heap, cursor)
        else:
            for qkey, q in queues.items():
                cursor[qkey] = 0
                head = q[0]
                heap.append(((qkey[2], *head), head[-1], qkey))
        heapq.heapify(heap)
        by_fair, by_seq, bulk_fail = state.policy.fair, state.by_seq, self.waiting.bulk_fail
        prefix_of = fairshare.prefix
        front = self._starving_first(cyc, easy)
        if front:
            open_free = sum(p.free for p in pools if p.index not in cyc.blocked)
        while heap:
            if cyc.failures >= depth:
                break
            key, _, qkey = heapq.heappop(heap)
            q = queues.get(qkey)
            i = cursor[qkey]
            if q is None or i >= len(q):
                continue
            if project_failures.get(qkey[1], 0) >= per_project:
                continue  # this project had its share of the cycle's tries
            # Each entry is read once: indexing a SortedList costs a Python call, and the
            # bulk pass makes this loop run about a thousand times per cycle.
            e = q[i]
            # the bulk pass below changes no state, so this prefix also keys the push after it
            prefix = prefix_of(qkey, now)
            if by_fair:
                fresh = (*prefix, *e)
                if fresh > key:
                    heapq.heappush(heap, (fresh, e[-1], qkey))
                    continue
            j = by_seq[e[-1]]
            if front and j.seq in front:
                # served before the order (``_starving_first``): passed over here
                i += 1
                cursor[qkey] = i
                if i < len(q):
                    e = q[i]
                    heapq.heappush(heap, ((*prefix, *e), e[-1], qkey))
                continue
            avail: Sequence[int] = j.candidates
            if cyc.blocked:
                avail = [p for p in avail if p not in cyc.blocked]
                if not avail:
                    continue  # every job of this sub-queue shares these blocked pools
            multi_stack = len(j.spec.stacks) > 1
            # (a cut GPU may still hold a fraction: ``state.fractions.grants``)
            if open_free <= 0 and not can_preempt and not state.fractions.grants:
                # Nothing is free anywhere this job could go: say so for the job at the
                # head and stop, instead of walking a queue that cannot move.
                if multi_stack:
                    avail = portable_order(state, j, list(avail))
                models = "/".join(sorted({pools[p].model for p in avail}))
                why = f"waiting for {j.gpus} x {models}" + unavailable_note(pools, avail, j.gpus)
                explain(j, Reason.RESOURCES, why, out, models)
                break
            if easy and j.wait_sig is not None and not cyc.blocked:
                n = bulk_fail(j, q, qkey, i, prefix, cyc, can_preempt, heap)
                if n:
                    project_failures[j.project] = project_failures.get(j.project, 0) + 1
                    i += n
                    cursor[qkey] = i
                    if i < len(q):
                        e = q[i]
                        heapq.heappush(heap, ((*prefix, *e), e[-1], qkey))  # the pass changed nothing
                    continue
            if multi_stack:
                avail = portable_order(state, j, list(avail))
                if not cyc.blocked and j.usable != (usable := tuple(sorted(avail))):
                    if j.wait_sig is not None:
                        state.waits.remove(j)  # it waited on other pools: tried in full from now
                        j.wait_sig = None
                    j.usable = usable
            # EASY says why a job waits once the reservation is settled: telling the head
            # job "resources", then "reserved", at every cycle was two decisions of noise
            started = self.try_start(j, avail, cyc, explain=not easy)
            if started:
                open_free -= j.gpus  # it started in one of ``avail``, none of them blocked
            else:
                cyc.failures += 1
                project_failures[j.project] = project_failures.get(j.project, 0) + 1
                if (cyc.why[0] if easy else j.reason) is Reason.BORROW_LIMIT:
                    if easy:
                        explain(j, *cyc.why[:2], out, cyc.why[2])
                    continue  # the same project's next jobs would hit the same limit
                if can_preempt and cyc.preempt_attempts < max_attempts and (self._preempt_for(j, avail, cyc)):
                    started = True
                    open_free = sum(p.free for p in pools if p.index not in cyc.blocked)
                elif not easy:
                    for pi in avail:
                        cyc.blocked.add(pi)
                        open_free -= pools[pi].free
                    continue
                elif not reserve(state, j, avail, cyc):
                    explain(j, *cyc.why[:2], out, cyc.why[2])
            if not started:
                i += 1
            cursor[qkey] = i
            nq = queues.get(qkey)
            if nq is not None and nq is q and i < len(nq):
                e = nq[i]  # read once: indexing a SortedList costs a Python call
                heapq.heappush(heap, ((*prefix_of(qkey, now), *e), e[-1], qkey))
        self.reserved = set(cyc.reservations)

    def _starving_first(self, cyc: CycleScratch, easy: bool) -> set[int]:
        """The starvation bound: jobs that waited ``starvation_ms`` are tried before the order.

        Oldest submission first; one that does not fit blocks its pools (strict order) or
        takes the reservation of one of them (EASY), so no later job of the order delays
        it. A job whose pools are all blocked or reserved already is left to the order.
        Returns the jobs decided here (the order passes over them this cycle).
        """
        state = self.state
        starving = self.starving.pending(cyc.now)
        front: set[int] = set()
        n_pools = len(state.capacity.pools)
        for j in starving:
            if len(cyc.blocked) + len(cyc.reservations) >= n_pools:
                break  # every pool is blocked or reserved: the rest are left to the order
            avail = [p for p in j.candidates if p not in cyc.blocked and p not in cyc.reservations]
            if not avail:
                continue
            front.add(j.seq)
            if self.try_start(j, avail, cyc, explain=not easy):
                continue
            cyc.failures += 1
            if (cyc.why[0] if easy else j.reason) is Reason.BORROW_LIMIT:
                if easy:
                    state.explain(j, *cyc.why[:2], cyc.out, cyc.why[2])
                continue
            if not easy:
                cyc.blocked.update(avail)
            elif not reserve(state, j, avail, cyc):
                state.explain(j, *cyc.why[:2], cyc.out, cyc.why[2])
        return front

    def _ranks_differ(self) -> bool:
        state = self.state
        if not state.running:
            return False
        worst_running = max(j.rank for j in state.running.values())
        best_pending = min(k[2] for k in state.queues) if state.policy.by_rank else worst_running
        return best_pending < worst_running

    def try_start(self, j: JobState, avail: Sequence[int], cyc: CycleScratch, explain: bool = True) -> bool:
        """Place ``j`` in the first of ``avail`` that holds it now; set its reason if none.

        With ``explain`` False the reason is left in ``cyc.why`` for the caller to set.
        Reserved nodes ``j`` may not use are fenced off meanwhile (``advance_reservations``).
        """
        advance = self.state.advance
        if not advance:
            return self._try_start(j, avail, cyc, explain, "")
        with advance.fence(self.state.capacity, j.project, cyc.now, self.state.walltime(j)) as held:
            return self._try_start(j, avail, cyc, explain, advance.note(held) if held else "")

    def _preempt_for(self, j: JobState, avail: Sequence[int], cyc: CycleScratch) -> bool:
        """``Preemptor.try_for``, with the same fence as ``try_start``."""
        advance = self.state.advance
        if not advance:
            return self.preemptor.try_for(j, avail, cyc)
        with advance.fence(self.state.capacity, j.project, cyc.now, self.state.walltime(j)):
            return self.preemptor.try_for(j, avail, cyc)

    def _try_start(
        self, j: JobState, avail: Sequence[int], cyc: CycleScratch, explain: bool, fenced: str
    ) -> bool:
        state = self.state
        cap = state.capacity
        reason, detail, subject = Reason.RESOURCES, "", None
        wall = state.walltime(j) if cyc.reservations else 0
        spec = j.spec
        frac = bool(spec.mig) or spec.gpu_fraction > 0 or spec.gpu_memory_gib > 0
        for pi in avail:
            p = cap.pools[pi]
            # a fraction packs onto a cut GPU first (core/fraction_pool.py); on a pool another
            # job reserved it only packs (opening a GPU would take what the reservation counts)
            if frac and state.ledger.borrow_limit_hit(j.project, p.model, 1) is None:
                resv = cyc.reservations.get(pi)
                own = resv is not None and resv.job is j
                taken = state.fractions.take(spec, spec.id, pi, open_new=resv is None or own)
                if taken is not None:
                    if own:
                        del cyc.reservations[pi]
                        state.touch()
                    state.start(j, pi, (), cyc.now, cyc.out, taken)
                    return True
            if p.free < j.gpus:
                continue
            resv = cyc.reservations.get(pi)
            fits_before = False
            if resv is not None and resv.job is not j:
                fits_before = cyc.now + wall <= resv.shadow
                if not fits_before and j.gpus > resv.extra:
                    subject = resv.job.spec.id
                    reason, detail = Reason.RESERVATION, f"{DELAY}{subject}"
                    continue
            plan = cap.plan(pi, j.gpus, j.spec.shape(p.gpus_per_node), j.spec.topology)
            if plan is None:
                reason, subject = Reason.TOPOLOGY, None
                detail = f"{p.free} {p.model} free in {state.fleet.clusters[p.cluster].name} but not " + (
                    f"within one {j.spec.topology.name.lower()}"
                    if j.spec.topology < Level.CLUSTER
                    else "on few enough nodes"
                )
                continue
            hit = state.ledger.borrow_limit_hit(j.project, p.model, j.gpus)
            if hit is not None:
                reason, subject = Reason.BORROW_LIMIT, None
                detail = f"{hit} would exceed its borrowing limit of {p.model}"
                continue
            if resv is not None and resv.job is not j and not fits_before:
                resv.extra -= j.gpus
            if resv is not None and resv.job is j:
                del cyc.reservations[pi]
                state.touch()
            state.start(j, pi, plan, cyc.now, cyc.out)
            return True
        if reason is Reason.RESOURCES:
            subject = state.models_label(avail)
            detail = fenced or f"waiting for {j.gpus} x {subject}" + unavailable_note(
                state.capacity.pools, avail, j.gpus
            )
        if explain:
            state.explain(j, reason, detail, cyc.out, subject)
        else:
            cyc.why = (reason, detail, subject)
        return False
