"""Node failures in the digital twin: requeued from the last checkpoint, lost work counted,
deterministic draws, and failure logs that name the bad line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.core.scheduler import SchedulerConfig
from gpupool.sim.failures import (
    LLAMA3_PER_GPU_HOUR,
    FailureLogError,
    FailureRates,
    NodeEvent,
    NodeEventKind,
    maintenance_window,
    read_failure_log,
)
from gpupool.sim.metrics import compute_metrics
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import fleet, tenants


def wj(id: str, submit_s: float, dur_s: float, gpus: int, **kw: object) -> WorkloadJob:
    return WorkloadJob(id, int(submit_s * 1000), int(dur_s * 1000), gpus, "p", **kw)  # type: ignore[arg-type]


NODE = "c0b0r0n0"


def test_a_node_failure_requeues_the_job_from_its_checkpoint_and_counts_the_lost_work() -> None:
    # one node: the job runs 250 s, the node fails, checkpoint every 100 s keeps 200 s;
    # the node is back at 400 s, the job restarts (30 s overhead) with 800 s of work left
    jobs = [wj("a", 0, 1000, 8, checkpoint_interval_ms=100_000)]
    events = (
        NodeEvent(250_000, NODE, NodeEventKind.DOWN),
        NodeEvent(400_000, NODE, NodeEventKind.UP),
    )
    cfg = SimConfig(SchedulerConfig(policy="fifo"), overhead_node_ms=30_000, node_events=events)
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg)
    a = r.jobs[0]
    assert a.state == "finished"
    assert a.end_ms == 400_000 + 30_000 + 800_000
    assert a.failures == 1 and a.preemptions == 1
    assert a.failure_lost_gpu_ms == 50_000 * 8 == a.lost_gpu_ms
    m = compute_metrics(r)
    assert m["node_failures"] == 1
    assert m["failure_interruptions"] == 1
    assert m["failure_lost_gpu_hours"] == pytest.approx(50 * 8 / 3600)
    assert m["down_gpu_hours"] == pytest.approx(150 * 8 / 3600)


def test_without_the_failure_the_same_job_ends_at_its_duration() -> None:
    jobs = [wj("a", 0, 1000, 8, checkpoint_interval_ms=100_000)]
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, SimConfig(SchedulerConfig("fifo")))
    assert r.jobs[0].end_ms == 1_000_000 and r.jobs[0].failures == 0
    assert compute_metrics(r)["node_failures"] == 0


def test_a_drain_lets_running_work_finish_and_starts_nothing_new_until_up() -> None:
    jobs = [wj("a", 0, 100, 8), wj("b", 10, 10, 8)]
    events = tuple(maintenance_window([NODE], start_s=50, hours=1))
    cfg = SimConfig(SchedulerConfig(policy="fifo"), node_events=events)
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg)
    by = {j.id: j for j in r.jobs}
    assert by["a"].end_ms == 100_000 and by["a"].failures == 0  # drained, not killed
    assert by["b"].first_start_ms == 50_000 + 3_600_000  # waits for the window's end
    m = compute_metrics(r)
    assert m["node_drains"] == 1 and m["node_failures"] == 0


def _flaky_run(seed: int) -> tuple[list[tuple[str, int, int, int]], dict[str, object]]:
    jobs = [wj(f"j{i}", i * 600, 7200, 8, checkpoint_interval_ms=600_000) for i in range(40)]
    # a failure every ~10 h per 8-GPU node: thousands of times the Llama 3 rate, so that a
    # small test sees some
    rates = FailureRates(scale=600.0, mttr_h=2.0)
    cfg = SimConfig(SchedulerConfig(policy="fifo"), failures=rates, failure_seed=seed)
    r = simulate(fleet(racks=1, nodes_per_rack=4), tenants("p"), jobs, cfg)
    m = compute_metrics(r)
    return [(j.id, j.end_ms, j.failures, j.failure_lost_gpu_ms) for j in r.jobs], m


def test_failures_drawn_from_rates_are_deterministic_per_seed() -> None:
    a, ma = _flaky_run(7)
    b, mb = _flaky_run(7)
    c, _ = _flaky_run(8)
    assert a == b
    assert ma["node_failures"] == mb["node_failures"]
    assert a != c
    assert isinstance(ma["node_failures"], int) and ma["node_failures"] > 0
    assert all(end >= 0 for _, end, _, _ in a)  # every job finished despite failures
    lost = sum(x[3] for x in a) / 3_600_000
    assert ma["failure_lost_gpu_hours"] == pytest.approx(lost)
    assert ma["failure_interruptions"] == sum(x[2] for x in a) > 0


def test_the_published_rate_is_one_failure_per_50677_gpu_hours() -> None:
    gpu_hours_per_failure = 1 / LLAMA3_PER_GPU_HOUR
    assert gpu_hours_per_failure == pytest.approx(50_677, abs=1)
    assert FailureRates().mtbf_h("H100", 8) == pytest.approx(6_335, abs=1)
    assert FailureRates(scale=0).mtbf_h("H100", 8) == float("inf")


def test_a_failure_log_is_read_in_time_order(tmp_path: Path) -> None:
    log = tmp_path / "failures.csv"
    log.write_text(f"time_s,node,event\n600,{NODE},up\n60.5,{NODE},down\n", encoding="utf-8")
    events = read_failure_log(log, fleet(racks=1, nodes_per_rack=1))
    assert events == [
        NodeEvent(60_500, NODE, NodeEventKind.DOWN),
        NodeEvent(600_000, NODE, NodeEventKind.UP),
    ]


@pytest.mark.parametrize(
    ("body", "line", "field", "says"),
    [
        ("time,node,event\n", 1, "header", "expected time_s,node,event"),
        (f"time_s,node,event\n10,{NODE},down\nsoon,{NODE},up\n", 3, "time_s", "'soon' is not a number"),
        (f"time_s,node,event\n-5,{NODE},down\n", 2, "time_s", "must be a finite number >= 0"),
        ("time_s,node,event\n10,nosuch,down\n", 2, "node", "no node 'nosuch'"),
        (f"time_s,node,event\n10,{NODE},exploded\n", 2, "event", "not one of down, drain, up"),
        (f"time_s,node,event\n10,{NODE}\n", 2, "line", "expected 3 fields, got 2"),
    ],
)
def test_a_bad_failure_log_line_names_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, says: str
) -> None:
    log = tmp_path / "bad.csv"
    log.write_text(body, encoding="utf-8")
    with pytest.raises(FailureLogError) as e:
        read_failure_log(log, fleet(racks=1, nodes_per_rack=1))
    assert (e.value.path, e.value.line, e.value.field) == (str(log), line, field)
    assert says in str(e.value) and f"{log}:{line}" in str(e.value)


def test_simulate_with_a_failure_log_reports_the_failure_and_names_a_bad_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gpupool.cli.main import app

    runner = CliRunner()
    log = tmp_path / "failures.csv"
    log.write_text("time_s,node,event\n3600,kisti-ib0-r0-n00,down\n7200,kisti-ib0-r0-n00,up\n")
    args = ["simulate", "--fleet", "demo", "--hours", "4", "--json", "--failure-log", str(log)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["node_failures"] == 1
    assert m["down_gpu_hours"] == pytest.approx(8.0)  # an 8-GPU node down for 1 h
    log.write_text("time_s,node,event\n3600,kisti-ib0-r0-n00,down\n7200,kisti-ib0-r0-n99,up\n")
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert f"{log}:3: field 'node': no node 'kisti-ib0-r0-n99'" in " ".join(r.output.split())
