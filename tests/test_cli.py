"""End-to-end through the ``gpupool`` command: what a user types, what they get."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gpupool.cli.main import app

runner = CliRunner()
KEYS = {"jobs", "avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "makespan_s", "utilization",
        "jain_fairness", "wall_s", "jobs_per_wall_s"}  # fmt: skip


def test_simulate_json_prints_one_object_with_the_documented_keys() -> None:
    r = runner.invoke(app, ["simulate", "--fleet", "demo", "--workload", "synthetic", "--hours", "6",
                            "--policy", "fairshare", "--backfill", "easy", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert set(m) >= KEYS and m["policy"] == "fairshare+easy" and m["jobs"] > 0


def test_compare_json_is_keyed_by_policy_and_out_writes_the_report(tmp_path: Path) -> None:
    r = runner.invoke(app, ["compare", "--fleet", "demo", "--hours", "6", "--policies", "fifo,sjf+easy,las",
                            "--json", "--out", str(tmp_path)])  # fmt: skip
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert set(got) == {"fifo", "sjf+easy", "las"}
    for m in got.values():
        assert set(m) >= KEYS
    assert {p.name for p in tmp_path.iterdir()} >= {"metrics.json", "jobs.csv", "report.html"}
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64" in html


def test_simulate_reads_a_trace_file_and_names_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "w.csv"
    good.write_text(
        "submit_s,duration_s,gpus,tenant\n0,60,1,academia/snu/vision\n5,30,2,academia/snu/vision\n"
    )
    r = runner.invoke(
        app, ["simulate", "--fleet", "demo", "--workload", str(good), "--policy", "fifo", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["finished"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("submit_s,duration_s,gpus,tenant\n0,60,1,x\n5,-3,2,x\n")
    r = runner.invoke(app, ["simulate", "--fleet", "demo", "--workload", str(bad)])
    assert r.exit_code == 2
    assert "bad.csv:3" in r.stderr and "duration" in r.stderr


def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["simulate", "--fleet", "nowhere"])
    assert r.exit_code == 2 and "nowhere" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(app, ["simulate", "--policy", "random"])
    assert r.exit_code == 2 and "unknown policy" in r.stderr
    r = runner.invoke(app, ["compare", "--policies", "fifo,fifo"])
    assert r.exit_code == 2 and "twice" in r.stderr
    r = runner.invoke(app, ["simulate", "--workload", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "missing.csv" in r.stderr


def test_the_installed_console_script_runs_the_demo(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("gpupool")
    out = tmp_path / "demo"
    argv = [str(exe), "demo", "--twin", "--out", str(out), "--hours", "6"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    assert "fairshare+easy" in p.stdout and (out / "report.html").exists()


def test_demo_starts_the_platform_with_sample_jobs_and_prints_url_and_tokens(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("gpupool")
    argv = [str(exe), "demo", "--data-dir", str(tmp_path / "d"), "--port", str(port), "--serve-for", "3"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert f"http://127.0.0.1:{port}" in p.stdout
    assert "pool admin token: gpt_" in p.stdout and "minjun.kim" in p.stdout
    # three sample jobs are accepted; all-h100 (24 H100) is refused: vision may hold 16
    assert p.stdout.count("HTTP 201") == 3
    assert (
        "submitted 'all-h100': HTTP 422 never startable: 24 H100 exceed academia/snu/vision's "
        "guarantee 0 + borrow limit 16 of any model" in " ".join(p.stdout.split())  # lines wrap
    )
    assert (tmp_path / "d" / "gpupool.db").exists()


def test_the_cli_starts_without_the_simulator_scipy_or_matplotlib() -> None:
    # ``gpupool queue`` is typed often: its process must not import what only ``simulate``
    # needs (they took ~1 s to import together). The service must not need polars either.
    import subprocess
    import sys

    heavy = ("scipy", "matplotlib", "polars", "gpupool.sim.scenario")
    code = (
        "import sys, gpupool.cli.main, gpupool.service.api.app; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
