"""The discrete-event driver of the digital twin.

This module owns ``simulate``: it feeds a workload's submissions, the finishes its runtime
model predicts, and periodic ticks to the production ``Scheduler`` as events, enacts the
decisions that come back (a start schedules a finish, a preemption keeps the work up to
the last checkpoint), and records what happened to every job and to the pool.

It makes no scheduling decision of its own: every start, preemption and rejection comes
from ``gpupool.core``. The only wall clock read here measures how long each cycle took.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from gpupool.core.advance_reservations import AdvanceReservation
from gpupool.core.array_spec import parse_array, task_id
from gpupool.core.decisions import Decision, Preempt, Reason, Reject, Start, Stop
from gpupool.core.dependencies import Milestone, parse_dependencies
from gpupool.core.events import Event, JobFinished, JobSubmitted, NodeDown, NodeDrained, NodeUp, Tick
from gpupool.core.fleet import Fleet, Level
from gpupool.core.job import JobSpec, TaskGroup
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.sim.failures import FailureRates, NodeEvent, NodeEventKind, NodeFailures
from gpupool.sim.records import JobRecord, PoolSample, RunResult
from gpupool.sim.reservations_file import reservation_events
from gpupool.sim.runtime import RuntimeModel
from gpupool.sim.stall import MIN_STALL_MS, SimulationStuck, StallWatch
from gpupool.sim.workload import WorkloadJob

# Event kinds, in the order they are applied within one instant: finishes free capacity
# before arrivals are queued (as the Helios simulator does within a 1-s step); a node that
# fails at that instant takes no arrival.
_FINISH, _NODE, _SUBMIT, _TICK = 0, 1, 2, 3
#: an advance reservation made, or a window's edge (a Tick: the core decides only at events)
_RESERVE = 4


@dataclass(slots=True)
class SimConfig:
    """A simulation's settings beyond the scheduler's own."""

    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    reference_model: str | None = None
    #: checkpoint interval assumed for jobs that declare none: 10 minutes, a common training
    #: cadence (0 = no checkpoints: a preemption loses the whole attempt, and preemptive
    #: policies can then thrash forever under load)
    default_checkpoint_interval_ms: int = 600_000
    #: stop at this simulated time (ms after the first submission); None = run to the end
    horizon_ms: int | None = None
    #: run ``Scheduler.validate()`` after every cycle (slow; for tests)
    validate: bool = False
    #: overheads of a resumed attempt (see RuntimeModel)
    overhead_1_ms: int = 7_000
    overhead_node_ms: int = 30_000
    overhead_multi_ms: int = 60_000
    #: stop as soon as every one of these jobs has ended (a measurement window, e.g.
    #: Gavel's jobs 4000-5000), instead of draining the whole workload
    stop_after: frozenset[str] = frozenset()
    #: the livelock bound (see ``gpupool.sim.stall``): simulated ms after the last
    #: submission with no job ending before ``SimulationStuck``; None = twice the longest
    #: uninterrupted attempt of the workload (at least a day)
    stall_ms: int | None = None
    #: node failures and repairs drawn from these rates (``gpupool.sim.failures``); None = none
    failures: FailureRates | None = None
    #: seed of the failure draws (each node has its own stream of it)
    failure_seed: int = 0
    #: node events given in advance (a failure log, maintenance windows), times in ms after
    #: the first submission
    node_events: tuple[NodeEvent, ...] = ()
    #: advance reservations (maintenance windows, workshops), times in ms after the first
    #: submission (``gpupool.sim.reservations_file``; ADR 0020)
    reservations: tuple[AdvanceReservation, ...] = ()
    #: record each job's estimated start right after the cycle that took its submission
    #: (``JobRecord.estimated_start_ms``), to measure the estimates against the starts that
    #: happen; costs one ``estimate_starts`` per instant with submissions
    estimates: bool = False


@dataclass(slots=True)
class _Live:
    """What the driver knows of a job: its work left and its current attempt."""

    record: JobRecord
    work_left: float
    wclass: str
    checkpoint_ms: int
    alloc: str = ""
    started: int = -1
    speed: float = 1.0
    overhead: int = 0
    #: reference-model GPU-ms per GPU-ms where it runs now (effective GPU-hours)
    eff: float = 1.0
    #: a job that could run on CUDA, running on another stack's accelerators now
    absorbed: bool = False
    portable: bool = False


def to_spec(w: WorkloadJob, default_checkpoint_ms: int = 0) -> JobSpec:
    """The job a workload record asks the scheduler for."""
    groups: tuple[TaskGroup, ...] = ()
    if w.gpus_per_worker > 0:
        groups = (TaskGroup(max(1, w.gpus // w.gpus_per_worker), w.gpus_per_worker),)
    return JobSpec(
        id=w.id,
        project=w.tenant,
        gpus=w.gpus,
        submit_ms=w.submit_ms,
        user=w.user,
        groups=groups,
        models=w.models,
        min_memory_gib=w.min_memory_gib,
        stacks=w.stacks,
        topology=Level.parse(w.topology),
        walltime_ms=w.walltime_ms,
        priority_class=w.priority_class,
        checkpoint_interval_ms=w.checkpoint_interval_ms or default_checkpoint_ms,
        kind=w.kind,
        workload_class=w.workload_class,
        duration_hint_ms=w.duration_ms,
        dependencies=parse_dependencies(w.dependency) if w.dependency else (),
        array=parse_array(w.array) if w.array else None,
        mig=w.mig,
        mig_count=w.mig_count or (1 if w.mig else 0),  # a profile without a count is one slice
        gpu_fraction=w.gpu_fraction,
        gpu_memory_gib=w.gpu_memory_gib,
    )


def simulate(
    fleet: Fleet,
    tenancy: Tenancy,
    workload: Sequence[WorkloadJob],
    config: SimConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    on_cycle: Callable[[int, Sequence[Decision]], None] | None = None,
) -> RunResult:
    """Run ``workload`` through the production scheduler on ``fleet``; return what happened.

    Raises ``SimulationStuck`` when the run can never finish (``gpupool.sim.stall``): jobs
    pending on an idle fleet with no submission ahead, or no job ending for the stall bound.

    ``on_cycle`` is told every cycle's time and decisions, in order (the decision log: what
    tests compare across refactors of the core).
    """
    cfg = config or SimConfig()
    sched = Scheduler(fleet, tenancy, cfg.scheduler)
    runtime = RuntimeModel(
        fleet.catalogue,
        cfg.reference_model,
        cfg.overhead_1_ms,
        cfg.overhead_node_ms,
        cfg.overhead_multi_ms,
        throughputs=cfg.scheduler.throughputs,
    )
    catalogue = fleet.catalogue
    window = set(cfg.stop_after)
    wall0 = time.perf_counter()
    live: dict[str, _Live] = {}
    records: list[JobRecord] = []
    heap: list[tuple[int, int, int, object]] = []
    seq = 0
    # jobs some job depends on, and how those that ended did: the core forgets ended jobs,
    # so a submission naming one carries its milestone (``JobSubmitted.settled``)
    targets = {d.job_id for w in workload if w.dependency for d in parse_dependencies(w.dependency)}
    ended: dict[str, Milestone] = {}
    #: an array's task ids, and its tasks not ended yet (the core decides about tasks)
    array_tasks: dict[str, list[str]] = {}
    array_left: dict[str, int] = {}
    array_of: dict[str, str] = {}
    for w in workload:
        spec = to_spec(w, cfg.default_checkpoint_interval_ms)
        project = tenancy.resolve(w.tenant)
        tenant = tenancy.nodes[project].path if project is not None else w.tenant
        ids = [w.id] if spec.array is None else [task_id(w.id, i) for i in spec.array.indices]
        if spec.array is not None:
            array_tasks[w.id] = ids
            array_left[w.id] = len(ids)
            array_of.update(dict.fromkeys(ids, w.id))
        for jid in ids:  # one record per task of an array
            rec = JobRecord(jid, tenant, w.gpus, w.submit_ms, w.duration_ms)
            records.append(rec)
            live[jid] = _Live(rec, float(w.duration_ms), w.workload_class, spec.checkpoint_interval_ms)
            live[jid].portable = len(spec.stacks) > 1 and "cuda" in spec.stacks
        heap.append((w.submit_ms, _SUBMIT, seq, spec))
        seq += 1
    heapq.heapify(heap)
    start_ms = heap[0][0] if heap else 0
    for ev in cfg.node_events:
        if ev.node not in fleet.node_by_name:
            raise ValueError(f"node event names unknown node {ev.node!r}")
        heap.append((start_ms + ev.t_ms, _NODE, seq, (ev, False)))
        seq += 1
    for ev2 in reservation_events(cfg.reservations, start_ms):
        heap.append((ev2[0], _RESERVE, seq, ev2[1]))
        seq += 1
    windows_left = max((start_ms + r.end_ms for r in cfg.reservations), default=start_ms)
    drawn = None if cfg.failures is None else NodeFailures(fleet, cfg.failures, cfg.failure_seed, 0)
    if drawn is not None:
        for ev in drawn.first():
            heap.append((start_ms + ev.t_ms, _NODE, seq, (ev, True)))
            seq += 1
    heapq.heapify(heap)
    outage = _Outages(fleet)
    horizon = None if cfg.horizon_ms is None else start_ms + cfg.horizon_ms
    round_ms = cfg.scheduler.round_ms
    last_submit = max((w.submit_ms for w in workload), default=start_ms)
    stall_ms = cfg.stall_ms
    if stall_ms is None:
        stall_ms = max(MIN_STALL_MS, 2 * _longest_attempt_ms(workload, fleet, runtime))
    watch = StallWatch(last_submit, stall_ms, round_ms)
    submits_left = len(workload)
    tick_at: int | None = None
    samples: list[PoolSample] = []
    cycle_ms: list[float] = []
    total = fleet.total_gpus
    busy = 0
    done = 0
    n_jobs = len(records)
    last_progress = 0.0
    now = start_ms
    while heap:
        now = heap[0][0]
        if horizon is not None and now > horizon:
            break
        events: list[Event] = []
        submitted: list[str] = []
        while heap and heap[0][0] == now:
            _, kind, _, payload = heapq.heappop(heap)
            if kind == _SUBMIT:
                spec = cast(JobSpec, payload)
                settled = tuple((d.job_id, ended[d.job_id]) for d in spec.dependencies if d.job_id in ended)
                events.append(JobSubmitted(spec, settled))
                submitted.append(spec.id)
                submits_left -= 1
            elif kind == _NODE:
                ev, from_rates = cast(tuple[NodeEvent, bool], payload)
                events.append(outage.apply(ev, now))
                if from_rates and drawn is not None:
                    nxt = drawn.after(ev)
                    if nxt is not None:
                        heapq.heappush(heap, (start_ms + nxt.t_ms, _NODE, seq, (nxt, True)))
                        seq += 1
            elif kind == _FINISH:
                job_id, alloc = cast(tuple[str, str], payload)
                lv = live[job_id]
                if lv.alloc != alloc:
                    continue  # that attempt was preempted: its finish never happens
                events.append(JobFinished(job_id, alloc))
                _finish(lv, now)
                if job_id in targets:
                    ended[job_id] = Milestone.SUCCEEDED
                _task_ended(job_id, array_of, array_left, targets, ended, Milestone.SUCCEEDED)
                busy -= lv.record.gpus
                done += 1
                window.discard(job_id)
                watch.ended(now)
            elif kind == _RESERVE:
                events.append(cast(Event, payload))
            else:
                events.append(Tick())
                tick_at = None
        t0 = time.perf_counter()
        decisions = sched.handle(events, now)
        cycle_ms.append((time.perf_counter() - t0) * 1000.0)
        if on_cycle is not None:
            on_cycle(now, decisions)
        for d in decisions:
            if isinstance(d, Start):
                lv = live[d.job_id]
                rec = lv.record
                if rec.first_start_ms < 0:
                    rec.first_start_ms = now
                rec.model, rec.cluster = d.model, d.cluster
                lv.alloc, lv.started = d.allocation_id, now
                lv.speed = runtime.speed(d.model, lv.wclass, rec.gpus)
                lv.eff = sched.throughputs.speed(lv.wclass, d.model, rec.gpus)
                lv.absorbed = lv.portable and catalogue[d.model].stack != "cuda"
                lv.overhead = runtime.restart_overhead_ms(rec.gpus) if d.resumed else 0
                end = now + lv.overhead + runtime.wall_ms(lv.work_left, d.model, lv.wclass, rec.gpus)
                heapq.heappush(heap, (end, _FINISH, seq, (d.job_id, d.allocation_id)))
                seq += 1
                busy += rec.gpus
            elif isinstance(d, Preempt):
                lv = live[d.job_id]
                lost0 = lv.record.lost_gpu_ms
                # a round-based lease ends at the round boundary: the job checkpoints there
                _preempted(lv, now, runtime, checkpointed=d.reason is Reason.ROUND)
                if d.reason is Reason.NODE_DOWN:
                    # its node failed: it restarts from its last checkpoint, as in the service
                    lv.record.failures += 1
                    lv.record.failure_lost_gpu_ms += lv.record.lost_gpu_ms - lost0
                busy -= lv.record.gpus
            elif isinstance(d, Stop):
                lv = live[d.job_id]
                _preempted(lv, now, runtime)
                lv.record.state = "cancelled"
                if d.job_id in targets:
                    ended[d.job_id] = Milestone.FAILED
                _task_ended(d.job_id, array_of, array_left, targets, ended, Milestone.FAILED)
                busy -= lv.record.gpus
                done += 1
                watch.ended(now)
            elif isinstance(d, Reject):
                for jid in array_tasks.get(d.job_id, (d.job_id,)):  # an array: all its tasks
                    rec = live[jid].record
                    rec.state = "unschedulable"
                    rec.reason = f"{d.reason.value}: {d.detail}"
                    if jid in targets:
                        ended[jid] = Milestone.FAILED
                    _task_ended(jid, array_of, array_left, targets, ended, Milestone.FAILED)
                    done += 1
                    window.discard(jid)
                if d.job_id in targets:
                    ended[d.job_id] = Milestone.FAILED
                watch.ended(now)
        if cfg.estimates and submitted:
            _record_estimates(sched, live, submitted, now)
        if cfg.validate:
            sched.validate()
        if not samples or samples[-1].busy_gpus != busy or samples[-1].pending_jobs != sched.pending_count:
            samples.append(PoolSample(now, busy, total, sched.pending_count, len(sched.running)))
        if round_ms > 0 and tick_at is None and (sched.pending_count or sched.running):
            # rounds: preemptive policies re-decide even when nothing arrives or ends
            tick_at = now + round_ms
            heapq.heappush(heap, (tick_at, _TICK, seq, None))
            seq += 1
        if cfg.stop_after and not window:
            break
        if drawn is not None and done >= n_jobs and not submits_left:
            break  # failures go on for ever; the run ends with its last job
        if cfg.reservations and done >= n_jobs and not submits_left:
            break  # windows after the last job change nothing
        # a reservation's window still ahead holds nodes back as a drain does: no dead end yet
        held = outage.out + (windows_left > now)
        stuck = watch.check(now, submits_left, sched.pending_count, len(sched.running), held)
        if stuck:
            raise SimulationStuck(
                cfg.scheduler.policy + ("+easy" if cfg.scheduler.backfill == "easy" else ""),
                stuck,
                now - start_ms,
                _stuck_jobs(sched, records),
            )
        if progress is not None and done - last_progress >= 1000:
            progress(done, n_jobs)
            last_progress = done
    if progress is not None:
        progress(done, n_jobs)
    for j in sched.running.values():
        lv = live[j.spec.id]
        rec = lv.record
        rec.run_ms += now - j.start_ms
        rec.gpu_ms += (now - j.start_ms) * rec.gpus
        _effective(lv, now - j.start_ms)
    for rec in records:
        if rec.state == "unfinished" and rec.reason == "":
            st = sched.job(rec.id)
            if st is not None:
                rec.reason = f"{st.reason.value}: {st.detail}" if st.detail else st.reason.value
    return RunResult(
        policy=cfg.scheduler.policy + ("+easy" if cfg.scheduler.backfill == "easy" else ""),
        jobs=records,
        samples=samples,
        total_gpus=total,
        entitlement=tenancy.entitlement(total),
        sector_of={tenancy.nodes[p].path: tenancy.sector_of(p) for p in tenancy.projects},
        cycle_ms=cycle_ms,
        wall_s=time.perf_counter() - wall0,
        sim_end_ms=now,
        meta={"first_submit_ms": start_ms, **outage.totals(now)},
    )


def _task_ended(
    jid: str,
    array_of: dict[str, str],
    left: dict[str, int],
    targets: set[str],
    ended: dict[str, Milestone],
    how: Milestone,
) -> None:
    """Count a task's end; an array whose tasks all ended is settled for its dependants."""
    array = array_of.get(jid)
    if array is None:
        return
    left[array] -= 1
    if how is Milestone.FAILED and array in targets:
        ended[array] = Milestone.FAILED  # provisional: final once all tasks ended
    if left[array] == 0 and array in targets:
        ended.setdefault(array, Milestone.SUCCEEDED)


class _Outages:
    """Which nodes are down or drained, since when, and the accelerator-time they were out."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.since: dict[str, tuple[int, NodeEventKind]] = {}
        self.failures = 0
        self.drains = 0
        self.down_gpu_ms = 0
        self.drained_gpu_ms = 0

    @property
    def out(self) -> int:
        return len(self.since)

    def apply(self, ev: NodeEvent, now: int) -> Event:
        """Account ``ev`` at ``now``; the scheduler event it stands for."""
        prev = self.since.pop(ev.node, None)
        if prev is not None:
            self._close(ev.node, prev, now)
        if ev.kind is NodeEventKind.UP:
            return NodeUp(ev.node)
        self.since[ev.node] = (now, ev.kind)
        if ev.kind is NodeEventKind.DOWN:
            self.failures += 1
            return NodeDown(ev.node)
        self.drains += 1
        return NodeDrained(ev.node)

    def _close(self, node: str, prev: tuple[int, NodeEventKind], now: int) -> None:
        gpus = self.fleet.nodes[self.fleet.node_by_name[node]].gpus
        t0, kind = prev
        if kind is NodeEventKind.DOWN:
            self.down_gpu_ms += (now - t0) * gpus
        else:
            self.drained_gpu_ms += (now - t0) * gpus

    def totals(self, now: int) -> dict[str, object]:
        """Counts and accelerator-ms out, with nodes still out counted up to ``now``."""
        for node, prev in list(self.since.items()):
            self._close(node, prev, now)
            self.since[node] = (now, prev[1])
        return {
            "node_failures": self.failures,
            "node_drains": self.drains,
            "down_gpu_ms": self.down_gpu_ms,
            "drained_gpu_ms": self.drained_gpu_ms,
        }


def _longest_attempt_ms(workload: Sequence[WorkloadJob], fleet: Fleet, runtime: RuntimeModel) -> int:
    """The longest wall time any job could need in one attempt: its work on the slowest
    model of the fleet for its class and size, plus the largest restart overhead."""
    longest: dict[tuple[str, int], int] = {}
    for w in workload:
        k = (w.workload_class, w.gpus)
        if w.duration_ms > longest.get(k, -1):
            longest[k] = w.duration_ms
    models = list(fleet.gpus_by_model())
    worst = 0.0
    for (wclass, gpus), duration in longest.items():
        speeds = [v for m in models if (v := runtime.speed(m, wclass, gpus)) > 0]
        worst = max(worst, duration / min(speeds, default=1.0))
    overhead = max(runtime.overhead_1_ms, runtime.overhead_node_ms, runtime.overhead_multi_ms)
    return int(worst) + overhead


def _stuck_jobs(sched: Scheduler, records: list[JobRecord]) -> list[tuple[str, str]]:
    """(id, the scheduler's reason) of every job still pending or running, in workload order."""
    out = []
    for rec in records:
        if rec.state != "unfinished":
            continue
        st = sched.job(rec.id)
        if st is None:
            continue
        reason = f"{st.reason.value}: {st.detail}" if st.detail else st.reason.value
        out.append((rec.id, reason))
    return out


def _finish(lv: _Live, now: int) -> None:
    rec = lv.record
    ran = now - lv.started
    rec.run_ms += ran
    rec.gpu_ms += ran * rec.gpus
    rec.end_ms = now
    rec.state = "finished"
    _effective(lv, ran)
    lv.alloc = ""
    lv.work_left = 0.0


def _effective(lv: _Live, ran_ms: int) -> None:
    """Add an attempt's effective GPU-ms, and its GPU-ms on another stack if portable."""
    rec = lv.record
    rec.effective_gpu_ms += ran_ms * rec.gpus * lv.eff
    if lv.absorbed:
        rec.absorbed_gpu_ms += ran_ms * rec.gpus


def _preempted(lv: _Live, now: int, runtime: RuntimeModel, checkpointed: bool = False) -> None:
    """Account an interrupted attempt: keep work up to the last checkpoint.

    ``checkpointed``: the job saved its state when told to stop (a round-based lease end),
    so it keeps all it did.
    """
    rec = lv.record
    elapsed = now - lv.started
    rec.run_ms += elapsed
    rec.gpu_ms += elapsed * rec.gpus
    rec.preemptions += 1
    _effective(lv, elapsed)
    working = max(0, elapsed - lv.overhead)
    done = working * lv.speed
    kept = done if checkpointed else runtime.kept_work(done, working, lv.checkpoint_ms)
    lv.work_left = max(0.0, lv.work_left - kept)
    rec.lost_gpu_ms += int((elapsed - kept / lv.speed if lv.speed else elapsed) * rec.gpus)
    lv.alloc = ""


def _record_estimates(sched: Scheduler, live: dict[str, _Live], submitted: list[str], now: int) -> None:
    """Each job just submitted: its estimated start now (its start if it began this cycle)."""
    est = sched.estimate_starts(now) if sched.pending_count else {}
    for jid in submitted:
        rec = live[jid].record
        if rec.first_start_ms >= 0:
            rec.estimated_start_ms = rec.first_start_ms
        else:
            t = est.get(jid)
            rec.estimated_start_ms = -1 if t is None else t
