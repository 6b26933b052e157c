"""The wanted-set pass: the cycle of the preemptive policies that re-rank what runs.

This module owns ``WantedSetPass``, the cycle of ``srtf``, ``las`` and ``tiresias``: at every
cycle it merges running and pending jobs by the policy's key, takes them in that order while
their accelerator count fits what is left of a candidate pool (bigger ones are skipped, not
blocking) and the project's borrowing limit allows, plans the wanted pending jobs on the
capacity the jobs outside the wanted set would free (a ``Trial`` on the pool state, rolled
back), and preempts only the victims a plan needs. It re-decides only where something
changed: the pools linked to a changed pool (``PoolState.dirty``) through some pending job's
candidates.

**Starvation bound.** Skipping jobs that do not fit would let a wide gang wait forever behind
narrower ones. A job that has waited (pending, summed over its attempts) at least
``SchedulerConfig.starvation_ms`` since it was last served is *starving*
(``gpupool.core.starvation``): starving jobs are taken before the policy's order, oldest
submission first. One that is
pending takes its accelerators in one candidate pool first, so no lower job is admitted
there and the running jobs there are preempted as soon as they pass the quantum, until it
fits (a reservation, as Tiresias' STARVELIMIT and EASY give); once started it runs at least
the quantum, then is ordered as any other job, its wait counted anew.

Part of the pure core.
"""

from __future__ import annotations

import heapq

from gpupool.core.decisions import Decision, Reason
from gpupool.core.job_state import JobState
from gpupool.core.pool_state import PoolState
from gpupool.core.preemption import Preemptor
from gpupool.core.starvation import StarvingJobs
from gpupool.core.tenancy import ANY_MODEL


class WantedSetPass:
    """The preemptive policies' cycle over one pool state."""

    def __init__(self, state: PoolState, preemptor: Preemptor) -> None:
        self.state = state
        self.preemptor = preemptor
        self.starving = StarvingJobs(state)
        #: does any tenant have a borrowing limit (else the pass counts no holdings)
        self._limits = any(n.borrow_limit for n in state.tenancy.nodes)
        #: what the last cycle that planned nothing was asked (see ``_enact``)
        self._failed: tuple[object, ...] | None = None

    def run(self, now: int, out: list[Decision]) -> None:
        """srtf / las / tiresias: choose the wanted set over running and pending jobs, each cycle.

        Starving jobs first (see the module docstring), then the policy's key: jobs are
        taken while their accelerator count fits what is left of a candidate pool (bigger
        ones are skipped, not blocking) within their project's borrowing limit; the wanted
        pending jobs are planned on the capacity the others would free, and only the
        running jobs outside the wanted set that a plan needs are preempted.
        """
        state = self.state
        starving = list(self.starving.pending(now)) if state.pending else []
        protected = self.starving.protected(now) if state.pending else []
        dirty, state.dirty = state.dirty, set()
        for j in starving:
            dirty.update(j.candidates)  # a job that starts starving re-decides its pools
        if not state.pending or not dirty:
            return
        # Pools linked to a changed pool through some pending job's candidates.
        candsets = state.cands.sets
        relevant = set(dirty)
        grew = True
        while grew:
            grew = False
            for qkey in state.queues:
                cands = candsets[qkey[0]]
                if not relevant.isdisjoint(cands) and not relevant.issuperset(cands):
                    relevant.update(cands)
                    grew = True
        pools = state.capacity.pools
        left = [p.schedulable for p in pools]
        total_left = sum(left[p] for p in relevant)
        running_key, config = state.policy.running_key, state.config
        by_seq = state.by_seq
        min_runtime = config.min_runtime_ms
        wanted: list[tuple[JobState, int]] = []
        seen: set[int] = set()
        # Borrowing limits count what the wanted set holds: the ledger's holdings less the
        # running jobs of these pools, plus each job kept or wanted, in order (a project
        # at its cap may swap one of its running jobs for a pending one of lower key)
        limits = self._limits
        held: dict[tuple[int, str], int] = {}  # per (tree node, model): change from the ledger
        if limits:
            for pi in relevant:
                for _, seq in state.running_by_pool[pi]:
                    self._hold(by_seq[seq], pi, held, -1)
        # Starving jobs first: a running one keeps its accelerators, a pending one takes
        # them in the candidate pool with the most free now (its reservation).
        for j in protected:
            if j.pool in relevant:
                seen.add(j.seq)
                left[j.pool] -= j.gpus
                total_left -= j.gpus
                if limits:
                    self._hold(j, j.pool, held)
        for j in starving:
            if relevant.isdisjoint(j.candidates):
                continue
            seen.add(j.seq)
            fits = [
                pi
                for pi in j.candidates
                if left[pi] >= j.gpus and (not limits or self._within_limit(j, pi, held))
            ]
            if not fits:
                state.explain(j, Reason.POLICY, "starving, behind older starving jobs", out)
                continue
            pi = max(fits, key=lambda p: (pools[p].free, -p))
            left[pi] -= j.gpus
            total_left -= j.gpus
            if limits:
                self._hold(j, pi, held)
            wanted.append((j, pi))
        running: list[tuple[tuple[float, ...], int, JobState]] = []
        for pi in relevant:
            for end, seq in state.running_by_pool[pi]:
                if seq not in seen:
                    j = by_seq[seq]
                    running.append((running_key(j, end, now, config), 0, j))
        running.sort(key=lambda t: (t[0], t[1]))
        # Each sub-queue is already sorted by static key: merge them lazily, so a cycle
        # only looks at as many pending jobs as it can use.
        pending = heapq.merge(
            *(
                ((e, 1, by_seq[e[-1]]) for e in q)
                for qkey, q in state.queues.items()
                if not relevant.isdisjoint(candsets[qkey[0]])
            ),
            key=lambda t: (t[0], t[1]),
        )
        victims: list[JobState] = []
        for _, is_pending, j in heapq.merge(running, pending, key=lambda t: (t[0], t[1])):
            if total_left <= 0:
                break
            if not is_pending:
                seen.add(j.seq)
                keeps = left[j.pool] >= j.gpus and (not limits or self._within_limit(j, j.pool, held))
                if keeps or now - j.start_ms < min_runtime:
                    left[j.pool] -= j.gpus
                    total_left -= j.gpus
                    if limits:
                        self._hold(j, j.pool, held)
                else:
                    victims.append(j)
                continue
            if j.seq in seen:
                continue  # a starving job, decided above
            limited = False
            for pi in j.candidates:
                if left[pi] >= j.gpus:
                    if limits and not self._within_limit(j, pi, held):
                        limited = True
                        continue
                    left[pi] -= j.gpus
                    total_left -= j.gpus
                    if limits:
                        self._hold(j, pi, held)
                    wanted.append((j, pi))
                    break
            else:
                if limited:
                    state.explain(j, Reason.BORROW_LIMIT, "would exceed its project's borrowing limit", out)
                else:
                    state.explain(j, Reason.POLICY, "lower in the policy order than what runs", out)
        for _, _, j in running:
            if j.seq not in seen:
                if now - j.start_ms < min_runtime:
                    continue
                victims.append(j)
        state.dirty.clear()  # what this cycle changed was decided by this cycle
        self._enact(wanted, victims, {j.seq for j in starving}, now, out)

    def _enact(
        self,
        wanted: list[tuple[JobState, int]],
        victims: list[JobState],
        starving: set[int],
        now: int,
        out: list[Decision],
    ) -> None:
        """Plan the wanted jobs on what the victims would free; preempt only those a plan needs.

        Every victim's accelerators are released in a trial, the wanted jobs are planned in
        order on what that leaves (each plan taken, so the next sees it), and a victim goes
        back when every node it holds keeps what the plans take there. The trials are rolled
        back; then the needed victims are preempted and the planned jobs start, on exactly
        the capacity the trial found. A victim no plan uses keeps running (a preemption
        before placement, on a fragmented pool, threw work away for nothing).
        """
        state = self.state
        pools = state.capacity.pools
        if not wanted:
            self._failed = None  # its wanted jobs may be told something else meanwhile
            return  # victims make room only for wanted jobs: none, so none is preempted
        # Plans depend on the capacity alone: the same wanted jobs and victims on the same
        # state fail as they did last cycle (a contended las pool asks the same at every
        # round while its young jobs hold the room; the trial cost a fifth of a run)
        key = (
            state.version,
            tuple((j.seq, pi) for j, pi in wanted),
            tuple(v.seq for v in victims),
            tuple((p.free, p.schedulable) for p in pools),
        )
        if key == self._failed:
            return
        trial = state.trial()
        for v in victims:
            trial.release(v.placement)
        plans: list[tuple[JobState, int, list[tuple[int, int]]]] = []
        for j, pi in wanted:
            p = pools[pi]
            plan = state.capacity.plan(pi, j.gpus, j.spec.shape(p.gpus_per_node), j.spec.topology)
            if plan is None:
                if j.seq in starving:
                    state.explain(
                        j,
                        Reason.RESERVED,
                        f"starving: {j.gpus} {p.model} held for it until the running jobs pass their quantum",
                        out,
                    )
                else:
                    state.explain(j, Reason.TOPOLOGY, f"wanted, but {p.model} is too fragmented", out)
                continue
            if not victims:
                state.start(j, pi, plan, now, out)  # nothing to free: start it on the plan
                continue
            trial.take(plan)
            plans.append((j, pi, plan))
        trial.rollback()
        if not plans:
            self._failed = key
            return
        need: dict[int, int] = {}
        for _, _, plan in plans:
            for node, count in plan:
                need[node] = need.get(node, 0) + count
        # the victims again, now without the plans: one goes back when every node it holds
        # keeps what the plans take there (last first, as the victim search does)
        trial = state.trial()
        for v in victims:
            trial.release(v.placement)
        free = state.capacity.free
        needed: list[JobState] = []
        for v in reversed(victims):
            if all(free[node] - len(ids) >= need.get(node, 0) for node, ids in v.placement):
                trial.retake(v.placement)
            else:
                needed.append(v)
        trial.rollback()
        name = state.policy.name
        for v in reversed(needed):
            self.preemptor.preempt(v, now, out, Reason.POLICY, f"{name} order")
        state.dirty.clear()
        for j, pi, plan in plans:
            state.start(j, pi, plan, now, out)

    def _within_limit(self, j: JobState, pi: int, held: dict[tuple[int, str], int]) -> bool:
        """Would ``j`` in pool ``pi`` keep every borrowing limit above its project, counting
        what this cycle already wanted there?"""
        state = self.state
        model = state.capacity.pools[pi].model
        nodes = state.tenancy.nodes
        ledger = state.ledger
        for i in state.tenancy.ancestors(j.project):
            lim = nodes[i].borrow_limit
            if lim is None:
                continue
            for key in (model, ANY_MODEL):
                if key in lim:
                    cap = nodes[i].guaranteed.get(key, 0) + lim[key]
                    if ledger.held_of(i, key) + held.get((i, key), 0) + j.gpus > cap:
                        return False
        return True

    def _hold(self, j: JobState, pi: int, held: dict[tuple[int, str], int], sign: int = 1) -> None:
        model = self.state.capacity.pools[pi].model
        for i in self.state.tenancy.ancestors(j.project):
            for key in (model, ANY_MODEL):
                held[(i, key)] = held.get((i, key), 0) + sign * j.gpus
