"""What pending jobs were told they wait for, and the bulk pass of an EASY cycle.

This module owns, for one ``Scheduler``:

* the wait signature of a pending job (``sig``): the reason it was told, in a form a cycle
  can check without trying the job (``JobState.wait_sig``): (its pools, None) for "waiting
  for accelerators", (its pools, id of the reservation's job) for "would delay job ...";
* the index of those jobs per sub-queue (``add``, ``remove``): their static keys, and per
  signature their sizes and walltimes;
* the bulk pass of an EASY cycle (``bulk_fail``): a run of a sub-queue's waiting jobs that
  would be told exactly what they were told is passed over as one failure instead of being
  tried job by job, so one tenant's blocked backlog does not use up a cycle.

Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sortedcontainers import SortedList

from gpupool.core.decisions import Reason

if TYPE_CHECKING:
    from gpupool.core.scheduler import JobState, Scheduler, _Cycle

#: how a reason names the job whose reservation a job would delay
DELAY = "would delay job "


@dataclass(slots=True, eq=False)
class _SigJobs:
    """The jobs of one sub-queue with one ``wait_sig``: how many ask for each accelerator
    count, and their walltimes (sorted)."""

    gpus: dict[int, int] = field(default_factory=dict)
    walls: SortedList = field(default_factory=SortedList)


@dataclass(slots=True, eq=False)
class _WaitIndex:
    """The pending jobs of one sub-queue with a ``wait_sig``, for the bulk pass of a cycle:
    their static keys, and their sizes and walltimes per signature."""

    keys: SortedList = field(default_factory=SortedList)
    sigs: dict[tuple[tuple[int, ...], str | None], _SigJobs] = field(default_factory=dict)


class WaitingJobs:
    """The pending jobs of one scheduler that were told why they wait, and its bulk pass."""

    def __init__(self, sched: Scheduler) -> None:
        self.s = sched
        #: per sub-queue: its jobs with a ``wait_sig`` (what the bulk pass of a cycle reads)
        self.index: dict[tuple[int, int, int], _WaitIndex] = {}
        #: per cycle, valid while the scheduler's ``_version`` holds: the most free in one
        #: of a set of pools, and whether one of them is reserved
        self._free_at: dict[tuple[int, ...], tuple[int, int, bool]] = {}
        #: the same for a reservation wait on a set of pools and its holder: the pool the
        #: holder's reservation is on (-1: none, -2: several) and the most free in the others.
        #: Free counts and reservations change only with ``_version``, as for the above.
        self._named_at: dict[tuple[tuple[int, ...], str], tuple[int, int, int]] = {}

    def new_cycle(self) -> None:
        """A cycle starts: its reservations are new, so what it memoised is stale."""
        self._free_at.clear()
        self._named_at.clear()

    # -- signatures and their index ------------------------------------------------------

    def sig(self, j: JobState, reason: Reason, detail: str) -> tuple[tuple[int, ...], str | None] | None:
        """The signature of a reason a cycle may give again with nothing to say (or None).

        For a pending job (the caller checks).
        """
        s = self.s
        # the pools a cycle tries for ``j`` when none is blocked (() when not known)
        pools = j.candidates if len(j.spec.stacks) <= 1 else j.usable
        if not pools:
            return None
        if reason is Reason.RESOURCES and detail == f"waiting for {j.spec.gpus} x {s._models_label(pools)}":
            return (pools, None)
        if reason is Reason.RESERVATION and detail.startswith(DELAY):
            return (pools, detail[len(DELAY) :])
        return None

    def add(self, j: JobState) -> None:
        """Index a pending job with a ``wait_sig`` in its sub-queue (for the bulk pass)."""
        assert j.wait_sig is not None
        w = self.index.get(j.qkey)
        if w is None:
            w = self.index[j.qkey] = _WaitIndex()
        w.keys.add(j.skey)
        self._sig_add(w, j)

    def remove(self, j: JobState) -> None:
        """Take a pending job with a ``wait_sig`` out of its sub-queue's index."""
        assert j.wait_sig is not None
        w = self.index[j.qkey]
        if len(w.keys) == 1:
            del self.index[j.qkey]
            return
        w.keys.remove(j.skey)
        self._sig_remove(w, j)

    def change(self, j: JobState, sig: tuple[tuple[int, ...], str | None] | None) -> None:
        """Set a pending job's ``wait_sig`` and keep the index in step.

        A job that stays indexed under another signature keeps its key in place: only its
        size and walltime move. That is the usual change (a reason that names another
        reservation's job), a few hundred times a cycle at national scale.
        """
        if j.wait_sig is None or sig is None:
            if j.wait_sig is not None:
                self.remove(j)
            j.wait_sig = sig
            if sig is not None:
                self.add(j)
            return
        w = self.index[j.qkey]
        self._sig_remove(w, j)
        j.wait_sig = sig
        self._sig_add(w, j)

    def _sig_add(self, w: _WaitIndex, j: JobState) -> None:
        assert j.wait_sig is not None
        sj = w.sigs.get(j.wait_sig)
        if sj is None:
            sj = w.sigs[j.wait_sig] = _SigJobs()
        sj.gpus[j.spec.gpus] = sj.gpus.get(j.spec.gpus, 0) + 1
        sj.walls.add(self.s._walltime(j))

    def _sig_remove(self, w: _WaitIndex, j: JobState) -> None:
        assert j.wait_sig is not None
        sj = w.sigs[j.wait_sig]
        if len(sj.walls) == 1:
            del w.sigs[j.wait_sig]
            return
        g = j.spec.gpus
        if sj.gpus[g] == 1:
            del sj.gpus[g]
        else:
            sj.gpus[g] -= 1
        sj.walls.remove(self.s._walltime(j))

    # -- the bulk pass -------------------------------------------------------------------

    def bulk_fail(
        self,
        j: JobState,
        q: SortedList,
        qkey: tuple[int, int, int],
        i: int,
        prefix: tuple[float, ...],
        cyc: _Cycle,
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
        s = self.s
        cfg = s.config
        preempting = can_preempt and cyc.preempt_attempts < cfg.max_preemption_attempts
        assert j.wait_sig is not None
        pools, holder = j.wait_sig
        g = j.spec.gpus
        if not self.blocked_as(pools, holder, g, g, s._walltime(j), cyc, j):
            return 0
        if preempting and not s._preemption.hopeless(j.project, j.rank, pools, g):
            return 0
        n = 1
        rank = qkey[2] if s.policy.by_rank else 0  # class 0 bounds a mixed sub-queue
        nxt = q[i + 1] if i + 1 < len(q) else None
        if nxt is None or (heap and ((*prefix, *nxt), nxt[-1], qkey) > heap[0]):
            pass  # another sub-queue's job comes next: a run of one
        elif all(
            self.blocked_as(sig[0], sig[1], min(sj.gpus), max(sj.gpus), sj.walls[0], cyc, None)
            and not (preempting and not s._preemption.hopeless(qkey[1], rank, sig[0], min(sj.gpus)))
            for sig, sj in self.index[qkey].sigs.items()
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
        cyc: _Cycle,
        job: JobState | None,
    ) -> bool:
        """Would ``_try_start`` fail for a job on ``pools``, with a reason its signature says?

        For every job of g_min..g_max accelerators and a walltime of at least wall_min
        (``job``: the one job asked about, else none of the holders). ``holder`` None:
        no pool has g_min free ("waiting for accelerators") and one is reserved (so
        ``reservations.reserve`` has nothing to do). Else every pool with g_min free is reserved by
        ``holder``, which the job cannot pass (it would not end before the reservation, nor
        fit its spare), and one such pool has g_max free (so the reason names ``holder``).
        Monotone: what holds for g_min and wall_min holds for more.
        """
        s = self.s
        resvs = cyc.reservations
        if not resvs:
            return False
        pl = s.capacity.pools
        if holder is None:
            got = self._free_at.get(pools)
            if got is None or got[0] != s._version:
                got = (s._version, max(pl[p].free for p in pools), any(p in resvs for p in pools))
                self._free_at[pools] = got
            return got[1] < g_min and got[2]
        now = cyc.now
        got_n = self._named_at.get((pools, holder))
        if got_n is None or got_n[0] != s._version:
            got_n = (s._version, *self._holder_pool(pools, holder, cyc))
            self._named_at[(pools, holder)] = got_n
        _, hp, others = got_n
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

    def _holder_pool(self, pools: tuple[int, ...], holder: str, cyc: _Cycle) -> tuple[int, int]:
        """The pool of ``pools`` that ``holder``'s reservation is on (-1: none, -2: several,
        which ``blocked_as`` leaves to its loop), and the most free in one of the others (-1:
        no other)."""
        resvs = cyc.reservations
        pl = self.s.capacity.pools
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
        w = self.index[qkey].keys
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
