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

from collections.abc import Iterable, Sequence

from sortedcontainers import SortedList

from gpupool.core import estimate, invariants, restore, wait_reasons
from gpupool.core.decisions import Decision, Reason, Reject, Stop
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
from gpupool.core.fleet import Fleet
from gpupool.core.heterogeneity import RoundMechanism
from gpupool.core.job import JobSpec
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

    # -- public API ----------------------------------------------------------------------

    def handle(self, events: Iterable[Event], now: int) -> list[Decision]:
        """Apply a batch of events at time ``now`` (ms) and run one cycle; return decisions."""
        out: list[Decision] = []
        state = self.state
        batching = False
        try:
            for ev in events:
                if isinstance(ev, JobSubmitted):
                    if not batching:  # a run of submissions: queue keys sorted in at once
                        state.batch()
                        batching = True
                    self._submit(ev.spec, now, out)
                else:
                    if batching:
                        state.flush()
                        batching = False
                    self._apply(ev, now, out)
        finally:
            state.flush()
        self._cycle(now, out)
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
            self._submit(ev.spec, now, out)
        elif isinstance(ev, JobFinished):
            j = self.jobs.get(ev.job_id)
            if j is None or j.status != RUNNING or j.allocation_id != ev.allocation_id:
                return  # stale: that allocation was already preempted or cancelled
            state.stop(j, now)
            j.status = DONE
            self.policy.finished(j, now)
            state.forget(j)
        elif isinstance(ev, JobCancelled):
            j = self.jobs.get(ev.job_id)
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
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"not an event: {ev!r}")

    def _submit(self, spec: JobSpec, now: int, out: list[Decision]) -> None:
        state = self.state
        try:
            project, cands, cset = state.admit(spec)
        except Refusal as e:
            out.append(Reject(spec.id, e.reason, e.detail))
            return
        rank = spec.rank
        over = self.ledger.over_budget(project, now) if state.budgeted[project] else None
        if over is not None:
            if self.tenancy.nodes[project].over_budget == "reject":
                out.append(Reject(spec.id, Reason.OVER_BUDGET, f"{over} is past its GPU-hour budget"))
                return
            rank = PREEMPTIBLE_RANK
        j = state.new_job(spec, project, cands, rank, cset)
        if over is not None:
            j.reason, j.detail = Reason.OVER_BUDGET, f"{over} is past its budget: runs as preemptible"
        state.enqueue(j)
        state.dirty.update(cands)

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

    def restore_usage(self, project: str, model: str, gpus: int, at_ms: int) -> None:
        """Replay one change of held accelerators (``gpus`` < 0 to release) into the ledger.

        For fair-share history after a restart: call in time order, interleaved with
        ``restore_running``, since the ledger is closed-form in time and must see every
        change in the order it happened.
        """
        restore.restore_usage(self.state, project, model, gpus, at_ms)

    # -- estimates and invariants --------------------------------------------------------

    def estimate_starts(self, now: int) -> dict[str, int | None]:
        """An estimated start for every pending job (ms), None when none can be given.

        The fluid model of ``gpupool.core.estimate``: accelerators come free at running jobs'
        walltime ends and pending jobs take them in the order the cycle uses (``policy_order``).
        """
        return estimate.estimate_starts(self.state, now, self.policy_order(now))

    def queue_positions(self, now: int) -> dict[str, tuple[str, int]]:
        """Per pending job: the pool it waits for ("H100 in c0") and its 1-based place in
        that pool's order (the estimate's walk, ``gpupool.core.estimate.estimate_queue``)."""
        _, places = estimate.estimate_queue(self.state, now, self.policy_order(now))
        pools, clusters = self.capacity.pools, self.fleet.clusters
        labels = [f"{p.model} in {clusters[p.cluster].name}" for p in pools]
        return {jid: (labels[pool], place) for jid, (pool, place) in places.items()}

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
