"""The twin stops with a clear error when a run can never finish, instead of ticking forever."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.core.scheduler import SchedulerConfig
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.stall import SimulationStuck, StallWatch
from gpupool.sim.workload import WorkloadJob

from .builders import fleet, tenants

DAY_MS = 86_400_000


def wj(id: str, submit_s: float, dur_s: float, gpus: int, tenant: str = "p") -> WorkloadJob:
    return WorkloadJob(id, int(submit_s * 1000), int(dur_s * 1000), gpus, tenant)


def gang(id: str, submit_s: float, dur_s: float, workers: int, per_worker: int) -> WorkloadJob:
    return WorkloadJob(
        id, int(submit_s * 1000), int(dur_s * 1000), workers * per_worker, "p", gpus_per_worker=per_worker
    )


def test_a_job_the_fleet_can_never_place_stops_the_run_naming_it() -> None:
    # Two 8-H100 nodes; "gang" asks for 3 workers of 5: 15 accelerators, which the fleet
    # has, and 5 a worker, which a node has, so it is admitted; but a node holds only one
    # such worker, so it never fits. Once "ok" has finished nothing runs and no event is ahead.
    jobs = [wj("ok", 0, 100, 4), gang("gang", 10, 100, 3, 5)]
    cfg = SimConfig(SchedulerConfig(policy="fifo"))
    with pytest.raises(SimulationStuck) as e:
        simulate(fleet(racks=1, nodes_per_rack=2), tenants("p"), jobs, cfg)
    assert e.value.policy == "fifo"
    assert [i for i, _ in e.value.jobs] == ["gang"]
    assert "nothing runs and no event is ahead" in str(e.value) and "gang" in str(e.value)
    assert e.value.now_ms == 100_000  # when "ok" ended, not later


def test_a_job_above_its_projects_limit_is_rejected_not_stuck() -> None:
    # "big" asks for 8 but its project may hold at most 4 (guarantee 2 + borrow 2): refused
    # at submission with the limit named, so the run ends and "ok" is not held up.
    t = tenants("p", p={"guaranteed": {"H100": 2}, "borrow_limit": {"H100": 2}})
    jobs = [wj("big", 0, 100, 8), wj("ok", 10, 100, 4)]
    r = simulate(fleet(racks=1, nodes_per_rack=1), t, jobs, SimConfig(SchedulerConfig(policy="fifo")))
    big, ok = r.jobs
    assert big.state == "unschedulable"
    assert big.reason == "over-limit: never startable: 8 H100 exceed sector/p's guarantee 2 + borrow limit 2"
    assert ok.state == "finished" and ok.first_start_ms == 10_000


def test_a_policy_with_rounds_gets_a_few_rounds_then_stops() -> None:
    cfg = SimConfig(SchedulerConfig(policy="fifo", round_ms=60_000))
    with pytest.raises(SimulationStuck) as e:
        simulate(fleet(racks=1, nodes_per_rack=2), tenants("p"), [gang("gang", 0, 100, 3, 5)], cfg)
    assert [i for i, _ in e.value.jobs] == ["gang"]
    assert 0 < e.value.now_ms <= 5 * 60_000


def test_a_policy_that_preempts_before_any_checkpoint_is_a_livelock_not_an_endless_run() -> None:
    # Two whole-node jobs under LAS with a 1-minute quantum and no checkpoints: each round
    # the one with more attained service is preempted and loses everything, so neither
    # ever ends. The run stops at the stall bound instead of ticking forever.
    jobs = [wj("a", 0, 3_600, 8), wj("b", 10, 3_600, 8)]
    cfg = SimConfig(
        SchedulerConfig(policy="las", round_ms=60_000, min_runtime_ms=60_000),
        default_checkpoint_interval_ms=0,
        stall_ms=DAY_MS,
    )
    with pytest.raises(SimulationStuck) as e:
        simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg)
    assert {i for i, _ in e.value.jobs} == {"a", "b"}
    assert "no job has ended" in e.value.why
    assert DAY_MS < e.value.now_ms <= DAY_MS + 2 * 60_000


def test_the_same_jobs_finish_when_the_quantum_outlasts_a_checkpoint() -> None:
    # The counterpart: a checkpoint every 5 minutes and a quantum past it keeps work.
    jobs = [wj("a", 0, 3_600, 8), wj("b", 10, 3_600, 8)]
    cfg = SimConfig(
        SchedulerConfig(policy="las", round_ms=60_000, min_runtime_ms=660_000),
        default_checkpoint_interval_ms=300_000,
    )
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg)
    assert [j.state for j in r.jobs] == ["finished", "finished"]


def test_a_long_job_running_alone_is_not_a_stall() -> None:
    # 3 days of work with nothing else ending: under the automatic bound (twice the longest
    # attempt) this is progress, not a livelock.
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), [wj("long", 0, 3 * 86_400, 8)], SimConfig())
    assert r.jobs[0].state == "finished"


def test_stall_watch_counts_from_the_last_submission_and_the_last_end() -> None:
    w = StallWatch(last_submit_ms=1_000, stall_ms=500, round_ms=0)
    assert w.check(1_400, submits_left=0, pending=1, running=1) == ""
    w.ended(1_400)
    assert w.check(1_800, submits_left=0, pending=1, running=1) == ""
    assert "no job has ended" in w.check(1_901, submits_left=0, pending=1, running=1)
    # jobs still to arrive: never stalled
    assert StallWatch(0, 10, 0).check(1_000, submits_left=1, pending=1, running=1) == ""


def test_the_cli_says_stuck_in_one_red_line_with_exit_code_2(tmp_path: Path) -> None:
    fleet_file = tmp_path / "one.yaml"
    fleet_file.write_text(
        "name: one\nsites:\n  - name: s\n    clusters:\n      - name: c\n        backend: local\n"
        "        blocks:\n          - name: b\n            racks:\n"
        "              - {name: r, nodes: {count: 2, model: H100, gpus: 8}}\n"
    )
    tenants_file = tmp_path / "t.yaml"
    tenants_file.write_text(
        "name: t\nsectors:\n  s:\n    organisations:\n      o:\n        projects:\n          p: {}\n"
    )
    trace = tmp_path / "w.csv"
    trace.write_text("submit_s,duration_s,gpus,gpus_per_worker,tenant\n0,60,15,5,s/o/p\n")
    r = CliRunner().invoke(
        app,
        ["simulate", "--fleet", str(fleet_file), "--tenants", str(tenants_file), "--workload", str(trace),
         "--policy", "fifo", "--json"],
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "simulation stuck under policy 'fifo'" in r.stderr and "w-0" in r.stderr
    assert "Traceback" not in r.output
