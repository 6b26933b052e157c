"""The scheduler: state changes only through events; each cycle returns decisions.

This module owns ``Scheduler``, the one entry point of the pure core: ``handle(events,
now)`` applies a batch of events (submissions, finishes, cancellations, node changes,
ticks) to the pool state and runs one cycle of the policy's pass, returning the decisions.

It composes the parts, each given the pool state (``gpupool.core.pool_state``: the jobs,
sub-queues, running sets, capacity and ledger, and the primitives that change them) and its
peers when it is made:

* the fair-share order of sub-queues (``gpupool.core.fairshare``);
* the victim search and preemptions (``gpupool.core.preemption``);
* the bulk pass of an EASY cycle (``gpupool.core.waiting``);
* one of three passes, by policy: the queue pass with strict order or EASY backfill and
  reservations (``gpupool.core.queue_pass``, ``gpupool.core.reservations``), the wanted-set
  pass of the preemptive policies (``gpupool.core.wanted_set_pass``), or Gavel's rounds
  (``gpupool.core.heterogeneity``);
* tiresias' starvation rule (``gpupool.core.tiresias_promoter``);
* the wait reasons of the jobs a pass did not reach (``gpupool.core.wait_reasons``);
* estimated starts (``gpupool.core.estimate``), the invariants
  (``gpupool.core.invariants``) and restoring after a restart (``gpupool.core.restore``).

``SchedulerConfig`` (``gpupool.core.scheduler_config``) and ``JobState``
(``gpupool.core.job_state``) are defined apart and importable from here.

No I/O, no clock, no randomness: ``handle(events, now)`` is a function of the state and
its arguments, so the simulator and the live service get the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sortedcontainers import SortedList

from gpupool.core import estimate, invariants, restore, wait_reasons
from gpupool.core.decisions import Decision, Preempt, Reason, Reject, Start, Stop
from gpupool.core.dependencies import Milestone, Verdict
from gpupool.core.events import (
    Event,
    JobCancelled,
    JobFinished,
    JobSubmitted,
    NodeDown,
    NodeDrained,
    NodeUp,
    ReservationCreated,
    ReservationDeleted,
    Tick,
)
from gpupool.core.fairshare import FairShareOrder
from gpupool.core.fleet import Fleet
from gpupool.core.held_jobs import UNKNOWN, Held, HeldJobs, Unknown
from gpupool.core.heterogeneity import RoundMechanism
from gpupool.core.job import JobSpec
from gpupool.core.job_arrays import JobArray, JobArrays, TaskState
from gpupool.core.job_state import DONE as DONE
from gpupool.core.job_state import PENDING as PENDING
from gpupool.core.job_state import RUNNING as RUNNING
from gpupool.core.job_state import JobState as JobState
from gpupool.core.policies import Pass, Policy, get_policy
from gpupool.core.pool_state import PREEMPTIBLE_RANK, PoolState, Refusal
from gpupool.core.preemption import Preemptor
from gpupool.core.queue_pass import QueuePass
from gpupool.core.scheduler_config import SchedulerConfig as SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.core.tiresias_promoter import Promoter
from gpupool.core.waiting import WaitingJobs
from gpupool.core.wanted_set_pass import WantedSetPass


class Scheduler:
    """The pure scheduling core. Drive it with ``handle(events, now)``."""

    def __init__(self, fleet: Fleet, tenancy: Tenancy, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self.policy: Policy = get_policy(self.config.policy).bind()
        state = self.state = PoolState(fleet, tenancy, self.config, self.policy)
        self.fleet = fleet
        self.tenancy = tenancy
        self.capacity = state.capacity
        self.ledger = state.ledger
        self.throughputs = state.throughputs
        #: the state's jobs by id, and its running jobs by sequence number (read-only views
        #: for drivers: change them only through events)
        self.jobs = state.jobs
        self.running = state.running
        self._fairshare = FairShareOrder(state)
        self._preemption = Preemptor(state)
        self._waits = WaitingJobs(state, self._preemption)
        self._queue_pass = QueuePass(state, self._fairshare, self._preemption, self._waits)
        cycle = self.policy.cycle
        self._rounds = RoundMechanism(state, self._preemption) if cycle is Pass.ROUNDS else None
        self._wanted = WantedSetPass(state, self._preemption) if cycle is Pass.WANTED_SET else None
        self._promoter = Promoter(self.config.tiresias) if self.policy.promotes else None
        #: jobs held on their dependencies, outside every queue (read-only for drivers)
        self.held = HeldJobs()
        #: job arrays, their tasks queued a window at a time (read-only for drivers)
        self.arrays = JobArrays()

    # -- public API ----------------------------------------------------------------------

    def handle(self, events: Iterable[Event], now: int) -> list[Decision]:
        """Apply a batch of events at time ``now`` (ms) and run one cycle; return decisions."""
        out: list[Decision] = []
        self.held.recent.clear()
        state = self.state
        batching = False
        try:
            for ev in events:
                if isinstance(ev, JobSubmitted):
                    if not batching:  # a run of submissions: queue keys sorted in at once
                        state.batch()
                        batching = True
                    self._submit(ev.spec, now, out, ev.settled)
                else:
                    if batching:
                        state.flush()
                        batching = False
                    self._apply(ev, now, out)
        finally:
            state.flush()
        self._cycle(now, out)
        if self.held.waiters or self.arrays.tasks:
            self._after_starts(now, out)
        return out

    @property
    def pending_count(self) -> int:
        return self.state.pending

    def busy_gpus(self) -> int:
        return sum(j.gpus for j in self.running.values())

    def refusal(self, spec: JobSpec) -> tuple[Reason, str] | None:
        """Why a submission of ``spec`` would be refused now (reason code, detail), else None.

        The admission rule a submission meets (``PoolState.admit``), asked before the job
        is written: a driver refuses at once what could never start (no pool could hold it,
        or a guarantee plus borrowing limit on its tenant path caps it below its size)
        instead of accepting it and rejecting it a cycle later. Changes no state (the limit
        memo aside, whose entries are the same whoever writes them); the job's id is not
        judged (it is the driver's).
        """
        try:
            spec.validate()
        except ValueError as e:
            return Reason.INVALID, str(e)
        state = self.state
        project = state.tenancy.resolve(spec.project)
        if project is None:
            return Reason.UNKNOWN_PROJECT, f"unknown project {spec.project!r}"
        # ``find`` and ``within_limits``, not ``admit``: they read the fleet and tenancy only
        # (no candidate-set ids are made), so a driver's request thread may ask
        cands, why = state.cands.find(spec, project)
        if not cands:
            return Reason.UNSCHEDULABLE, why
        allowed, why = state.cands.within_limits(project, spec.gpus, cands)
        if not allowed:
            return Reason.OVER_LIMIT, why
        return None

    def job(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id)

    def pending_jobs(self) -> list[JobState]:
        """Pending jobs in policy order (static keys; fair-share prefixes not applied)."""
        return self.state.pending_jobs()

    # -- events --------------------------------------------------------------------------

    def _apply(self, ev: Event, now: int, out: list[Decision]) -> None:
        state = self.state
        if isinstance(ev, JobSubmitted):
            self._submit(ev.spec, now, out, ev.settled)
        elif isinstance(ev, JobFinished):
            j = self.jobs.get(ev.job_id)
            if j is None or j.status != RUNNING or j.allocation_id != ev.allocation_id:
                return  # stale: that allocation was already preempted or cancelled
            state.stop(j, now)
            j.status = DONE
            self.policy.finished(j, now)
            state.forget(j)
            ok = ev.outcome == "completed"
            self._reached(ev.job_id, Milestone.SUCCEEDED if ok else Milestone.FAILED, now, out)
        elif isinstance(ev, JobCancelled):
            j = self.jobs.get(ev.job_id)
            if j is None and self.held.cancel(ev.job_id):
                self._reached(ev.job_id, Milestone.FAILED, now, out)
            if j is None and self.arrays.arrays:
                self._cancel_in_array(ev.job_id, now, out)
            if j is None or j.status == DONE:
                return
            if j.status == RUNNING:
                out.append(Stop(j.spec.id, j.allocation_id, Reason.CANCELLED))
                state.stop(j, now)
            else:
                state.dequeue(j)
            j.status = DONE
            j.reason = Reason.CANCELLED
            state.forget(j)
            self._reached(ev.job_id, Milestone.FAILED, now, out)
        elif isinstance(ev, NodeDown | NodeDrained | NodeUp):
            idx = self.fleet.node_by_name.get(ev.node)
            if idx is None:
                raise ValueError(f"unknown node {ev.node!r}")
            self.capacity.set_schedulable(idx, isinstance(ev, NodeUp))
            state.dirty.add(self.capacity.node_pool[idx])
            if isinstance(ev, NodeDown):
                for seq in sorted(state.node_jobs.get(idx, ())):
                    j = state.by_seq[seq]
                    self._preemption.preempt(j, now, out, Reason.NODE_DOWN, f"node {ev.node} is down")
        elif isinstance(ev, Tick):
            if self.policy.ages:
                # the order changes with time alone (attained service): anywhere
                state.dirty.update(range(len(self.capacity.pools)))
            if self._promoter is not None:
                self._promoter.promote(state, now)
            if self._rounds is not None:
                self._rounds.tick()
        elif isinstance(ev, ReservationCreated | ReservationDeleted):
            state.advance.apply(ev.reservation if isinstance(ev, ReservationCreated) else ev.reservation_id)
            state.dirty.update(range(len(self.capacity.pools)))
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"not an event: {ev!r}")

    def _submit(
        self, spec: JobSpec, now: int, out: list[Decision], settled: Sequence[tuple[str, Milestone]] = ()
    ) -> None:
        state = self.state
        try:
            if spec.id in self.held:
                raise Refusal(Reason.INVALID, f"job {spec.id!r} already exists")
            project, cands, cset = state.admit(spec)
        except Refusal as e:
            out.append(Reject(spec.id, e.reason, e.detail))
            if spec.id not in self.jobs and spec.id not in self.held:  # not a duplicate's
                self._reached(spec.id, Milestone.FAILED, now, out)
            return
        if spec.dependencies:
            verdict = self.held.submit(spec, (project, cands, cset), self._milestone, dict(settled), out)
            if verdict is Verdict.NEVER:
                self._reached(spec.id, Milestone.FAILED, now, out)
            if verdict is not Verdict.MET:
                return
        if not self._enter(spec, project, cands, cset, now, out):
            self._reached(spec.id, Milestone.FAILED, now, out)

    def _enter(
        self, spec: JobSpec, project: int, cands: tuple[int, ...], cset: int, now: int, out: list[Decision]
    ) -> bool:
        """An admitted job whose dependencies are met joins its sub-queue (an array: its
        first tasks do); False if it is refused over budget."""
        state = self.state
        if spec.array is not None:
            self._top_up(self.arrays.add(spec, (project, cands, cset)), now, out)
            return True
        rank = spec.rank
        over = self.ledger.over_budget(project, now) if state.budgeted[project] else None
        if over is not None:
            if self.tenancy.nodes[project].over_budget == "reject":
                out.append(Reject(spec.id, Reason.OVER_BUDGET, f"{over} is past its GPU-hour budget"))
                return False
            rank = PREEMPTIBLE_RANK
        j = state.new_job(spec, project, cands, rank, cset)
        if over is not None:
            j.reason, j.detail = Reason.OVER_BUDGET, f"{over} is past its budget: runs as preemptible"
        state.enqueue(j)
        state.dirty.update(cands)
        return True

    # -- job arrays (``gpupool.core.job_arrays``) ------------------------------------------

    def _top_up(self, a: JobArray, now: int, out: list[Decision]) -> int:
        """Queue the array's next tasks while it has room; how many joined."""
        joined = 0
        project, cands, cset = a.admitted
        while tasks := self.arrays.next_tasks(a):
            for t in tasks:
                if self._enter(t, project, cands, cset, now, out):
                    joined += 1
                else:  # refused over budget: it ended (no recursion through _reached)
                    self.arrays.ended(t.id, TaskState.FAILED)
        if self.arrays.done(a):
            self._array_ended(a, now, out)
        return joined

    def _array_ended(self, a: JobArray, now: int, out: list[Decision]) -> None:
        self.arrays.forget(a)
        m = a.milestone()
        assert m is not None
        for h in self.held.reached(a.spec.id, m, out):
            self._release(h, now, out)

    def _cancel_in_array(self, job_id: str, now: int, out: list[Decision]) -> None:
        """Cancel a whole array (its id) or one task of it not queued yet."""
        a = self.arrays.arrays.get(job_id)
        if a is not None:
            self.arrays.cancel_waiting(a)  # first: a task cancelled below must not queue more
            live = [tid for tid, got in self.arrays.tasks.items() if got[0] is a]
            for tid in live:
                self._apply(JobCancelled(tid), now, out)
            if a.spec.id in self.arrays.arrays:
                self._array_ended(a, now, out)
            return
        found = self.arrays.find(job_id)
        if found is not None and found[0].states[found[1]] == TaskState.WAITING:
            self.arrays.cancel_waiting(found[0], found[1])
            for h in self.held.reached(job_id, Milestone.FAILED, out):
                self._release(h, now, out)
            if self.arrays.done(found[0]):
                self._array_ended(found[0], now, out)

    # -- dependencies (``gpupool.core.held_jobs``) ----------------------------------------

    def _milestone(self, job_id: str) -> Milestone | Unknown | None:
        """How far a job (or array, or task) the core holds got, else UNKNOWN."""
        j = self.jobs.get(job_id)
        if j is not None:  # a requeued job has started
            return Milestone.STARTED if j.status == RUNNING or j.attempt > 0 else None
        a = self.arrays.arrays.get(job_id)
        if a is not None:
            return a.milestone()
        found = self.arrays.find(job_id)
        return UNKNOWN if found is None else self.arrays.task_milestone(*found)

    def _reached(self, job_id: str, milestone: Milestone, now: int, out: list[Decision]) -> None:
        """A job ended (or a held one never will start): tell its array and the held jobs."""
        if job_id in self.arrays.tasks:
            ok = milestone is Milestone.SUCCEEDED
            a = self.arrays.ended(job_id, TaskState.SUCCEEDED if ok else TaskState.FAILED)
            if a is not None:
                self._top_up(a, now, out)  # a slot under its limit freed (or the array ended)
        for h in self.held.reached(job_id, milestone, out):
            self._release(h, now, out)

    def _release(self, h: Held, now: int, out: list[Decision]) -> None:
        project, cands, cset = h.admitted
        if not self._enter(h.spec, project, cands, cset, now, out):
            self._reached(h.spec.id, Milestone.FAILED, now, out)

    def _after_starts(self, now: int, out: list[Decision]) -> None:
        """After a cycle: tasks that started leave room for the next of their array, and jobs
        waiting for ``after`` a job that started are queued; the cycle runs again for them
        (until a pass queues no one), since a driver that calls only at events would leave
        them waiting on free accelerators."""
        scan = 0
        arrays, held = self.arrays, self.held
        while True:
            released: list[Held] = []
            touched: dict[str, JobArray] = {}
            for d in out[scan:]:
                if isinstance(d, Start):
                    got = arrays.started(d.job_id) if arrays.tasks else None
                    if got is not None:
                        a, first = got
                        touched[a.spec.id] = a
                        if first and a.spec.id in held.waiters:
                            released.extend(held.reached(a.spec.id, Milestone.STARTED, out))
                    if d.job_id in held.waiters:
                        released.extend(held.reached(d.job_id, Milestone.STARTED, out))
                elif isinstance(d, Preempt) and d.job_id in arrays.tasks:
                    arrays.requeued(d.job_id)
            scan = len(out)
            joined = sum(self._top_up(a, now, out) for a in touched.values())
            for h in released:
                self._release(h, now, out)
            if not (released or joined):
                return
            self._cycle(now, out)

    def _cycle(self, now: int, out: list[Decision]) -> None:
        if self._rounds is not None:
            self._rounds.cycle(now, out)
        elif self._wanted is not None:
            self._wanted.run(now, out)
        else:
            self._queue_pass.run(now, out)
        # no pending job is left "not yet considered": those the pass did not reach are
        # told from the state (only jobs without a reason are visited)
        wait_reasons.tell_untold(self.state, self._queue_pass.reserved, out)

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
            self.state, spec, attempt=attempt, run_ms=run_ms, attained=attained, preemptions=preemptions
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
        restore.restore_running(self.state, spec, placement, start_ms, attempt, run_ms, attained)

    def restore_array(
        self, spec: JobSpec, ended: Mapping[int, bool], running: Iterable[int], now: int
    ) -> None:
        """Put back a job array: its ended tasks (index -> completed) and its running ones
        (restored first with ``restore_running`` as jobs ``ARRAY_INDEX``); its next tasks
        are queued. No decision. ValueError as ``restore_pending``."""
        try:
            admitted = self.state.admit(spec)
        except Refusal as e:
            raise ValueError(f"job {spec.id!r}: {e.detail}") from None
        a = self.arrays.restore(spec, admitted, ended, running)
        self._top_up(a, now, [])

    def restore_usage(
        self, project: str, model: str, gpus: int, at_ms: int, rate: float | None = None
    ) -> None:
        """Replay one change of held accelerators (``gpus`` < 0 to release) into the ledger.

        For fair-share history after a restart: call in time order, interleaved with
        ``restore_running``, since the ledger is closed-form in time and must see every
        change in the order it happened.
        """
        restore.restore_usage(self.state, project, model, gpus, at_ms, rate)

    # -- estimates and invariants --------------------------------------------------------

    def estimate_starts(self, now: int) -> dict[str, int | None]:
        """An estimated start for every pending job (ms), None when none can be given.

        The fluid model of ``gpupool.core.estimate``: accelerators come free at running jobs'
        walltime ends and pending jobs take them in the order the cycle uses (``policy_order``).
        """
        got = estimate.estimate_starts(self.state, now, self.policy_order(now))
        return self.state.advance.delay_estimates(self.state, got) if self.state.advance else got

    def queue_positions(self, now: int) -> dict[str, tuple[str, int]]:
        """Per pending job: the pool it waits for ("H100 in c0") and its 1-based place in
        that pool's order (the estimate's walk, ``gpupool.core.estimate.estimate_queue``)."""
        return self.estimate_queue(now)[1]

    def estimate_queue(self, now: int) -> tuple[dict[str, int | None], dict[str, tuple[str, int]]]:
        """``estimate_starts`` and ``queue_positions`` from one walk (the live loop writes both)."""
        starts, places = estimate.estimate_queue(self.state, now, self.policy_order(now))
        pools, clusters = self.capacity.pools, self.fleet.clusters
        labels = [f"{p.model} in {clusters[p.cluster].name}" for p in pools]
        return starts, {jid: (labels[pool], place) for jid, (pool, place) in places.items()}

    def policy_order(self, now: int) -> list[JobState]:
        """Pending jobs in the order a cycle at ``now`` would look at them.

        The queue pass merges sub-queues by their fair-share prefix (class, whether the head
        stays within a guarantee, decayed usage over weight) then static key; other policies
        by class then static key (``PoolState.pending_jobs``). The prefixes are those at
        ``now``: the cycle moves them as jobs start, an estimate does not.
        """
        state = self.state
        if not (self.policy.fair and self._wanted is None and self._rounds is None):
            return state.pending_jobs()
        # A prefix is fixed per sub-queue; when all have one length, sub-queues with
        # different prefixes never interleave: sort the sub-queues by prefix, and
        # merge by static key only those that share one (not every job by a long tuple).
        prefix, by_seq = self._fairshare.prefix, state.by_seq
        groups: dict[tuple[float, ...], list[SortedList]] = {}
        for qkey, q in state.queues.items():
            groups.setdefault(prefix(qkey, now), []).append(q)
        if len({len(p) for p in groups}) > 1:
            # tenant paths of different depths: compare whole keys, as the cycle's heap does
            keyed = sorted((*p, *e) for p, qs in groups.items() for q in qs for e in q)
            return [by_seq[k[-1]] for k in keyed]
        out: list[JobState] = []
        for p in sorted(groups):
            qs = groups[p]
            entries = list(qs[0]) if len(qs) == 1 else sorted(e for q in qs for e in q)
            out.extend([by_seq[e[-1]] for e in entries])
        return out

    def validate(self) -> None:
        """Check the invariants; AssertionError names the first one broken."""
        invariants.validate(self.state)
