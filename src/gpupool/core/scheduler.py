"""The scheduler: state changes only through events; each cycle returns decisions.

This module owns ``Scheduler`` (the in-memory state of one scheduling domain set: pending
and running jobs over a fleet's capacity and a tenancy's ledger) and its cycle:

1. apply the batch of events (submissions, finishes, cancellations, node changes);
2. order pending work by the policy (sub-queues per candidate pools x project x class,
   merged lazily, so no cycle re-sorts the whole queue);
3. place what fits, tightest topology first; with strict order a job that does not fit
   blocks its pools; with EASY backfill it gets a reservation from walltimes and later
   jobs may only use those pools without delaying it;
4. preempt: reclaim borrowed capacity for a tenant under its guarantee, or make room for
   a higher priority class, choosing victims that lose the least work; preemptive
   policies (srtf, las) recompute the wanted set of running jobs every cycle;
5. explain: every job that was looked at and still waits has a reason code.

Parts of the cycle live in modules of their own, each given the scheduler: preemption
(victim search and enactment, and the cycle of srtf/las/tiresias) in
``gpupool.core.preemption``; what waiting jobs were told and the bulk pass of an EASY cycle
in ``gpupool.core.waiting``; EASY reservations and shadow times in
``gpupool.core.reservations``; a job's candidate pools and the candidate sets in
``gpupool.core.candidates``; the fair-share order of sub-queues in
``gpupool.core.fairshare``; round-based policies in ``gpupool.core.heterogeneity``; the
tiresias queues in ``gpupool.core.tiresias``; estimated starts in ``gpupool.core.estimate``;
the invariants in ``gpupool.core.invariants``; restoring after a restart in
``gpupool.core.restore``. The state they read and change is this module's ``Scheduler``,
and ``handle`` remains the one entry point. ``SchedulerConfig``
(``gpupool.core.scheduler_config``) and ``JobState`` (``gpupool.core.job_state``) are
defined apart and importable from here.

No I/O, no clock, no randomness: ``handle(events, now)`` is a function of the state and
its arguments, so the simulator and the live service get the same decisions.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from gpupool.core import estimate, invariants, restore
from gpupool.core.candidates import CandidatePools
from gpupool.core.capacity import Capacity
from gpupool.core.decisions import Decision, Explain, Reason, Reject, Start, Stop
from gpupool.core.events import (
    Event,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeDown,
    NodeDrained,
    NodeUp,
    Tick,
)
from gpupool.core.fairshare import FairShareOrder
from gpupool.core.fleet import Fleet, Level
from gpupool.core.heterogeneity import RoundMechanism, portable_order
from gpupool.core.job import PRIORITY_CLASSES, JobError, JobSpec
from gpupool.core.job_state import DONE as DONE
from gpupool.core.job_state import PENDING as PENDING
from gpupool.core.job_state import RUNNING as RUNNING
from gpupool.core.job_state import JobState as JobState
from gpupool.core.ledger import Ledger
from gpupool.core.policy import Policy, get_policy
from gpupool.core.preemption import Preemptor
from gpupool.core.reservations import Reservation, reserve
from gpupool.core.scheduler_config import SchedulerConfig as SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.core.throughput import ThroughputTable
from gpupool.core.tiresias import Promoter
from gpupool.core.tiresias import key as tiresias_key
from gpupool.core.waiting import DELAY, WaitingJobs

PREEMPTIBLE_RANK = PRIORITY_CLASSES["preemptible"]


@dataclass(slots=True)
class _Cycle:
    """Scratch state of one cycle."""

    now: int
    out: list[Decision]
    blocked: set[int] = field(default_factory=set)
    reservations: dict[int, Reservation] = field(default_factory=dict)
    preempt_attempts: int = 0
    failures: int = 0
    #: failures per project (``SchedulerConfig.backfill_depth_per_project``)
    project_failures: dict[int, int] = field(default_factory=dict)
    #: why the last ``_try_start(explain=False)`` failed, for the caller to say
    why: tuple[Reason, str] = (Reason.QUEUED, "")


class Scheduler:
    """The pure scheduling core. Drive it with ``handle(events, now)``."""

    def __init__(self, fleet: Fleet, tenancy: Tenancy, config: SchedulerConfig | None = None) -> None:
        self.fleet = fleet
        self.tenancy = tenancy
        self.config = config or SchedulerConfig()
        self.policy: Policy = get_policy(self.config.policy)
        self.capacity = Capacity(fleet)
        self.ledger = Ledger(tenancy, self.config.decay_half_life_ms)
        self.jobs: dict[str, JobState] = {}
        self.running: dict[int, JobState] = {}
        self._seq = 0
        # sub-queues of pending jobs: (candidate-set id, project, rank) -> sorted (skey, seq)
        self._queues: dict[tuple[int, int, int], SortedList] = {}
        self._by_seq: dict[int, JobState] = {}
        self._pending = 0
        #: candidate pools of jobs and the candidate sets sub-queues are keyed by
        self._cands = CandidatePools(self)
        #: per candidate set id: its pools (``CandidatePools.sets``, read by the cycle's parts)
        self._candset_list = self._cands.sets
        # running jobs per pool by expected end, for EASY shadow times and victim search
        self._running_by_pool: list[SortedList] = [SortedList() for _ in self.capacity.pools]
        self._has_guarantees = any(n.guaranteed for n in tenancy.nodes)
        self._node_jobs: dict[int, set[int]] = {}
        #: per project: does any tree node on its path have a GPU-hour budget
        self._budgeted = [
            any(tenancy.nodes[i].budget_gpu_hours is not None for i in tenancy.ancestors(k))
            for k in range(len(tenancy.nodes))
        ]
        self._resolved: dict[str, int | None] = {}
        #: "A/B" labels of the models of a set of pools (reason details)
        self._model_labels: dict[tuple[int, ...], str] = {}
        #: bumped by every start, stop and queue change (what moves a tenant's usage or a
        #: sub-queue's head): what a cycle memoises is valid while it holds
        self._version = 0
        #: the fair-share prefixes of sub-queues and what they memoise
        self._fairshare = FairShareOrder(self)
        #: running jobs grouped for victim searches; preemptions and the srtf/las cycle
        self._preemption = Preemptor(self)
        #: pending jobs told why they wait, indexed for the bulk pass of an EASY cycle
        self._waits = WaitingJobs(self)
        #: pools whose jobs or capacity changed since the last cycle (preemptive policies
        #: re-decide only there: elsewhere the wanted set cannot have changed)
        self._dirty: set[int] = set()
        #: throughput per (class, model): read by aware policies and "effective" usage
        self.throughputs = self.config.throughputs or ThroughputTable.from_catalogue(fleet.catalogue)
        self.throughputs.require_models(sorted({p.model for p in self.capacity.pools}))
        self._rounds = RoundMechanism(self) if self.policy.allocation else None
        self._promoter = Promoter(self.config.tiresias) if self.policy.key == "queue" else None

    # -- public API ----------------------------------------------------------------------

    def handle(self, events: Iterable[Event], now: int) -> list[Decision]:
        """Apply a batch of events at time ``now`` (ms) and run one cycle; return decisions."""
        out: list[Decision] = []
        for ev in events:
            self._apply(ev, now, out)
        self._cycle(now, out)
        return out

    @property
    def pending_count(self) -> int:
        return self._pending

    def busy_gpus(self) -> int:
        return sum(j.gpus for j in self.running.values())

    def job(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id)

    def pending_jobs(self) -> list[JobState]:
        """Pending jobs in policy order (static keys; fair-share prefixes evaluated now)."""
        out: list[JobState] = []
        for q in self._queues.values():
            out.extend(self._by_seq[e[-1]] for e in q)
        out.sort(key=lambda j: (j.rank if self.policy.by_rank else 0, j.skey))
        return out

    # -- events --------------------------------------------------------------------------

    def _apply(self, ev: Event, now: int, out: list[Decision]) -> None:
        if isinstance(ev, JobSubmitted):
            self._submit(ev.spec, now, out)
        elif isinstance(ev, JobFinished):
            j = self.jobs.get(ev.job_id)
            if j is None or j.status != RUNNING or j.allocation_id != ev.allocation_id:
                return  # stale: that allocation was already preempted or cancelled
            self._stop_running(j, now)
            j.status = DONE
            self._forget(j)
        elif isinstance(ev, JobCancelled):
            j = self.jobs.get(ev.job_id)
            if j is None or j.status == DONE:
                return
            if j.status == RUNNING:
                out.append(Stop(j.spec.id, j.allocation_id, Reason.CANCELLED))
                self._stop_running(j, now)
            else:
                self._dequeue(j)
            j.status = DONE
            j.reason = Reason.CANCELLED
            self._forget(j)
        elif isinstance(ev, NodeDown | NodeDrained | NodeUp):
            idx = self.fleet.node_by_name.get(ev.node)
            if idx is None:
                raise ValueError(f"unknown node {ev.node!r}")
            self.capacity.set_schedulable(idx, isinstance(ev, NodeUp))
            self._dirty.add(self.capacity.node_pool[idx])
            if isinstance(ev, NodeDown):
                for seq in sorted(self._node_jobs.get(idx, ())):
                    j = self._by_seq[seq]
                    self._preemption.preempt(j, now, out, Reason.NODE_DOWN, f"node {ev.node} is down")
        elif isinstance(ev, Tick):
            if self.policy.key in ("attained", "queue"):
                # attained service grows with time: the order may change anywhere
                self._dirty.update(range(len(self.capacity.pools)))
            if self._promoter is not None:
                self._promoter.promote(self, now)
            if self._rounds is not None:
                self._rounds.tick()
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"not an event: {ev!r}")

    def _forget(self, j: JobState) -> None:
        # Finished jobs leave the state: a long simulation must not grow without bound.
        self.jobs.pop(j.spec.id, None)
        self._by_seq.pop(j.seq, None)

    def _submit(self, spec: JobSpec, now: int, out: list[Decision]) -> None:
        try:
            spec.validate()
        except JobError as e:
            out.append(Reject(spec.id, Reason.INVALID, str(e)))
            return
        if spec.id in self.jobs:
            out.append(Reject(spec.id, Reason.INVALID, f"job {spec.id!r} already exists"))
            return
        if spec.project in self._resolved:
            project = self._resolved[spec.project]
        else:
            project = self._resolved[spec.project] = self.tenancy.resolve(spec.project)
        if project is None:
            out.append(Reject(spec.id, Reason.UNKNOWN_PROJECT, f"unknown project {spec.project!r}"))
            return
        cands, why = self._cands.of(spec, project)
        if not cands:
            out.append(Reject(spec.id, Reason.UNSCHEDULABLE, why))
            return
        rank = spec.rank
        over = self.ledger.over_budget(project, now) if self._budgeted[project] else None
        if over is not None:
            if self.tenancy.nodes[project].over_budget == "reject":
                out.append(Reject(spec.id, Reason.OVER_BUDGET, f"{over} is past its GPU-hour budget"))
                return
            rank = PREEMPTIBLE_RANK
        self._seq += 1
        j = JobState(spec, self._seq, project, cands, rank)
        if over is not None:
            j.reason, j.detail = Reason.OVER_BUDGET, f"{over} is past its budget: runs as preemptible"
        self.jobs[spec.id] = j
        self._by_seq[j.seq] = j
        self._enqueue(j)
        self._dirty.update(cands)

    # -- restoring after a restart -------------------------------------------------------
    # The service rebuilds the core from its database with these (``gpupool.core.restore``).

    def restore_pending(
        self, spec: JobSpec, *, attempt: int = 0, run_ms: int = 0, attained: float = 0.0, preemptions: int = 0
    ) -> None:
        """Put back a pending job with the service it already had (after a restart).

        Unlike a submission it keeps its attempts, run time and attained service, so ``las``
        and ``srtf`` order it as before the restart. No decision, no cycle. ValueError if the
        job is invalid, its project is unknown or it could never be placed.
        """
        restore.restore_pending(
            self, spec, attempt=attempt, run_ms=run_ms, attained=attained, preemptions=preemptions
        )

    def restore_running(
        self,
        spec: JobSpec,
        placement: Sequence[tuple[str, Sequence[int]]],
        start_ms: int,
        attempt: int,
        run_ms: int = 0,
        attained: float = 0.0,
    ) -> None:
        """Put back a job that was running on exactly these accelerators (after a restart).

        The live service rebuilds the core from its database with this; it makes no decision.
        ValueError if the job is invalid, its project or a node is unknown, the placement
        spans pools or does not hold the job's accelerators, or an accelerator is taken.
        """
        restore.restore_running(self, spec, placement, start_ms, attempt, run_ms, attained)

    def restore_usage(self, project: str, model: str, gpus: int, at_ms: int) -> None:
        """Replay one change of held accelerators (``gpus`` < 0 to release) into the ledger.

        For fair-share history after a restart: call in time order, interleaved with
        ``restore_running``, since the ledger is closed-form in time and must see every
        change in the order it happened.
        """
        restore.restore_usage(self, project, model, gpus, at_ms)

    # -- the pending queue ---------------------------------------------------------------

    def _static_key(self, j: JobState) -> tuple[float, ...]:
        k = self.policy.key
        if k == "submit":
            return (j.spec.submit_ms, j.seq)
        if k == "duration":
            return (j.spec.duration_hint_ms, j.spec.submit_ms, j.seq)
        if k == "remaining":
            return (self._remaining(j), j.spec.submit_ms, j.seq)
        if k == "queue":
            return tiresias_key(j.attained, j, self.config.tiresias)
        return (j.attained, j.spec.submit_ms, j.seq)

    def _enqueue(self, j: JobState) -> None:
        j.status = PENDING
        j.skey = self._static_key(j)
        j.qkey = (self._cands.set_id(j.candidates), j.project, j.rank if self.policy.by_rank else 0)
        q = self._queues.get(j.qkey)
        if q is None:
            q = self._queues[j.qkey] = SortedList()
        q.add(j.skey)
        if j.wait_sig is not None:
            self._waits.add(j)
        self._pending += 1
        self._version += 1

    def _dequeue(self, j: JobState) -> None:
        q = self._queues[j.qkey]
        q.remove(j.skey)
        if not q:
            del self._queues[j.qkey]
        if j.wait_sig is not None:
            self._waits.remove(j)
        self._pending -= 1
        self._version += 1

    # -- running -------------------------------------------------------------------------

    def _walltime(self, j: JobState) -> int:
        s = j.spec
        if s.walltime_ms > 0:
            return s.walltime_ms
        if s.duration_hint_ms > 0:
            return s.duration_hint_ms
        return self.config.default_walltime_ms

    def _remaining(self, j: JobState) -> int:
        """Estimated run time left: a walltime restarts whole, a duration hint does not."""
        if j.spec.walltime_ms > 0:
            return j.spec.walltime_ms
        return max(1, self._walltime(j) - j.run_ms)

    def _start(
        self, j: JobState, pool: int, plan: Sequence[tuple[int, int]], now: int, out: list[Decision]
    ) -> None:
        self._dequeue(j)
        p = self.capacity.pools[pool]
        placement = self.capacity.apply(plan)
        j.status = RUNNING
        j.attempt += 1
        j.allocation_id = f"{j.spec.id}#{j.attempt}"
        j.pool = pool
        j.placement = placement
        j.start_ms = now
        j.expected_end = now + self._remaining(j)
        j.reason, j.detail, j.reserved_start = Reason.QUEUED, "", -1
        j.wait_sig = None
        self.running[j.seq] = j
        self._running_by_pool[pool].add((j.expected_end, j.seq))
        self._preemption.add(j, pool)
        for node, _ in placement:
            self._node_jobs.setdefault(node, set()).add(j.seq)
        self.ledger.change(j.project, p.model, j.gpus, now, self._usage_rate(j.spec, p.model))
        self._fairshare.held_changed(j.project)
        self._version += 1
        names = self.fleet.nodes
        out.append(
            Start(
                j.spec.id,
                j.allocation_id,
                self.fleet.clusters[p.cluster].name,
                p.model,
                tuple((names[n].name, ids) for n, ids in placement),
                resumed=j.preemptions > 0,
            )
        )

    def _usage_rate(self, spec: JobSpec, model: str) -> float | None:
        """Usage per ms of a job on ``model``: None (raw: its accelerators) or effective."""
        if self.config.usage == "raw":
            return None
        return spec.gpus * self.throughputs.speed(spec.workload_class, model, spec.gpus)

    def _stop_running(self, j: JobState, now: int, released: bool = False) -> None:
        """Bookkeeping of a running job that stops (``released``: its accelerators already are)."""
        p = self.capacity.pools[j.pool]
        if not released:
            self.capacity.undo(j.placement)
        for node, _ in j.placement:
            s = self._node_jobs.get(node)
            if s is not None:
                s.discard(j.seq)
        self._running_by_pool[j.pool].remove((j.expected_end, j.seq))
        self._preemption.remove(j)
        self._dirty.add(j.pool)
        del self.running[j.seq]
        rate = self._usage_rate(j.spec, p.model)
        self.ledger.change(j.project, p.model, -j.gpus, now, None if rate is None else -rate)
        self._fairshare.held_changed(j.project)
        self._version += 1
        ran = now - j.start_ms
        j.run_ms += ran
        j.attained += ran * j.gpus
        j.placement = ()
        j.pool = -1

    # -- the cycle -----------------------------------------------------------------------

    def _cycle(self, now: int, out: list[Decision]) -> None:
        if self._rounds is not None:
            self._rounds.cycle(now, out)
            return
        if self.policy.preemptive:
            self._preemption.policy_cycle(now, out)
            return
        if not self._pending:
            return
        cyc = _Cycle(now, out)
        fairshare = self._fairshare
        fairshare.new_cycle()
        self._preemption.new_cycle()
        self._waits.new_cycle()
        max_attempts = self.config.max_preemption_attempts
        depth = self.config.backfill_depth
        per_project = self.config.backfill_depth_per_project
        project_failures = cyc.project_failures
        pools = self.capacity.pools
        open_free = sum(p.free for p in pools)
        can_preempt = self.config.preemption and (self._has_guarantees or self._ranks_differ())
        easy = self.config.backfill == "easy"
        heap: list[tuple[tuple[float, ...], int, tuple[int, int, int]]] = []
        cursor: dict[tuple[int, int, int], int] = {}
        if self.policy.fair:
            fairshare.first_prefixes(now, heap, cursor)
        else:
            for qkey, q in self._queues.items():
                cursor[qkey] = 0
                head = q[0]
                heap.append(((qkey[2], *head), head[-1], qkey))
        heapq.heapify(heap)
        by_fair, by_seq, bulk_fail = self.policy.fair, self._by_seq, self._waits.bulk_fail
        prefix_of = fairshare.prefix
        while heap:
            if cyc.failures >= depth:
                break
            key, _, qkey = heapq.heappop(heap)
            q = self._queues.get(qkey)
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
            avail: Sequence[int] = j.candidates
            if cyc.blocked:
                avail = [p for p in avail if p not in cyc.blocked]
                if not avail:
                    continue  # every job of this sub-queue shares these blocked pools
            multi_stack = len(j.spec.stacks) > 1
            if open_free <= 0 and not can_preempt:
                # Nothing is free anywhere this job could go: say so for the job at the
                # head and stop, instead of walking a queue that cannot move.
                if multi_stack:
                    avail = portable_order(self, j, list(avail))
                models = sorted({pools[p].model for p in avail})
                self._set_reason(j, Reason.RESOURCES, f"waiting for {j.gpus} x {'/'.join(models)}", out)
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
                avail = portable_order(self, j, list(avail))
                if not cyc.blocked and j.usable != (usable := tuple(sorted(avail))):
                    if j.wait_sig is not None:
                        self._waits.remove(j)  # it waited on other pools: tried in full from now
                        j.wait_sig = None
                    j.usable = usable
            # EASY says why a job waits once the reservation is settled: telling the head
            # job "resources", then "reserved", at every cycle was two decisions of noise
            started = self._try_start(j, avail, cyc, explain=not easy)
            if started:
                open_free -= j.gpus  # it started in one of ``avail``, none of them blocked
            else:
                cyc.failures += 1
                project_failures[j.project] = project_failures.get(j.project, 0) + 1
                if (cyc.why[0] if easy else j.reason) is Reason.BORROW_LIMIT:
                    if easy:
                        self._set_reason(j, *cyc.why, out)
                    continue  # the same project's next jobs would hit the same limit
                if (
                    can_preempt
                    and cyc.preempt_attempts < max_attempts
                    and (self._preemption.try_for(j, avail, cyc))
                ):
                    started = True
                    open_free = sum(p.free for p in pools if p.index not in cyc.blocked)
                elif not easy:
                    for pi in avail:
                        cyc.blocked.add(pi)
                        open_free -= pools[pi].free
                    continue
                elif not reserve(self, j, avail, cyc):
                    self._set_reason(j, *cyc.why, out)
            if not started:
                i += 1
            cursor[qkey] = i
            nq = self._queues.get(qkey)
            if nq is not None and nq is q and i < len(nq):
                heapq.heappush(heap, ((*prefix_of(qkey, now), *nq[i]), nq[i][-1], qkey))

    def _ranks_differ(self) -> bool:
        if not self.running:
            return False
        worst_running = max(j.rank for j in self.running.values())
        best_pending = min(k[2] for k in self._queues) if self.policy.by_rank else worst_running
        return best_pending < worst_running

    def _try_start(self, j: JobState, avail: Sequence[int], cyc: _Cycle, explain: bool = True) -> bool:
        """Place ``j`` in the first of ``avail`` that holds it now; set its reason if none.

        With ``explain`` False the reason is left in ``cyc.why`` for the caller to set.
        """
        cap = self.capacity
        reason, detail = Reason.RESOURCES, ""
        wall = self._walltime(j) if cyc.reservations else 0
        for pi in avail:
            p = cap.pools[pi]
            if p.free < j.gpus:
                continue
            resv = cyc.reservations.get(pi)
            fits_before = False
            if resv is not None and resv.job is not j:
                fits_before = cyc.now + wall <= resv.shadow
                if not fits_before and j.gpus > resv.extra:
                    reason, detail = Reason.RESERVATION, f"{DELAY}{resv.job.spec.id}"
                    continue
            plan = cap.plan(pi, j.gpus, j.spec.shape(p.gpus_per_node), j.spec.topology)
            if plan is None:
                reason = Reason.TOPOLOGY
                detail = f"{p.free} {p.model} free in {self.fleet.clusters[p.cluster].name} but not " + (
                    f"within one {j.spec.topology.name.lower()}"
                    if j.spec.topology < Level.CLUSTER
                    else "on few enough nodes"
                )
                continue
            hit = self.ledger.borrow_limit_hit(j.project, p.model, j.gpus)
            if hit is not None:
                reason, detail = Reason.BORROW_LIMIT, f"{hit} would exceed its borrowing limit of {p.model}"
                continue
            if resv is not None and resv.job is not j and not fits_before:
                resv.extra -= j.gpus
            if resv is not None and resv.job is j:
                del cyc.reservations[pi]
                self._version += 1
            self._start(j, pi, plan, cyc.now, cyc.out)
            return True
        if reason is Reason.RESOURCES:
            detail = f"waiting for {j.gpus} x {self._models_label(avail)}"
        if explain:
            self._set_reason(j, reason, detail, cyc.out)
        else:
            cyc.why = (reason, detail)
        return False

    def _models_label(self, pools: Sequence[int]) -> str:
        key = tuple(pools)
        label = self._model_labels.get(key)
        if label is None:
            label = self._model_labels[key] = "/".join(sorted({self.capacity.pools[p].model for p in key}))
        return label

    def _set_reason(self, j: JobState, reason: Reason, detail: str, out: list[Decision]) -> None:
        if j.reason is Reason.OVER_BUDGET and reason is not Reason.OVER_BUDGET:
            detail = f"{detail} (over budget: runs as preemptible)"
        if j.reason != reason or j.detail != detail:
            j.reason, j.detail = reason, detail
            out.append(Explain(j.spec.id, reason, detail))
            sig = self._waits.sig(j, reason, detail) if j.status == PENDING else None
            if sig != j.wait_sig:
                self._waits.change(j, sig)

    # -- estimates and invariants --------------------------------------------------------

    def estimate_starts(self, now: int) -> dict[str, int | None]:
        """An estimated start for every pending job (ms), None when none can be given.

        The fluid model of ``gpupool.core.estimate``: accelerators come free at running jobs'
        walltime ends and pending jobs take them in policy order.
        """
        return estimate.estimate_starts(self, now)

    def validate(self) -> None:
        """Check the invariants; AssertionError names the first one broken."""
        invariants.validate(self)
