"""Preemption: making room for a job by stopping others.

This module owns, for one pool state (``gpupool.core.pool_state``):

* the victim search when a job cannot start (``try_for``): reclaim borrowed capacity for a
  tenant under its guarantee, or make room for a higher priority class, losing the least
  work, and giving back the victims the placement does not use. It reads the running jobs
  grouped per pool by (project, class) (``gpupool.core.running_groups``): only the groups
  that may hold victims, whose totals bound what it could free, so a hopeless pool costs no
  scan; and it frees candidate victims in a ``Trial`` that is rolled back when no placement
  fits;
* whether a search is hopeless without a scan (``hopeless``), memoised while the state's
  version holds (the bulk pass of an EASY cycle asks it for whole runs of jobs);
* enacting a preemption (``preempt``): the decision, the stop, the job back in its queue.

Part of the pure core.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from gpupool.core.cycle_scratch import CycleScratch
from gpupool.core.decisions import Decision, Preempt, Reason
from gpupool.core.job import TaskGroup
from gpupool.core.job_state import JobState
from gpupool.core.pool_state import Memo, PoolState, Trial
from gpupool.core.running_groups import RunGroup


def lost_work(j: JobState, now: int) -> int:
    """GPU-ms a preemption of ``j`` now would throw away (since its last checkpoint)."""
    ran = now - j.start_ms
    ci = j.spec.checkpoint_interval_ms
    if ci > 0:
        ran %= ci
    return ran * j.gpus


class Preemptor:
    """The preemptions of one pool state."""

    def __init__(self, state: PoolState) -> None:
        self.state = state
        #: per cycle, valid while the state's version holds: is a preemption for
        #: (project, class, pools, accelerators) hopeless
        self._hopeless: Memo[tuple[int, int, tuple[int, ...], int], bool] = Memo(state)

    def new_cycle(self) -> None:
        """A cycle starts: what it memoised about hopeless searches is stale."""
        self._hopeless.clear()

    # -- the victim search ---------------------------------------------------------------

    def hopeless(self, project: int, rank: int, pools: tuple[int, ...], gpus: int) -> bool:
        """Would ``try_for`` pass over every one of these pools without a scan?

        True when each pool lacks ``gpus`` schedulable accelerators, or the project is past
        its guarantee there and the classes below ``rank`` hold too few to make room (its
        bound). Monotone: hopeless for ``gpus`` implies hopeless for more, and for a higher
        ``rank``.
        """
        state = self.state
        key = (project, rank, pools, gpus)
        got = self._hopeless.get(key)
        if got is not None:
            return got
        pl = state.capacity.pools
        rank_gpus = state.groups.rank_gpus
        hopeless = True
        for pi in pools:
            p = pl[pi]
            if p.schedulable < gpus:
                continue
            if state.has_guarantees and state.ledger.within_guarantee(project, p.model, gpus):
                hopeless = False
                break
            if sum(rank_gpus[pi][rank + 1 :]) + p.free >= gpus:
                hopeless = False
                break
        return self._hopeless.put(key, hopeless)

    def try_for(self, j: JobState, avail: Sequence[int], cyc: CycleScratch) -> bool:
        """Free room for ``j`` by preempting the jobs that lose least; True if it started."""
        state = self.state
        capacity = state.capacity
        cyc.preempt_attempts += 1
        now = cyc.now
        ledger = state.ledger
        min_runtime = state.config.min_runtime_ms
        for pi in avail:
            p = capacity.pools[pi]
            if p.schedulable < j.gpus:
                continue
            model = p.model
            within = state.has_guarantees and ledger.within_guarantee(j.project, model, j.gpus)
            mine = ledger.guarantee_holder(j.project, model)
            # Groups of running jobs (project, class) that may hold victims: a lower class,
            # or, for a job within its guarantee, borrowers under another guarantee. Their
            # total bounds what a preemption could free, so a hopeless pool costs no scan.
            # A victim under another tenant's guarantee is taken only from what that tenant
            # holds above it (``spare``, per guarantee holder): a priority preemption of a job
            # within its guarantee was undone by a reclaim at the next cycle, and back, every
            # cycle; a reclaim takes while the victim's tenant still borrows.
            groups: list[tuple[RunGroup, Reason, tuple[int, str] | None]] = []
            bound = 0
            holder_of: dict[int, tuple[int, str] | None] = {}
            for (project, rank), g in state.groups.groups[pi].items():
                if project in holder_of:
                    h = holder_of[project]
                else:
                    h = holder_of[project] = ledger.guarantee_holder(project, model)
                if rank > j.rank:
                    why = Reason.PRIORITY
                elif within and h != mine and ledger.borrowing(project, model):
                    why = Reason.RECLAIM
                else:
                    continue
                groups.append((g, why, None if h == mine else h))
                bound += g.gpus
            if bound + p.free < j.gpus:
                continue
            victims = []
            freeable = 0
            for g, why, h in groups:
                for v in g.jobs.values():
                    # ``lost_work`` inline: this loop runs over every running job of the
                    # pool's victim groups, a few thousand per cycle at national scale
                    ran = now - v.start_ms
                    if ran < min_runtime:
                        continue
                    gpus = v.spec.gpus
                    freeable += gpus
                    ci = v.spec.checkpoint_interval_ms
                    lost = (ran % ci if ci > 0 else ran) * gpus
                    victims.append((lost, -v.rank, -v.start_ms, v.seq, v, why, h))
            if freeable + p.free < j.gpus:
                continue
            # least lost work first (seq breaks ties, so the order is total); taken lazily
            heapq.heapify(victims)
            taken: list[tuple[JobState, Reason]] = []
            trial = state.trial()
            spare: dict[tuple[int, str], int] = {}
            plan = None
            shape: Sequence[TaskGroup] = j.spec.shape(p.gpus_per_node)
            while victims:
                *_, v, why, h = heapq.heappop(victims)
                if h is not None:
                    left = spare.get(h)
                    if left is None:
                        left = ledger.held_of(*h) - state.tenancy.nodes[h[0]].guaranteed[h[1]]
                    if left < (v.gpus if why is Reason.PRIORITY else 1):
                        continue
                    spare[h] = left - v.gpus
                trial.release(v.placement)
                taken.append((v, why))
                if p.free >= j.gpus:
                    plan = capacity.plan(pi, j.gpus, shape, j.spec.topology)
                    if plan is not None:
                        break
            if plan is None or ledger.borrow_limit_hit(j.project, model, j.gpus) is not None:
                trial.rollback()  # put everything back
                continue
            # enact: the victims' accelerators are already free, and the plan was made on
            # exactly the capacity their preemption leaves, less the victims it does not need
            needed = self._unneeded_back(trial, taken, plan)
            trial.commit()
            for v, why in needed:
                detail = f"for job {j.spec.id}" + (
                    " (reclaiming a guarantee)" if why is Reason.RECLAIM else ""
                )
                self.preempt(v, now, cyc.out, why, detail, released=True)
            state.start(j, pi, plan, now, cyc.out)
            return True
        return False

    def _unneeded_back(
        self, trial: Trial, taken: list[tuple[JobState, Reason]], plan: Sequence[tuple[int, int]]
    ) -> list[tuple[JobState, Reason]]:
        """The victims a plan needs; the others get their accelerators back (taken again).

        Victims are released in least-lost-work order across the pool until the plan fits,
        so most of them may sit on nodes the plan does not use (a gang that needs one rack
        freed jobs all over the pool): preempting those threw their work away for nothing
        and they restarted, often on the same accelerators. Tried last taken first; a victim
        goes back when every node it holds keeps what the plan takes there.
        """
        need: dict[int, int] = {}
        for node, count in plan:
            need[node] = need.get(node, 0) + count
        free = self.state.capacity.free
        kept: list[tuple[JobState, Reason]] = []
        for v, why in reversed(taken):
            if all(free[node] - len(ids) >= need.get(node, 0) for node, ids in v.placement):
                trial.retake(v.placement)
            else:
                kept.append((v, why))
        kept.reverse()
        return kept

    # -- enacting ------------------------------------------------------------------------

    def preempt(
        self, j: JobState, now: int, out: list[Decision], reason: Reason, detail: str, released: bool = False
    ) -> None:
        """Stop ``j`` with a ``Preempt`` and put it back in its queue (``released``: its
        accelerators already are free)."""
        state = self.state
        out.append(Preempt(j.spec.id, j.allocation_id, reason, detail))
        state.stop(j, now, released)
        j.preemptions += 1
        j.reason, j.detail = Reason.PREEMPTED, detail
        j.wait_sig = None
        state.enqueue(j)
