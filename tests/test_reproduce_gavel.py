"""Smoke test of the Gavel reproduction benchmark (``--quick``: small windows, one process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_gavel.py"
KEYS = (
    "las_avg_jct_h",
    "hetero_las_avg_jct_h",
    "fifo_avg_jct_h",
    "hetero_fifo_avg_jct_h",
    "makespan_fifo_h",
    "makespan_hetero_h",
)


@pytest.mark.slow
def test_quick_run_prints_ours_next_to_the_published_numbers() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(done.stdout)
    for key in KEYS:
        assert report[key] is not None and report[key] > 0, key
        assert report["published"][key] > 0
        case = report["cases"][key]
        assert case["finished_jobs"] == case["measured_jobs"] > 0
        assert case["wall_s"] >= 0
    # even on small windows the heterogeneity-aware forms win
    assert report["hetero_las_avg_jct_h"] < report["las_avg_jct_h"]
    assert report["hetero_fifo_avg_jct_h"] < report["fifo_avg_jct_h"]
    assert report["makespan_hetero_h"] < report["makespan_fifo_h"]
