"""The bulk pass of an EASY cycle: runs of waiting jobs that would only fail again.

This module owns ``WaitingJobs.bulk_fail``, for one pool state: a run of a sub-queue's
waiting jobs that would be told exactly what they were told (their wait signature, kept
with the index in ``gpupool.core.wait_index``) is passed over as one failure instead of
being tried job by job, so one tenant's blocked backlog does not use up a cycle. It asks
the victim search (``gpupool.core.preemption``) whether a preemption could help, without a
scan.

Part of the pure core.
"""

from __future__ import annotations

from sortedcontainers import SortedList

from gpupool.core.cycle_scratch import CycleScratch
from gpupool.core.job_state import JobState
from gpupool.core.pool_state import Memo, PoolState
from gpupool.core.preemption import Preemptor


class WaitingJobs:
    """The bulk pass of an EASY cycle over one pool state's waiting jobs."""

    def __init__(self, state: PoolState, preemptor: Preemptor) -> None:
        self.state = state
        self.preemptor = preemptor
        #: per cycle, valid while the state's version holds: the most free in one of a set
        #: of pools, and whether one of them is reserved
        self._free_at: Memo[tuple[int, ...], tuple[int, bool]] = Memo(state)
        #: the same for a reservation wait on a set of pools and its holder: the pool the
        #: holder's reservation is on (-1: none, -2: several) and the most free in the others
        self._named_at: Memo[tuple[tuple[int, ...], str], tuple[int, int]] = Memo(state)

    def new_cycle(self) -> None:
        """A cycle starts: its reservations are new, so what it memoised is stale."""
        self._free_at.clear()
        self._named_at.clear()

    # -- the bulk pass -------------------------------------------------------------------

    def bulk_fail(
        self,
        j: JobState,
        q: SortedList,
        qkey: tuple[int, int, int],
        i: int,
        prefix: tuple[float, ...],
        cyc: CycleScratch,
        can_preempt: bool,
        heap: list[tuple[tuple[float, ...], int, tuple[int, int, int]]],
    ) -> int:
        """The bulk pass of an EASY cycle: how many jobs from q[i] (``j``) fail as a unit.

        A job already told why it waits (``wait_sig``) that would be told exactly that
        again (``blocked_as``), with no preemption able to help, would only fail: the
        cycle's tries would change nothing but its counters. So would the jobs after it in
        its sub-queue that have a ``wait_sig`` too, as long as they come before any other
        sub-queue's next job and their signatures hold for every size and walltime among
        them; those are passed over here instead of tried, and the run counts as one
        failure (and one preemption attempt) against the cycle's budgets: it cost one look.
        Counting each job instead let a tenant that cannot run (its only accelerators
        taken, its backlog first in fair-share order) use up ``backfill_depth`` at every
        cycle, and the rest of the pool idled behind it.
        ``prefix``: the sub-queue's (``FairShareOrder.prefix``), which the pass does not change.
        0 when ``j`` must be tried. A multi-stack job waits on the pools ``portable_order``
        picked for it (``usable``): the bulk pass relies on that set depending on the job
        alone (the order may change; the job's reason does not depend on it here).
        """
        state = self.state
        cfg = state.config
        hopeless = self.preemptor.hopeless
        preempting = can_preempt and cyc.preempt_attempts < cfg.max_preemption_attempts
        assert j.wait_sig is not None
        pools, holder = j.wait_sig
        g = j.spec.gpus
        if not self.blocked_as(pools, holder, g, g, state.walltime(j), cyc, j):
            return 0
        if preempting and not hopeless(j.project, j.rank, pools, g):
            return 0
        n = 1
        rank = qkey[2] if state.policy.by_rank else 0  # class 0 bounds a mixed sub-queue
        nxt = q[i + 1] if i + 1 < len(q) else None
        if nxt is None or (heap and ((*prefix, *nxt), nxt[-1], qkey) > heap[0]):
            pass  # another sub-queue's job comes next: a run of one
        elif all(
            self.blocked_as(sig[0], sig[1], min(sj.gpus), max(sj.gpus), sj.min_wall(), cyc, None)
            and not (preempting and not hopeless(qkey[1], rank, sig[0], min(sj.gpus)))
            for sig, sj in state.waits.index[qkey].sigs.items()
        ):
            n = self._run(q, qkey, i, len(q), prefix, heap)
        cyc.failures += 1
        if can_preempt:
            cyc.preempt_attempts = min(cfg.max_preemption_attempts, cyc.preempt_attempts + 1)
        return n

    def blocked_as(
        self,
        pools: tuple[int, ...],
        holder: str | None,
        g_min: int,
        g_max: int,
        wall_min: int,
        cyc: CycleScratch,
        job: JobState | None,
    ) -> bool:
        """Would ``QueuePass.try_start`` fail for a job on ``pools``, with a reason its signature says?

        For every job of g_min..g_max accelerators and a walltime of at least wall_min
        (``job``: the one job asked about, else none of the holders). ``holder`` None:
        no pool has g_min free ("waiting for accelerators") and one is reserved (so
        ``reservations.reserve`` has nothing to do). Else every pool with g_min free is reserved by
        ``holder``, which the job cannot pass (it would not end before the reservation, nor
        fit its spare), and one such pool has g_max free (so the reason names ``holder``).
        Monotone: what holds for g_min and wall_min holds for more.
        """
        resvs = cyc.reservations
        if not resvs:
            return False
        pl = self.state.capacity.pools
        if holder is None:
            got = self._free_at.get(pools)
            if got is None:
                got = self._free_at.put(
                    pools, (max(pl[p].free for p in pools), any(p in resvs for p in pools))
                )
            return got[0] < g_min and got[1]
        now = cyc.now
        got_n = self._named_at.get((pools, holder))
        if got_n is None:
            got_n = self._named_at.put((pools, holder), self._holder_pool(pools, holder, cyc))
        hp, others = got_n
        if hp == -1 or others >= g_min:
            return False  # no pool names ``holder``, or another pool has room
        if hp >= 0:
            # the loop below, for the only pool with room: ``holder``'s (its answer is the
            # loop's, at one look instead of one per pool for every job of a sub-queue)
            held = resvs[hp]
            free = pl[hp].free
            if free < g_min or held.job is job:
                return False
            if now + wall_min <= held.shadow or g_min <= held.extra:
                return False
            return free >= g_max
        named = reserved = False
        for p in pools:
            resv = resvs.get(p)
            if resv is not None:
                reserved = True
            free = pl[p].free
            if free < g_min:
                continue
            if holder is None or resv is None or resv.job is job or resv.job.spec.id != holder:
                return False
            if now + wall_min <= resv.shadow or g_min <= resv.extra:
                return False
            if free >= g_max:
                named = True
        return reserved if holder is None else named

    def _holder_pool(self, pools: tuple[int, ...], holder: str, cyc: CycleScratch) -> tuple[int, int]:
        """The pool of ``pools`` that ``holder``'s reservation is on (-1: none, -2: several,
        which ``blocked_as`` leaves to its loop), and the most free in one of the others (-1:
        no other)."""
        resvs = cyc.reservations
        pl = self.state.capacity.pools
        hp, others = -1, -1
        for p in pools:
            resv = resvs.get(p)
            if resv is not None and resv.job.spec.id == holder:
                hp = p if hp == -1 else -2
            else:
                others = max(others, pl[p].free)
        return hp, others

    def _run(
        self,
        q: SortedList,
        qkey: tuple[int, int, int],
        i: int,
        limit: int,
        prefix: tuple[float, ...],
        heap: list[tuple[tuple[float, ...], int, tuple[int, int, int]]],
    ) -> int:
        """How many jobs from position ``i`` (a waiting one) the bulk pass may take at once.

        The longest run q[i:i+n], n <= limit - i, of ``waiting`` jobs that all come before
        the next entry of the merge (``heap[0]``). Galloping then bisection: O(log^2 n).
        """
        w = self.state.waits.index[qkey].keys
        first = w.bisect_left(q[i])
        top = heap[0] if heap else None

        def ok(m: int) -> bool:
            e = q[m]
            if w.bisect_right(e) - first != m - i + 1:
                return False  # a job in q[i..m] has no wait_sig
            return top is None or ((*prefix, *e), e[-1], qkey) < top

        if limit - 1 > i and ok(limit - 1):
            return limit - i  # the usual case: the run reaches the limit
        good, step = i, 1
        bad = limit
        while good + step < limit:
            if ok(good + step):
                good += step
                step *= 2
            else:
                bad = good + step
                break
        while bad - good > 1:
            mid = (good + bad) // 2
            if ok(mid):
                good = mid
            else:
                bad = mid
        return good - i + 1
