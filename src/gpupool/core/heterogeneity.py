"""Heterogeneity-aware scheduling: Gavel's round-based mechanism and placement preferences.

This module owns how a pool state is acted on by an allocation matrix X[job][model] (computed by
``gpupool.core.allocation``) when its policy is round-based (``gavel-las``, ``gavel-fifo``,
``gavel-ftf``, ``gavel-makespan`` and the agnostic ``maxmin`` and ``ftf``):

* at every round boundary (a ``Tick``) it recomputes X if the set of jobs changed, then
  runs Gavel's mechanism (Narayanan et al., OSDI'20, section 5): per model, jobs are ranked
  by ``X[j][t] / fraction of that model's time j received since the allocation was set``,
  and the models are filled in turn (fastest first for aware policies; for agnostic ones
  the order rotates every round, as Gavel shuffles it) with the highest-ranked jobs that
  fit. A running job that keeps its model keeps its accelerators; the others are stopped
  at the round boundary, where a job's lease ends and it checkpoints (``Reason.ROUND``);
* between rounds it only fills idle accelerators (no preemption), so arrivals and
  finishes do not leave accelerators idle until the next round (in Gavel's simulator
  they wait for it);
* ``portable_order`` orders the pools of a job that runs on several software stacks:
  fastest first while its fast accelerators are free, but to the accelerators where it is
  comparatively fastest (an inference job on an NPU) while other jobs wait for the fast
  ones, so portable work absorbs demand that only the fast accelerators could serve.

It is part of the pure core: it keeps per-job accounting (time received per model, work
done in reference time) derived only from the pool state's events and ``now``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from itertools import islice

import numpy as np
import numpy.typing as npt

from gpupool.core import allocation
from gpupool.core.accelerator import DEFAULT_CLASS
from gpupool.core.decisions import Decision, Reason
from gpupool.core.job_state import PENDING as _PENDING
from gpupool.core.job_state import RUNNING as _RUNNING
from gpupool.core.job_state import JobState
from gpupool.core.pool_state import PoolState
from gpupool.core.preemption import Preemptor
from gpupool.core.round_leases import LeaseVerdict, judge_stop, stop_cost

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: objectives whose zero entries mean "never on this model" (Gavel: invalid_allocation_zero)
_STRICT = frozenset({"fifo"})
#: pending jobs looked at per fill between rounds (work conservation is best effort there)
FILL_DEPTH = 32


class RoundMechanism:
    """Gavel's round-based time sharing of one pool state's fleet, by accelerator model."""

    def __init__(self, state: PoolState, preemptor: Preemptor) -> None:
        self.state = state
        self.preemptor = preemptor
        self.objective = state.policy.objective
        self.aware = state.policy.aware
        pools = state.capacity.pools
        self.models: list[str] = list(dict.fromkeys(p.model for p in pools))
        index = {m: i for i, m in enumerate(self.models)}
        self.pool_model = [index[p.model] for p in pools]
        table = state.throughputs
        #: how fast a typical job runs on each model (the default class)
        self._value = np.asarray([table.speed(DEFAULT_CLASS, m) for m in self.models])
        # Aware policies fill the fastest model first (Gavel: V100, P100, K80).
        self.fast_first = sorted(range(len(self.models)), key=lambda t: (-self._value[t], t))
        self._round = 0
        self._boundary = False
        self._alloc: dict[int, FloatArray] = {}
        self._known: set[int] = set()
        self._received: dict[int, FloatArray] = {}
        self._work: dict[int, float] = {}
        self._acct: dict[int, int] = {}
        self._thr: dict[int, FloatArray] = {}
        self._allowed: dict[tuple[int, ...], BoolArray] = {}

    # -- hooks called by the scheduler ---------------------------------------------------

    def tick(self) -> None:
        """A round boundary: the next cycle re-decides everything."""
        self._boundary = True
        self._round += 1

    def cycle(self, now: int, out: list[Decision]) -> None:
        boundary, self._boundary = self._boundary, False
        if boundary or not self._known:
            # Counters are brought up to date only when priorities are computed: per cycle
            # it would cost O(running) at every finish (time a job ran since the last
            # boundary is lost only if something else stops it before the next one).
            self._account(now)
            self._full_round(now, out)
        else:
            self._fill(now, out)

    # -- per-job data --------------------------------------------------------------------

    def _thr_of(self, j: JobState) -> FloatArray:
        got = self._thr.get(j.seq)
        if got is None:
            speeds = self.state.throughputs.speeds(j.spec.workload_class, self.models, j.gpus)
            got = self._thr[j.seq] = np.asarray(speeds, dtype=np.float64)
        return got

    def _allowed_of(self, j: JobState) -> BoolArray:
        got = self._allowed.get(j.candidates)
        if got is None:
            got = np.zeros(len(self.models), dtype=np.bool_)
            for p in j.candidates:
                got[self.pool_model[p]] = True
            self._allowed[j.candidates] = got
        return got

    def _account(self, now: int) -> None:
        """Add the time each running job ran since the last cycle to its model's counters."""
        half = max(self.state.config.round_ms, 1) / 2.0
        k = len(self.models)
        for j in self.state.running.values():
            since = max(j.start_ms, self._acct.get(j.seq, j.start_ms))
            dt = now - since
            if dt <= 0:
                continue
            t = self.pool_model[j.pool]
            rec = self._received.get(j.seq)
            if rec is None:
                rec = self._received[j.seq] = np.full(k, half)
            rec[t] += dt
            self._work[j.seq] = self._work.get(j.seq, 0.0) + dt * float(self._thr_of(j)[t])
            self._acct[j.seq] = now

    def _remaining(self, j: JobState) -> float:
        """Reference-model work left: the duration estimate minus the work done so far."""
        return max(1.0, float(self.state.walltime(j)) - self._work.get(j.seq, 0.0))

    # -- the allocation ------------------------------------------------------------------

    def _reallocate(self, jobs: list[JobState], now: int) -> None:
        """Recompute X for ``jobs`` (arrival order) and reset the received-time counters."""
        k = len(self.models)
        half = max(self.state.config.round_ms, 1) / 2.0
        live = {j.seq for j in jobs}
        for d in (self._received, self._work, self._acct, self._thr):
            for seq in [s for s in d if s not in live]:
                del d[seq]
        self._known = live
        self._alloc = {}
        # Gavel resets each job's time on every model to half a round whenever the
        # allocation changes, so fractions start equal and no job is infinitely urgent.
        for j in jobs:
            self._received[j.seq] = np.full(k, half)
        if not jobs:
            return
        allowed = np.stack([self._allowed_of(j) for j in jobs])
        gpus = np.asarray([float(j.gpus) for j in jobs])
        cap = np.zeros(k)
        for p in self.state.capacity.pools:
            cap[self.pool_model[p.index]] += p.schedulable
        thr = np.stack([self._thr_of(j) for j in jobs]) if self.aware else allowed.astype(np.float64)
        obj = self.objective
        if obj == "las":
            x = (
                allocation.max_min_fairness(thr, gpus, cap, allowed)
                if self.aware
                else allocation.equal_share(gpus, cap, allowed)
            )
        elif obj == "fifo":
            x = allocation.fifo(thr, gpus, cap, allowed, self._value)
        elif obj == "ftf":
            elapsed = np.asarray([float(now - j.spec.submit_ms) for j in jobs])
            remaining = np.asarray([self._remaining(j) for j in jobs])
            x = allocation.finish_time_fairness(thr, gpus, cap, allowed, elapsed, remaining)
        else:
            remaining = np.asarray([self._remaining(j) for j in jobs])
            x = allocation.min_makespan(thr, gpus, cap, allowed, remaining)
        for i, j in enumerate(jobs):
            self._alloc[j.seq] = x[i]

    def _priorities(self, jobs: list[JobState]) -> tuple[FloatArray, FloatArray]:
        """Gavel's priority X[j][t] / (j's share of model t's time since the reset), and X.

        Rows follow ``jobs``; a job that arrived after the allocation was computed has no
        row in X yet: it has never been served, so its priority is infinite everywhere.
        """
        k = len(self.models)
        half = max(self.state.config.round_ms, 1) / 2.0
        rec = np.stack([self._received.setdefault(j.seq, np.full(k, half)) for j in jobs])
        none = np.full(k, np.nan)
        x = np.stack([self._alloc.get(j.seq, none) for j in jobs])
        new = np.isnan(x[:, 0])
        x[new] = 0.0
        frac = rec / np.maximum(rec.sum(axis=0), 1e-12)
        prio = np.where(x > 0, x / np.maximum(frac, 1e-12), 0.0)
        prio[new] = np.inf
        return prio, x

    def _model_order(self) -> list[int]:
        if self.aware:
            return self.fast_first
        # Agnostic: Gavel shuffles the model order every round; a rotation gives every
        # model the first pick equally often without a random generator.
        k = len(self.models)
        r = self._round % k
        return [(r + i) % k for i in range(k)]

    # -- a round -------------------------------------------------------------------------

    def _full_round(self, now: int, out: list[Decision]) -> None:
        s = self.state
        jobs = sorted(s.by_seq.values(), key=lambda j: (j.spec.submit_ms, j.seq))
        if {j.seq for j in jobs} != self._known or not self._alloc:
            self._reallocate(jobs, now)
        if not jobs:
            return
        prio, x = self._priorities(jobs)
        # A running job younger than the minimum runtime keeps its place (thrashing guard).
        fixed = {
            j.seq: j.pool for j in jobs if j.status == _RUNNING and now - j.start_ms < s.config.min_runtime_ms
        }
        # Round leases (``gpupool.core.round_leases``): a running job the plan would stop or
        # move keeps its accelerators unless the change gains more than the stop costs; the
        # plan is made again around the jobs that keep theirs until none is left to judge
        # (each pass fixes at least one more job, so it ends).
        kept: list[tuple[JobState, LeaseVerdict]] = []
        stops: dict[int, LeaseVerdict] = {}
        while True:
            wanted, left = self._plan(jobs, prio, x, fixed)
            refused = False
            stops = {}
            for j in jobs:
                if j.status != _RUNNING or wanted.get(j.seq, -1) == j.pool:
                    continue
                v = self._judge(j, wanted.get(j.seq), left[j.pool] < j.gpus, now)
                if v.stop or not s.config.round_leases:
                    stops[j.seq] = v
                else:
                    fixed[j.seq] = j.pool
                    kept.append((j, v))
                    refused = True
            if not refused:
                break
        # Stop what is not wanted where it runs (the lease ends at the boundary) ...
        for j in [r for r in s.running.values() if wanted.get(r.seq, -1) != r.pool]:
            self._account_stop(j)
            why = f"{s.policy.name}: its lease ended with the round"
            if s.config.round_leases:
                why += f": {stops[j.seq].words()}"
            self.preemptor.preempt(j, now, out, Reason.ROUND, why)
        # ... then start the wanted pending jobs, biggest gangs first (less fragmentation).
        starting = [j for j in jobs if j.seq in wanted and j.status == _PENDING]
        starting.sort(key=lambda j: (-j.gpus, j.spec.submit_ms, j.seq))
        for j in starting:
            self._place(j, wanted[j.seq], now, out)
        # A waiting job that could use the accelerators a running job kept is told why.
        kept_at: dict[int, LeaseVerdict] = {}
        for r, v in kept:
            kept_at.setdefault(r.pool, v)
        for j in jobs:
            if j.status == _PENDING and j.seq not in wanted:
                why = f"waiting for its {s.policy.name} share (next rounds)"
                held = next((kept_at[p] for p in j.candidates if p in kept_at), None) if kept_at else None
                if held is not None:
                    why += f"; a running job keeps its lease: {held.words()}"
                s.explain(j, Reason.POLICY, why, out)

    def _plan(
        self, jobs: list[JobState], prio: FloatArray, x: FloatArray, fixed: dict[int, int]
    ) -> tuple[dict[int, int], list[int]]:
        """Gavel's fill: the pool each job is wanted in this round, and what is left per pool.

        ``fixed``: running jobs that keep their pool whatever their priority.
        """
        s = self.state
        pools = s.capacity.pools
        left = [p.schedulable for p in pools]
        wanted: dict[int, int] = {}
        for seq, pool in fixed.items():
            wanted[seq] = pool
            left[pool] -= s.by_seq[seq].gpus
        strict = self.objective in _STRICT
        allowed = np.stack([self._allowed_of(j) for j in jobs])
        ranks = np.asarray([j.rank for j in jobs])
        seqs = np.asarray([j.seq for j in jobs])
        # Per model in fill order, jobs by class first (a reserved job is never displaced by
        # normal work), then Gavel's priority, allocation, and arrival (explicit tie-break).
        smallest = min(j.gpus for j in jobs)
        for t in self._model_order():
            room = sum(left[p.index] for p in pools if self.pool_model[p.index] == t)
            cand = np.flatnonzero(allowed[:, t] & ((prio[:, t] > 0) if strict else True))
            if cand.size == 0 or room < smallest:
                continue
            order = cand[np.lexsort((seqs[cand], -x[cand, t], -prio[cand, t], ranks[cand]))]
            for i in order.tolist():
                j = jobs[i]
                if j.seq in wanted:
                    continue
                pi = self._pool_for(j, t, left)
                if pi is None:
                    continue
                left[pi] -= j.gpus
                wanted[j.seq] = pi
                room -= j.gpus
                if room < smallest:
                    break  # this model is full: the rest of its list cannot start here
        return wanted, left

    def _judge(self, j: JobState, there: int | None, taken: bool, now: int) -> LeaseVerdict:
        """The round lease verdict on running ``j`` that the plan puts in pool ``there`` (None:
        out); ``taken``: the plan gives some of its accelerators to other jobs."""
        cfg = self.state.config
        cost = stop_cost(j, now, cfg.restart_overhead_ms, cfg.lease_end_checkpoints)
        thr = self._thr_of(j)
        here = float(thr[self.pool_model[j.pool]])
        there_speed = None if there is None else float(thr[self.pool_model[there]])
        handed = cfg.round_ms if taken else 0
        return judge_stop(j, cost, self._remaining(j), here, there_speed, handed)

    def _pool_for(self, j: JobState, t: int, left: list[int]) -> int | None:
        """The candidate pool of model ``t`` to count ``j`` against: its own if it runs there."""
        if j.status == _RUNNING and self.pool_model[j.pool] == t and left[j.pool] >= j.gpus:
            return j.pool
        best = None
        for p in j.candidates:
            if self.pool_model[p] == t and left[p] >= j.gpus and (best is None or left[p] > left[best]):
                best = p
        return best

    def _place(self, j: JobState, pool: int, now: int, out: list[Decision]) -> bool:
        """Start ``j`` in ``pool`` or another pool of the same model; explain if it cannot."""
        t = self.pool_model[pool]
        tries = [pool] + [p for p in j.candidates if p != pool and self.pool_model[p] == t]
        if self._start_in(j, tries, now, out):
            return True
        self.state.explain(j, Reason.TOPOLOGY, f"wanted on {self.models[t]}, but it is too fragmented", out)
        return False

    def _start_in(self, j: JobState, tries: Sequence[int], now: int, out: list[Decision]) -> bool:
        """Start ``j`` in the first of ``tries`` with room and a placement; True if it started."""
        s = self.state
        for pi in tries:
            p = s.capacity.pools[pi]
            if p.free < j.gpus:
                continue
            plan = s.capacity.plan(pi, j.gpus, j.spec.shape(p.gpus_per_node), j.spec.topology)
            if plan is not None:
                s.start(j, pi, plan, now, out)
                self._acct[j.seq] = now
                return True
        return False

    def _account_stop(self, j: JobState) -> None:
        self._acct.pop(j.seq, None)

    def _fill(self, now: int, out: list[Decision]) -> None:
        """Between rounds: start pending jobs on idle accelerators, without preempting.

        Newest first (a job that arrived since the round has received nothing: Gavel would
        rank it first), oldest first for FIFO; at most ``FILL_DEPTH`` jobs are looked at,
        so a finish costs O(depth) however long the queue is (the next round looks at
        everything), and a candidate set that had no room for a gang is not asked again
        for one as big.
        """
        s = self.state
        if not s.pending:
            return
        pools = s.capacity.pools
        free_total = sum(p.free for p in pools)
        if free_total <= 0:
            return
        max_free = max(p.free for p in pools)
        newest_first = self.objective not in _STRICT
        queues = [reversed(q) if newest_first else iter(q) for q in s.queues.values()]
        order = heapq.merge(*queues, reverse=newest_first)
        depth = min(FILL_DEPTH, s.config.backfill_depth)
        rank = {t: i for i, t in enumerate(self._model_order())}
        pm = self.pool_model
        candidates = [s.by_seq[entry[-1]] for entry in islice(order, depth)]
        too_big: dict[tuple[int, ...], int] = {}
        for j in candidates:
            if free_total <= 0:
                break
            if j.status != _PENDING or j.gpus > max_free or j.gpus >= too_big.get(j.candidates, 1 << 30):
                continue
            if all(pools[pi].free < j.gpus for pi in j.candidates):
                too_big[j.candidates] = j.gpus  # nothing it may use has room
                continue
            if self.aware:
                x = self._alloc.get(j.seq)
                thr = self._thr_of(j)
                xs = x if x is not None else np.zeros(len(self.models))
                prefer = sorted(j.candidates, key=lambda p: (-xs[pm[p]], -thr[pm[p]], p))
            else:
                prefer = sorted(j.candidates, key=lambda p: (rank[pm[p]], p))
            if self._start_in(j, prefer, now, out):
                free_total -= j.gpus
                max_free = max(q.free for q in pools)


def portable_order(state: PoolState, j: JobState, avail: list[int]) -> list[int]:
    """The order to try a multi-stack job's pools in (see the module docstring).

    Pools of another stack where the job keeps less than ``portable_min_speed`` of its
    median speed on its native (fastest) stack are left out: it waits for its GPUs. Of the
    rest, the fastest for the job first while nothing else waits for the native pools; when
    another pending job can use them but none of the others (GPUs are contended), the other
    stack's pools first, ranked by the job's comparative advantage there (its speed over a
    typical job's), then the native ones by speed.
    """
    table = state.throughputs
    pools = state.capacity.pools
    cat = state.fleet.catalogue
    cls, g = j.spec.workload_class, j.gpus
    speed = {p: table.speed(cls, pools[p].model, g) for p in j.candidates}
    fastest = max(j.candidates, key=lambda p: (speed[p], -p))
    stack = cat[pools[fastest].model].stack
    native_speeds = sorted(speed[p] for p in j.candidates if cat[pools[p].model].stack == stack)
    # Another stack's accelerators only where the job keeps a fair part of its speed: an NPU
    # 20x slower than the GPU it would wait for turns a short wait into a long run (the
    # median native speed stands for "the GPU it would get" when it may get any of them).
    floor = state.config.portable_min_speed * native_speeds[len(native_speeds) // 2]
    usable = [p for p in avail if cat[pools[p].model].stack == stack or speed[p] >= floor]
    by_speed = sorted(usable, key=lambda p: (-speed[p], p))
    native = [p for p in usable if cat[pools[p].model].stack == stack]
    other = [p for p in usable if p not in native]
    if not other or not native:
        return by_speed
    native_set = set(native)
    other_set = set(other)
    contended = False
    candsets = state.cands.sets
    for qkey in state.queues:
        cands = candsets[qkey[0]]
        if cands == j.candidates:
            continue
        if not native_set.isdisjoint(cands) and other_set.isdisjoint(cands):
            contended = True
            break
    if not contended:
        return by_speed

    def advantage(p: int) -> float:
        return speed[p] / table.speed(DEFAULT_CLASS, pools[p].model, g)

    return sorted(other, key=lambda p: (-advantage(p), p)) + sorted(native, key=lambda p: (-speed[p], p))
