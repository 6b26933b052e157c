"""The twin says what it dropped: a trace row the scheduler would refuse stops the run, naming
file, line and field (exit code 2), or with --skip-bad-rows is left out and counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.fleetfile import load_fleet
from gpupool.sim.scenario import build_scenario
from gpupool.sim.trace import read_trace
from gpupool.sim.vetting import vet_workload
from gpupool.sim.workload import TraceError

runner = CliRunner()
HEADER = "submit_s,duration_s,gpus,tenant,priority_class,models,topology,gpus_per_worker,stacks\n"
GOOD = "0,60,1,academia/snu/vision,normal,H100,any,0,cuda\n"


def _trace(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "w.csv"
    path.write_text(HEADER + "".join(rows))
    return path


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ("5,30,2,academia/snu/vision,urgent,,any,0,\n", "priority_class", "'urgent'"),
        ("5,30,2,academia/snu/vision,normal,H1000,any,0,\n", "models", "unknown accelerator model 'H1000'"),
        ("5,30,2,academia/snu/vision,normal,,galaxy,0,\n", "topology", "unknown topology 'galaxy'"),
        ("5,30,3,academia/snu/vision,normal,,any,2,\n", "gpus_per_worker", "add up to gpus"),
        ("5,30,2,academia/snu/vision,normal,,any,0,opencl\n", "stacks", "unknown software stack 'opencl'"),
    ],
)
def test_a_row_the_scheduler_would_refuse_names_file_line_and_field(
    tmp_path: Path, row: str, field: str, words: str
) -> None:
    path = _trace(tmp_path, GOOD, row)
    catalogue = load_fleet("demo").catalogue
    with pytest.raises(TraceError) as e:
        vet_workload(read_trace(path), catalogue, str(path))
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 3, field)
    assert words in str(e.value)
    kept, bad = vet_workload(read_trace(path), catalogue, str(path), skip=True)
    assert [j.source_line for j in kept] == [2] and [b.line for b in bad] == [3]


def test_skipping_keeps_the_good_rows_and_lists_the_bad_in_line_order(tmp_path: Path) -> None:
    path = _trace(
        tmp_path,
        "9,30,1,academia/snu/vision,normal,H1000,any,0,\n",
        GOOD,
        "1,30,1,academia/snu/vision,urgent,,any,0,\n",
    )
    s = build_scenario("demo", None, str(path), skip_bad_rows=True)
    assert [j.source_line for j in s.jobs] == [3]
    assert [(e.line, e.field) for e in s.skipped] == [(2, "models"), (4, "priority_class")]
    assert "2 bad trace rows left out" in s.context["skipped rows"]


def test_the_cli_stops_at_a_bad_row_with_one_red_line_and_exit_code_2(tmp_path: Path) -> None:
    path = _trace(tmp_path, GOOD, "5,30,2,academia/snu/vision,urgent,,any,0,\n")
    r = runner.invoke(app, ["simulate", "--fleet", "demo", "--workload", str(path), "--policy", "fifo"])
    assert r.exit_code == 2
    assert f"{path}:3: field 'priority_class'" in r.stderr and "urgent" in r.stderr
    assert "Traceback" not in r.output


def test_the_cli_skips_bad_rows_when_told_and_counts_them(tmp_path: Path) -> None:
    path = _trace(
        tmp_path,
        GOOD,
        "5,30,2,academia/snu/vision,urgent,,any,0,\n",
        "7,30,2,academia/snu/vision,normal,X,any,0,\n",
    )
    out = tmp_path / "out"
    r = runner.invoke(
        app,
        ["simulate", "--fleet", "demo", "--workload", str(path), "--policy", "fifo", "--json",
         "--skip-bad-rows", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert (m["jobs"], m["finished"], m["unschedulable"], m["skipped_rows"]) == (1, 1, 0, 2)
    assert f"{path}:3: field 'priority_class'" in r.stderr and f"{path}:4: field 'models'" in r.stderr
    assert json.loads((out / "metrics.json").read_text())["fifo"]["skipped_rows"] == 2
    assert "2 bad trace rows left out" in (out / "report.html").read_text(encoding="utf-8")


def test_a_clean_trace_reports_no_skipped_rows(tmp_path: Path) -> None:
    path = _trace(tmp_path, GOOD)
    r = runner.invoke(
        app, ["simulate", "--fleet", "demo", "--workload", str(path), "--policy", "fifo", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["skipped_rows"] == 0
