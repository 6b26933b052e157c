"""Preemption: making room for a job by stopping others, and the preemptive policies' cycle.

This module owns, for one ``Scheduler``:

* its running jobs grouped per pool by (project, class), with the accelerators each group
  and each class holds: a victim search looks only at the groups that may hold victims,
  and their totals bound what it could free, so a hopeless pool costs no scan;
* the victim search when a job cannot start (``try_for``): reclaim borrowed capacity for a
  tenant under its guarantee, or make room for a higher priority class, losing the least
  work, and giving back the victims the placement does not use;
* enacting a preemption (``preempt``): the decision, the stop, the job back in its queue;
* the cycle of the preemptive policies (srtf, las, tiresias: ``policy_cycle``), which
  recomputes the wanted set of running jobs and preempts what falls out of it.

Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpupool.core.decisions import Decision, Preempt, Reason
from gpupool.core.job import PRIORITY_CLASSES, TaskGroup
from gpupool.core.tiresias import key as tiresias_key

if TYPE_CHECKING:
    from gpupool.core.scheduler import JobState, Scheduler, _Cycle

PREEMPTIBLE_RANK = PRIORITY_CLASSES["preemptible"]


@dataclass(slots=True, eq=False)
class _RunGroup:
    """Running jobs of one (project, class) in one pool, and the accelerators they hold."""

    gpus: int = 0
    jobs: dict[int, JobState] = field(default_factory=dict)


def lost_work(j: JobState, now: int) -> int:
    """GPU-ms a preemption of ``j`` now would throw away (since its last checkpoint)."""
    ran = now - j.start_ms
    ci = j.spec.checkpoint_interval_ms
    if ci > 0:
        ran %= ci
    return ran * j.gpus


class Preemptor:
    """The preemptions of one scheduler, and the running-job groups they search."""

    def __init__(self, sched: Scheduler) -> None:
        self.s = sched
        pools = sched.capacity.pools
        #: per pool, running jobs by (project, class)
        self.groups: list[dict[tuple[int, int], _RunGroup]] = [{} for _ in pools]
        #: per pool and class: accelerators held by running jobs (preemption bounds)
        self.rank_gpus: list[list[int]] = [[0] * (PREEMPTIBLE_RANK + 1) for _ in pools]
        #: per cycle, valid while the scheduler's ``_version`` holds: is a preemption for
        #: (project, class, pools, accelerators) hopeless
        self._hopeless: dict[tuple[int, int, tuple[int, ...], int], tuple[int, bool]] = {}

    def new_cycle(self) -> None:
        """A cycle starts: what it memoised about hopeless searches is stale."""
        self._hopeless.clear()

    # -- running-job groups --------------------------------------------------------------

    def add(self, j: JobState, pool: int) -> None:
        """A job started (or was restored) in ``pool``."""
        groups = self.groups[pool]
        key = (j.project, j.rank)
        g = groups.get(key)
        if g is None:
            g = groups[key] = _RunGroup()
        g.gpus += j.gpus
        g.jobs[j.seq] = j
        self.rank_gpus[pool][j.rank] += j.gpus

    def remove(self, j: JobState) -> None:
        """A running job stops (called before it leaves its pool)."""
        groups = self.groups[j.pool]
        key = (j.project, j.rank)
        g = groups[key]
        g.gpus -= j.gpus
        del g.jobs[j.seq]
        if not g.jobs:
            del groups[key]
        self.rank_gpus[j.pool][j.rank] -= j.gpus

    # -- the victim search ---------------------------------------------------------------

    def hopeless(self, project: int, rank: int, pools: tuple[int, ...], gpus: int) -> bool:
        """Would ``try_for`` pass over every one of these pools without a scan?

        True when each pool lacks ``gpus`` schedulable accelerators, or the project is past
        its guarantee there and the classes below ``rank`` hold too few to make room (its
        bound). Monotone: hopeless for ``gpus`` implies hopeless for more, and for a higher
        ``rank``.
        """
        s = self.s
        key = (project, rank, pools, gpus)
        got = self._hopeless.get(key)
        if got is not None and got[0] == s._version:
            return got[1]
        pl = s.capacity.pools
        hopeless = True
        for pi in pools:
            p = pl[pi]
            if p.schedulable < gpus:
                continue
            if s._has_guarantees and s.ledger.within_guarantee(project, p.model, gpus):
                hopeless = False
                break
            if sum(self.rank_gpus[pi][rank + 1 :]) + p.free >= gpus:
                hopeless = False
                break
        self._hopeless[key] = (s._version, hopeless)
        return hopeless

    def try_for(self, j: JobState, avail: Sequence[int], cyc: _Cycle) -> bool:
        """Free room for ``j`` by preempting the jobs that lose least; True if it started."""
        s = self.s
        cyc.preempt_attempts += 1
        now = cyc.now
        ledger = s.ledger
        min_runtime = s.config.min_runtime_ms
        for pi in avail:
            p = s.capacity.pools[pi]
            if p.schedulable < j.gpus:
                continue
            model = p.model
            within = s._has_guarantees and ledger.within_guarantee(j.project, model, j.gpus)
            mine = ledger.guarantee_holder(j.project, model)
            # Groups of running jobs (project, class) that may hold victims: a lower class,
            # or, for a job within its guarantee, borrowers under another guarantee. Their
            # total bounds what a preemption could free, so a hopeless pool costs no scan.
            # A victim under another tenant's guarantee is taken only from what that tenant
            # holds above it (``spare``, per guarantee holder): a priority preemption of a job
            # within its guarantee was undone by a reclaim at the next cycle, and back, every
            # cycle; a reclaim takes while the victim's tenant still borrows.
            groups: list[tuple[_RunGroup, Reason, tuple[int, str] | None]] = []
            bound = 0
            holder_of: dict[int, tuple[int, str] | None] = {}
            for (project, rank), g in self.groups[pi].items():
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
                    if now - v.start_ms < min_runtime:
                        continue
                    freeable += v.gpus
                    victims.append((lost_work(v, now), -v.rank, -v.start_ms, v.seq, v, why, h))
            if freeable + p.free < j.gpus:
                continue
            # least lost work first (seq breaks ties, so the order is total); taken lazily
            heapq.heapify(victims)
            taken: list[tuple[JobState, Reason]] = []
            spare: dict[tuple[int, str], int] = {}
            plan = None
            shape: Sequence[TaskGroup] = j.spec.shape(p.gpus_per_node)
            while victims:
                *_, v, why, h = heapq.heappop(victims)
                if h is not None:
                    left = spare.get(h)
                    if left is None:
                        left = ledger.held_of(*h) - s.tenancy.nodes[h[0]].guaranteed[h[1]]
                    if left < (v.gpus if why is Reason.PRIORITY else 1):
                        continue
                    spare[h] = left - v.gpus
                s.capacity.undo(v.placement)
                taken.append((v, why))
                if p.free >= j.gpus:
                    plan = s.capacity.plan(pi, j.gpus, shape, j.spec.topology)
                    if plan is not None:
                        break
            if plan is None or ledger.borrow_limit_hit(j.project, model, j.gpus) is not None:
                # put everything back
                for v, _ in reversed(taken):
                    for node, ids in v.placement:
                        s.capacity.take(node, ids)
                continue
            # enact: the victims' accelerators are already free, and the plan was made on
            # exactly the capacity their preemption leaves, less the victims it does not need
            for v, why in self._unneeded_back(taken, plan):
                detail = f"for job {j.spec.id}" + (
                    " (reclaiming a guarantee)" if why is Reason.RECLAIM else ""
                )
                self.preempt(v, now, cyc.out, why, detail, released=True)
            s._start(j, pi, plan, now, cyc.out)
            return True
        return False

    def _unneeded_back(
        self, taken: list[tuple[JobState, Reason]], plan: Sequence[tuple[int, int]]
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
        capacity = self.s.capacity
        free = capacity.free
        kept: list[tuple[JobState, Reason]] = []
        for v, why in reversed(taken):
            if all(free[node] - len(ids) >= need.get(node, 0) for node, ids in v.placement):
                for node, ids in v.placement:
                    capacity.take(node, ids)
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
        s = self.s
        out.append(Preempt(j.spec.id, j.allocation_id, reason, detail))
        s._stop_running(j, now, released)
        j.preemptions += 1
        j.reason, j.detail = Reason.PREEMPTED, detail
        j.wait_sig = None
        s._enqueue(j)

        # -- the preemptive policies -------------------------------------------------------

    def policy_cycle(self, now: int, out: list[Decision]) -> None:
        """srtf / las: choose the wanted set over running and pending jobs, by key, each cycle.

        Jobs are taken in key order while their accelerator count fits what is left of a
        candidate pool (bigger ones are skipped, not blocking); running jobs outside the
        wanted set are preempted; wanted pending jobs are then placed where topology allows.
        """
        s = self.s
        dirty, s._dirty = s._dirty, set()
        if not s._pending or not dirty:
            return
        # Pools linked to a changed pool through some pending job's candidates.
        relevant = set(dirty)
        grew = True
        while grew:
            grew = False
            for qkey in s._queues:
                cands = s._candset_list[qkey[0]]
                if not relevant.isdisjoint(cands) and not relevant.issuperset(cands):
                    relevant.update(cands)
                    grew = True
        pools = s.capacity.pools
        left = [p.schedulable for p in pools]
        total_left = sum(left[p] for p in relevant)
        key = s.policy.key
        by_seq = s._by_seq
        running: list[tuple[tuple[float, ...], int, JobState]] = []
        for pi in relevant:
            for end, seq in s._running_by_pool[pi]:
                j = by_seq[seq]
                if key == "remaining":
                    k: tuple[float, ...] = (max(0, end - now), j.spec.submit_ms, seq)
                elif key == "queue":
                    k = tiresias_key(j.attained + (now - j.start_ms) * j.gpus, j, s.config.tiresias)
                else:
                    k = (j.attained + (now - j.start_ms) * j.gpus, j.spec.submit_ms, seq)
                running.append((k, 0, j))
        running.sort(key=lambda t: (t[0], t[1]))
        # Each sub-queue is already sorted by static key: merge them lazily, so a cycle
        # only looks at as many pending jobs as it can use.
        pending = heapq.merge(
            *(
                ((e, 1, by_seq[e[-1]]) for e in q)
                for qkey, q in s._queues.items()
                if not relevant.isdisjoint(s._candset_list[qkey[0]])
            ),
            key=lambda t: (t[0], t[1]),
        )
        wanted: list[tuple[JobState, int]] = []
        victims: list[JobState] = []
        seen: set[int] = set()
        for _, is_pending, j in heapq.merge(running, pending, key=lambda t: (t[0], t[1])):
            if total_left <= 0:
                break
            if not is_pending:
                seen.add(j.seq)
                if left[j.pool] >= j.gpus or now - j.start_ms < s.config.min_runtime_ms:
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
                s._set_reason(j, Reason.POLICY, "lower in the policy order than what runs", out)
        for _, _, j in running:
            if j.seq not in seen:
                if now - j.start_ms < s.config.min_runtime_ms:
                    continue
                victims.append(j)
        for v in victims:
            self.preempt(v, now, out, Reason.POLICY, f"{s.policy.name} order")
        s._dirty.clear()  # what this cycle changed was decided by this cycle
        for j, pi in wanted:
            p = pools[pi]
            plan = s.capacity.plan(pi, j.gpus, j.spec.shape(p.gpus_per_node), j.spec.topology)
            if plan is None:
                s._set_reason(j, Reason.TOPOLOGY, f"wanted, but {p.model} is too fragmented", out)
                continue
            s._start(j, pi, plan, now, out)
