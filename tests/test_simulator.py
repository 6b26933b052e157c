"""The digital twin drives the production core: scenarios with answers known by hand."""

from __future__ import annotations

import pytest

from gpupool.core.scheduler import SchedulerConfig
from gpupool.sim.metrics import compute_metrics
from gpupool.sim.scenario import build_scenario, run_policies
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import fleet, tenants


def wj(id: str, submit_s: float, dur_s: float, gpus: int, tenant: str = "p", **kw: object) -> WorkloadJob:
    return WorkloadJob(id, int(submit_s * 1000), int(dur_s * 1000), gpus, tenant, **kw)  # type: ignore[arg-type]


def test_fifo_on_one_node_gives_the_hand_computed_completion_times() -> None:
    jobs = [wj("a", 0, 100, 8), wj("b", 10, 50, 8), wj("c", 20, 10, 4)]
    r = simulate(
        fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, SimConfig(SchedulerConfig(policy="fifo"))
    )
    by = {j.id: j for j in r.jobs}
    assert (by["a"].first_start_ms, by["a"].end_ms) == (0, 100_000)
    assert (by["b"].first_start_ms, by["b"].end_ms) == (100_000, 150_000)
    assert (by["c"].first_start_ms, by["c"].end_ms) == (150_000, 160_000)  # strict order: c waits for b
    m = compute_metrics(r)
    assert m["finished"] == 3
    assert m["avg_jct_s"] == pytest.approx((100 + 140 + 140) / 3)


def test_easy_backfill_lets_the_small_job_through_without_delaying_the_head() -> None:
    jobs = [wj("a", 0, 100, 4), wj("b", 10, 50, 8), wj("c", 20, 10, 4)]
    cfg = SimConfig(SchedulerConfig(policy="fifo", backfill="easy"))
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg)
    by = {j.id: j for j in r.jobs}
    assert by["c"].first_start_ms == 20_000  # backfilled: ends at 30 s, before a frees the node
    assert by["b"].first_start_ms == 100_000  # the head was not delayed


def test_faster_accelerator_finishes_the_same_work_sooner() -> None:
    jobs = [wj("a", 0, 100, 4)]
    cfg = SimConfig(SchedulerConfig(policy="fifo"), reference_model="H100")
    r = simulate(fleet(racks=1, nodes_per_rack=1, model="GB200"), tenants("p"), jobs, cfg)
    assert r.jobs[0].end_ms == 50_000  # GB200 is 2.0x H100 in the test catalogue


def test_preempted_job_resumes_from_its_checkpoint_and_pays_the_restart() -> None:
    jobs = [wj("long", 0, 1000, 8, checkpoint_interval_ms=100_000), wj("short", 250, 10, 8)]
    cfg = SimConfig(SchedulerConfig(policy="srtf"), overhead_node_ms=30_000)
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg)
    by = {j.id: j for j in r.jobs}
    assert by["short"].first_start_ms == 250_000 and by["short"].end_ms == 260_000
    # long ran 250 s, kept 200 s (last checkpoint), lost 50 s; resumes at 260 s with 800 s
    # of work left plus a 30 s restart
    assert by["long"].preemptions == 1
    assert by["long"].end_ms == 260_000 + 30_000 + 800_000
    assert by["long"].lost_gpu_ms == (50_000 + 0) * 8
    assert by["long"].queue_ms == 10_000


def test_job_that_can_never_fit_is_reported_not_left_waiting() -> None:
    jobs = [wj("huge", 0, 10, 64), wj("ok", 0, 10, 8)]
    r = simulate(
        fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, SimConfig(SchedulerConfig(policy="fifo"))
    )
    by = {j.id: j for j in r.jobs}
    assert by["huge"].state == "unschedulable" and "unschedulable because" in by["huge"].reason
    assert by["ok"].state == "finished"


def test_unknown_tenant_is_rejected_with_its_name() -> None:
    r = simulate(fleet(), tenants("p"), [wj("x", 0, 1, 1, tenant="ghost")], SimConfig())
    assert r.jobs[0].state == "unschedulable" and "ghost" in r.jobs[0].reason


@pytest.mark.parametrize("policy", ["fifo", "priority", "fairshare+easy", "sjf", "srtf", "las"])
def test_demo_scenario_keeps_every_invariant_under_every_policy(policy: str) -> None:
    sc = build_scenario("demo", None, "synthetic", seed=3, load=1.2, hours=12)
    first = run_policies(sc, [policy], sim=SimConfig(validate=True))[0]
    again = run_policies(sc, [policy])[0]
    assert [(j.id, j.first_start_ms, j.end_ms, j.model) for j in first.jobs] == [
        (j.id, j.first_start_ms, j.end_ms, j.model) for j in again.jobs
    ]
    assert all(j.state in ("finished", "unschedulable") for j in first.jobs)


@pytest.mark.slow
def test_helios_fifo_at_published_counts_matches_the_peer() -> None:
    from gpupool.fleetfile import load_fleet, load_tenants
    from gpupool.sim.scenario import load_workload

    f = load_fleet("philly")
    t = load_tenants("philly", f)
    jobs, _ = load_workload("philly-helios", f, t, seed=0, load=0, hours=0)
    assert len(jobs) == 68_503
    cfg = SimConfig(SchedulerConfig(policy="fifo", preemption=False), default_checkpoint_interval_ms=1000)
    m = compute_metrics(simulate(f, t, jobs, cfg))
    assert m["avg_jct_s"] == pytest.approx(11_586, rel=0.01)
    assert m["avg_queue_s"] == pytest.approx(105, rel=0.05)


def test_utilisation_is_reported_over_the_arrivals_and_the_drain_apart() -> None:
    # one 8-GPU node: a 100 s job at 0 and a 1000 s job at 100 s: busy throughout; the
    # arrival window is [0, 100 s], the drain [100 s, 1100 s]
    jobs = [wj("a", 0, 100, 8), wj("b", 100, 1000, 4)]
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, SimConfig(SchedulerConfig("fifo")))
    m = compute_metrics(r)
    assert m["utilization_arrivals"] == pytest.approx(1.0)
    assert m["utilization_drain"] == pytest.approx(0.5)  # 4 of 8 busy
    assert m["arrival_hours"] == pytest.approx(100 / 3600)
    assert m["drain_hours"] == pytest.approx(1000 / 3600)
    assert m["utilization"] == pytest.approx((100 * 1.0 + 1000 * 0.5) / 1100)
