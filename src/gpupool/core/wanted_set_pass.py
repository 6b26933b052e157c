"""The wanted-set pass: the cycle of the preemptive policies that re-rank what runs.

This module owns ``WantedSetPass``, the cycle of ``srtf``, ``las`` and ``tiresias``: at every
cycle it merges running and pending jobs by the policy's key, takes them in that order while
their accelerator count fits what is left of a candidate pool (bigger ones are skipped, not
blocking), preempts running jobs outside the wanted set, then places the wanted pending
jobs where topology allows. It re-decides only where something changed: the pools linked to
a changed pool (``PoolState.dirty``) through some pending job's candidates.

Part of the pure core.
"""

from __future__ import annotations

import heapq

from gpupool.core.decisions import Decision, Reason
from gpupool.core.job_state import JobState
from gpupool.core.pool_state import PoolState
from gpupool.core.preemption import Preemptor


class WantedSetPass:
    """The preemptive policies' cycle over one pool state."""

    def __init__(self, state: PoolState, preemptor: Preemptor) -> None:
        self.state = state
        self.preemptor = preemptor

    def run(self, now: int, out: list[Decision]) -> None:
        """srtf / las: choose the wanted set over running and pending jobs, by key, each cycle.

        Jobs are taken in key order while their accelerator count fits what is left of a
        candidate pool (bigger ones are skipped, not blocking); running jobs outside the
        wanted set are preempted; wanted pending jobs are then placed where topology allows.
        """
        state = self.state
        dirty, state.dirty = state.dirty, set()
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
        running: list[tuple[tuple[float, ...], int, JobState]] = []
        for pi in relevant:
            for end, seq in state.running_by_pool[pi]:
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
        min_runtime = state.config.min_runtime_ms
        wanted: list[tuple[JobState, int]] = []
        victims: list[JobState] = []
        seen: set[int] = set()
        for _, is_pending, j in heapq.merge(running, pending, key=lambda t: (t[0], t[1])):
            if total_left <= 0:
                break
            if not is_pending:
                seen.add(j.seq)
                if left[j.pool] >= j.gpus or now - j.start_ms < min_runtime:
                    left[j.pool] -= j.gpus
                    total_left -= j.gpus
                else:
                    victims.append(j)
                continue
            for pi in j.candidates:
                if left[pi] >= j.gpus:
                    left[pi] -= j.gpus
                    total_left -= j.gpus
                    wanted.append((j, pi))
                    break
            else:
                state.explain(j, Reason.POLICY, "lower in the policy order than what runs", out)
        for _, _, j in running:
            if j.seq not in seen:
                if now - j.start_ms < min_runtime:
                    continue
                victims.append(j)
        for v in victims:
            self.preemptor.preempt(v, now, out, Reason.POLICY, f"{state.policy.name} order")
        state.dirty.clear()  # what this cycle changed was decided by this cycle
        for j, pi in wanted:
            p = pools[pi]
            plan = state.capacity.plan(pi, j.gpus, j.spec.shape(p.gpus_per_node), j.spec.topology)
            if plan is None:
                state.explain(j, Reason.TOPOLOGY, f"wanted, but {p.model} is too fragmented", out)
                continue
            state.start(j, pi, plan, now, out)
