"""Smoke test of the benchmarks: each runs at a tiny size and prints the JSON it promises.

Not a timing test: it checks keys and basic sanity, never how fast anything ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert out["gpus"] == 261_024 or isinstance(out["gpus"], int)
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
