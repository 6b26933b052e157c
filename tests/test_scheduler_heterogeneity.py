"""Scenario tests of the heterogeneity-aware, round-based and Tiresias policies (one situation each)."""

from __future__ import annotations

import pytest

from gpupool.core import heterogeneity
from gpupool.core import scheduler as core_scheduler
from gpupool.core.accelerator import AcceleratorModel, Catalogue
from gpupool.core.decisions import Preempt, Reason, Reject, Start
from gpupool.core.events import JobFinished, JobSubmitted, Tick
from gpupool.core.fleet import Fleet, FleetBuilder
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.throughput import ThroughputError, ThroughputTable
from gpupool.core.tiresias import TiresiasConfig
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import job, tenants

CAT = Catalogue(
    [
        AcceleratorModel("V100", "NVIDIA", 16, "cuda", {"default": 1.0, "fast-on-v100": 3.0, "flat": 1.0}),
        AcceleratorModel("K80", "NVIDIA", 12, "cuda", {"default": 0.5, "fast-on-v100": 1.0, "flat": 1.0}),
        AcceleratorModel("RNGD", "FuriosaAI", 48, "furiosa", {"default": 0.05, "inference-llm": 0.4}),
    ]
)
#: ``fast-on-v100`` runs 3x faster on a V100 than on a K80; ``flat`` runs alike on both
TABLE = ThroughputTable.from_catalogue(CAT, reference="V100")
HOUR = 3_600_000


def hetero_fleet(v100: int = 1, k80: int = 1, rngd: int = 0, gpus: int = 1) -> Fleet:
    """One cluster with a node of each model (V100 first, as in gavel-108)."""
    b = FleetBuilder("hetero", CAT)
    b.add_site("s")
    c = b.add_cluster("c", "s")
    blk = b.add_block(c, "b")
    for model, count in (("V100", v100), ("K80", k80), ("RNGD", rngd)):
        if count:
            r = b.add_rack(blk, model.lower())
            b.add_nodes(r, count, model, gpus, [f"{model.lower()}-{i}" for i in range(count)])
    return b.build()


def starts(out: list[object]) -> dict[str, str]:
    return {d.job_id: d.model for d in out if isinstance(d, Start)}


def sched(policy: str, f: Fleet | None = None, **kw: object) -> Scheduler:
    cfg = SchedulerConfig(policy=policy, round_ms=360_000, throughputs=TABLE, **kw)  # type: ignore[arg-type]
    return Scheduler(f or hetero_fleet(), tenants("p"), cfg)


def two_jobs() -> list[JobSubmitted]:
    # the flat job is first in line: an agnostic scheduler gives it the first pool (V100)
    return [
        JobSubmitted(job("flat", 1, submit=0, workload_class="flat", duration_hint_ms=10 * HOUR)),
        JobSubmitted(job("fast", 1, submit=1, workload_class="fast-on-v100", duration_hint_ms=10 * HOUR)),
    ]


@pytest.mark.parametrize("policy", ["gavel-las", "gavel-fifo", "gavel-ftf", "gavel-makespan"])
def test_a_job_that_runs_3x_faster_on_v100_gets_the_v100_under_aware_policies(policy: str) -> None:
    s = sched(policy)
    got = starts(s.handle(two_jobs(), 0))
    assert got == {"fast": "V100", "flat": "K80"}
    # and keeps it round after round, without being preempted
    for r in range(1, 4):
        out = s.handle([Tick()], r * 360_000)
        assert not [d for d in out if isinstance(d, Preempt)]
    s.validate()


def test_an_agnostic_scheduler_gives_the_v100_to_whoever_is_first() -> None:
    got = starts(sched("fifo").handle(two_jobs(), 0))
    assert got == {"flat": "V100", "fast": "K80"}


def test_round_based_time_sharing_swaps_jobs_at_round_boundaries_with_a_lease_end() -> None:
    s = sched("maxmin", hetero_fleet(v100=1, k80=0))
    # jobs that checkpoint every 2 min: a stop at a boundary loses less than the round it
    # hands over (``gpupool.core.round_leases``; test_round_leases.py has the other side)
    ck = 120_000
    jobs = [job(name, 1, submit=i, checkpoint_interval_ms=ck) for i, name in enumerate("ab")]
    out = s.handle([JobSubmitted(x) for x in jobs], 0)
    assert set(starts(out)) == {"a"}
    out = s.handle([Tick()], 360_000)
    pre = [d for d in out if isinstance(d, Preempt)]
    assert [(d.job_id, d.reason) for d in pre] == [("a", Reason.ROUND)]
    assert set(starts(out)) == {"b"}
    out = s.handle([Tick()], 720_000)
    assert set(starts(out)) == {"a"}  # equal time: back to a
    s.validate()


def test_between_rounds_an_idle_accelerator_is_filled_without_preempting() -> None:
    s = sched("gavel-las", hetero_fleet(v100=1, k80=0))
    s.handle([JobSubmitted(job("a", 1, submit=0)), JobSubmitted(job("b", 1, submit=1))], 0)
    running = next(iter(s.running.values()))
    out = s.handle([JobFinished(running.spec.id, running.allocation_id)], 100_000)  # mid-round
    assert len(starts(out)) == 1 and not [d for d in out if isinstance(d, Preempt)]


def test_tiresias_demotes_a_job_past_its_threshold_and_a_new_job_preempts_it() -> None:
    cfg = TiresiasConfig(thresholds_gpu_ms=(HOUR,), promote_knob=0)
    s = sched("tiresias", hetero_fleet(v100=1, k80=0), tiresias=cfg)
    s.handle([JobSubmitted(job("old", 1, submit=0))], 0)
    out = s.handle([JobSubmitted(job("new", 1, submit=10))], 30 * 60_000)
    assert not starts(out)  # old is still in the first queue, and arrived first
    out = s.handle([Tick()], 2 * HOUR)  # old has attained 2 GPU-h: second queue
    assert [d.job_id for d in out if isinstance(d, Preempt)] == ["old"]
    assert set(starts(out)) == {"new"}
    s.validate()


def test_tiresias_promotes_a_starving_job_back_to_the_first_queue() -> None:
    cfg = TiresiasConfig(thresholds_gpu_ms=(HOUR,), promote_knob=2)
    s = sched("tiresias", hetero_fleet(v100=1, k80=0), tiresias=cfg)
    s.handle([JobSubmitted(job("long", 1, submit=0))], 0)
    s.handle([Tick()], 2 * HOUR)  # long: 2 GPU-h attained, second queue
    s.handle([JobSubmitted(job("stream0", 1, submit=1))], 2 * HOUR)  # preempts long
    assert s.job("long").status == core_scheduler.PENDING  # type: ignore[union-attr]
    # a stream of short jobs keeps the first queue busy (the next one is always waiting);
    # long has run 2 h, so after waiting 4 h it is promoted (knob 2) with its attained
    # service reset, and runs again
    t = 2 * HOUR
    out: list[object] = []
    for i in range(1, 20):
        t += 30 * 60_000
        running = next(iter(s.running.values()))
        events = [
            JobSubmitted(job(f"stream{i}", 1, submit=1 + i)),
            JobFinished(running.spec.id, running.allocation_id),
        ]
        out = s.handle([*events, Tick()], t)
        if "long" in starts(out):
            break
    assert t - 2 * HOUR >= 4 * HOUR
    assert "long" in starts(out)


def test_portable_inference_goes_to_the_gpu_when_free_and_to_the_npu_when_gpus_are_contended() -> None:
    f = hetero_fleet(v100=1, k80=0, rngd=1)
    portable = {"stacks": ("cuda", "furiosa"), "kind": "inference", "workload_class": "inference-llm"}
    s = Scheduler(f, tenants("p"), SchedulerConfig(policy="fifo", throughputs=TABLE, portable_min_speed=0.1))
    assert starts(s.handle([JobSubmitted(job("svc", 1, submit=0, **portable))], 0)) == {"svc": "V100"}
    s = Scheduler(f, tenants("p"), SchedulerConfig(policy="fifo", throughputs=TABLE, portable_min_speed=0.1))
    out = s.handle([JobSubmitted(job("train", 1, submit=0, stacks=("cuda",)))], 0)
    out = s.handle(
        [
            JobSubmitted(job("train2", 1, submit=1, stacks=("cuda",))),
            JobSubmitted(job("svc", 1, submit=2, **portable)),
        ],
        1,
    )
    # train2 waits for the V100, so the portable service takes the NPU instead of queueing
    assert starts(out) == {"svc": "RNGD"}


def test_portable_job_never_goes_where_it_would_crawl() -> None:
    # RNGD at 0.4 of a V100 for inference is below a 0.5 floor: the job waits for its GPU
    f = hetero_fleet(v100=1, k80=0, rngd=1)
    portable = {"stacks": ("cuda", "furiosa"), "workload_class": "inference-llm"}
    s = Scheduler(f, tenants("p"), SchedulerConfig(policy="fifo", throughputs=TABLE, portable_min_speed=0.5))
    s.handle([JobSubmitted(job("train", 1, submit=0, stacks=("cuda",)))], 0)
    assert not starts(s.handle([JobSubmitted(job("svc", 1, submit=1, **portable))], 1))


def test_effective_usage_counts_accelerator_time_at_the_jobs_speed_there() -> None:
    s = sched("fifo", hetero_fleet(v100=0, k80=1), usage="effective")
    s.handle([JobSubmitted(job("a", 1, submit=0))], 0)  # default class: a K80 is half a V100
    project = s.tenancy.resolve("p")
    assert project is not None
    assert s.ledger.used_gpu_ms(project, HOUR) == pytest.approx(0.5 * HOUR)
    raw = sched("fifo", hetero_fleet(v100=0, k80=1))
    raw.handle([JobSubmitted(job("a", 1, submit=0))], 0)
    assert raw.ledger.used_gpu_ms(project, HOUR) == pytest.approx(HOUR)


def test_a_job_whose_stack_no_accelerator_runs_is_rejected_as_unschedulable_with_that_reason() -> None:
    out = sched("gavel-las").handle([JobSubmitted(job("npu", 1, stacks=("rbln",)))], 0)
    rej = [d for d in out if isinstance(d, Reject)]
    assert rej and rej[0].reason is Reason.UNSCHEDULABLE and "not rbln" in rej[0].detail
    # and the twin reports it so
    r = simulate(
        hetero_fleet(),
        tenants("p"),
        [WorkloadJob("npu", 0, 1000, 1, "p", stacks=("rbln",))],
        SimConfig(SchedulerConfig(policy="gavel-las", throughputs=TABLE)),
    )
    assert r.jobs[0].state == "unschedulable" and "runs cuda, not rbln" in r.jobs[0].reason


def test_a_throughput_table_without_a_fleet_model_is_refused() -> None:
    small = ThroughputTable({"default": {"V100": 1.0}}, models=["V100"], reference="V100")
    with pytest.raises(ThroughputError, match="no column for accelerator model 'K80'"):
        Scheduler(hetero_fleet(), tenants("p"), SchedulerConfig(throughputs=small))


def test_round_end_preemption_keeps_all_work_in_the_twin() -> None:
    jobs = [WorkloadJob("a", 0, 2 * HOUR, 1, "p"), WorkloadJob("b", 0, 2 * HOUR, 1, "p")]
    cfg = SchedulerConfig(policy="maxmin", round_ms=360_000, throughputs=TABLE)
    r = simulate(hetero_fleet(v100=1, k80=0), tenants("p"), jobs, SimConfig(cfg, overhead_1_ms=0))
    assert all(j.state == "finished" for j in r.jobs)
    assert sum(j.lost_gpu_ms for j in r.jobs) == 0 and sum(j.preemptions for j in r.jobs) > 0
    assert max(j.end_ms for j in r.jobs) == 4 * HOUR  # no work lost, no idle time


def test_round_mechanism_status_codes_match_the_scheduler() -> None:
    assert (heterogeneity._PENDING, heterogeneity._RUNNING) == (
        core_scheduler.PENDING,
        core_scheduler.RUNNING,
    )
