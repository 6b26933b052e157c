"""Smoke test of the benchmarks: each runs at a tiny size and prints the JSON it promises.

Not a timing test: it checks keys and basic sanity, never how fast anything ran.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpupool.core.policy import POLICIES as REGISTERED_POLICIES
from gpupool.fleetfile import load_fleet

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert isinstance(out, dict)
    return out


@pytest.mark.slow
def test_cycle_benchmark_small() -> None:
    out = _run("cycle.py", "--small")
    for key in (
        "gpus",
        "pending",
        "full_cycle_s",
        "full_cycle_mode",
        "incremental_cycle_p50_ms",
        "incremental_cycle_p99_ms",
        "peak_rss_mib",
        "decisions",
        "fifo",
        "ratio_fairshare_to_fifo",
        "goals",
        "meets_goals",
    ):
        assert key in out, key
    fleet = load_fleet("korea-2025")  # the benchmark's default fleet, as loaded here
    assert (out["gpus"], out["nodes"]) == (fleet.total_gpus, len(fleet.nodes))
    assert out["pending"] == 2_000
    decisions = out["decisions"]
    assert isinstance(decisions, dict)
    assert set(decisions) == {"full_cycle", "tick_cycle", "incremental_total"}
    full = decisions["full_cycle"]
    assert isinstance(full, dict) and full.get("Start", 0) > 0
    fifo = out["fifo"]
    assert isinstance(fifo, dict) and fifo["policy"] == "fifo+easy"


@pytest.mark.slow
def test_sim_speed_benchmark_small() -> None:
    out = _run("sim_speed.py", "--small", "--case", "philly")
    case = out["philly"]
    assert isinstance(case, dict)
    for key in (
        "jobs",
        "wall_s",
        "cpu_s",
        "jobs_per_wall_s",
        "sim_hours_per_wall_hour",
        "avg_jct_s",
        "utilization",
        "finished",
        "meets_goal",
    ):
        assert key in case, key
    assert case["jobs"] == 1_500
    assert case["finished"] == 1_500
    context = out["context"]
    assert isinstance(context, dict)
    assert {"slurm", "kueue", "kai_scheduler"} <= set(context)


def test_itp_policies_benchmark_small() -> None:
    out = _run(
        "itp_policies.py", "--clusters", "05", "--loads", "0.8", "--max-jobs", "200",
        "--policies", "fifo,sjf+easy,las", "--timeout-s", "120",
    )  # fmt: skip
    assert out["benchmark"] == "itp_policies" and out["max_jobs"] == 200
    assert "priority" in out["skipped_policies"]
    (case,) = out["cases"]
    assert isinstance(case, dict)
    assert (case["cluster"], case["load"], case["jobs"]) == ("05", 0.8, 200)
    assert case["gpus"] == 8 * case["nodes"] and case["nodes"] >= case["nodes_from_load"] >= 1
    runs = case["policies"]
    assert set(runs) == {"fifo", "sjf+easy", "las"}
    for r in runs.values():
        assert r["status"] == "ok", r
        assert r["finished"] == 200
        for key in ("avg_jct_s", "avg_queue_s", "jain_fairness", "wall_s", "jct_ratio_vs_fifo"):
            assert isinstance(r[key], float), key
    assert runs["fifo"]["jct_ratio_vs_fifo"] == 1.0


def test_itp_policies_benchmark_runs_or_skips_every_registered_policy() -> None:
    spec = importlib.util.spec_from_file_location("_bench_itp", ROOT / "benchmarks" / "itp_policies.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    run = {p.partition("+")[0] for p in mod.POLICIES}
    assert run | set(mod.SKIPPED) == set(REGISTERED_POLICIES)
    assert not run & set(mod.SKIPPED)


def test_itp_policies_benchmark_records_a_run_past_its_limit_as_timeout() -> None:
    # The whole of cluster 04 (15,802 jobs) under las cannot finish in a second.
    out = _run(
        "itp_policies.py", "--clusters", "04", "--loads", "0.8", "--policies", "fifo,las", "--timeout-s", "1"
    )
    (case,) = out["cases"]
    assert isinstance(case, dict)
    las = case["policies"]["las"]
    assert las["status"] == "timeout" and las["limit_s"] == 1.0 and las["jct_ratio_vs_fifo"] is None


def test_reports_benchmark_small() -> None:
    out = _run("reports.py", "--jobs", "200")
    assert out["jobs"] == 200
    for key in ("usage_project_day", "usage_sector_week", "usage_user_day"):
        assert (
            isinstance(out[f"{key}_s"], float)
            and isinstance(out[f"{key}_rows"], int)
            and out[f"{key}_rows"] > 0
        )
    assert isinstance(out["public_gpu_hours"], float) and out["public_gpu_hours"] > 0


@pytest.mark.slow
def test_failover_benchmark_small() -> None:
    out = _run("failover.py", "--database", "sqlite", "--kills", "1", "--job-seconds", "5")
    assert out["kills"] == 1
    times = out["failover_s"]
    assert isinstance(times, list) and len(times) == 1 and times[0] > 0
    assert (out["lost"], out["duplicated"], out["double_booked"], out["launched_twice"]) == (0, 0, 0, 0)


@pytest.mark.slow
def test_cycle_under_load_benchmark_small() -> None:
    out = _run("cycle_under_load.py", "--modes", "process", "--seconds", "3", "--readers", "4")
    process = out["process"]
    assert isinstance(process, dict)
    for phase in ("without_readers", "with_readers"):
        assert process[phase]["cycles"] > 0 and process[phase]["p50_ms"] > 0
    assert process["reads"].get("ok", 0) > 0 and process["submissions"].get("ok", 0) > 0


@pytest.mark.slow
def test_sweep_speed_benchmark_small() -> None:
    out = _run("sweep_speed.py", "--small")
    assert out["runs"] == 4 and out["errors"] == 0
    assert out["same_rows"] is True
    for key in ("ray_wall_s", "serial_wall_s", "serial_over_ray", "sum_of_run_wall_s", "machine"):
        assert key in out, key


def test_fraction_placers_benchmark_small() -> None:
    out = _run("fraction_placers.py", "--small")
    fleets = out["fleets"]
    assert isinstance(fleets, dict) and set(fleets) == {"uniform", "mixed"}
    for fleet in fleets.values():
        placers = fleet["placers"]
        assert set(placers) == {"best-fit", "worst-fit", "packing", "frag-aware"}
        for r in placers.values():
            assert 0 < r["allocated_at_first_failure"] <= 1
            assert all(0 < v <= 1 for v in r["allocation_rate"].values())
