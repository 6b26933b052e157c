"""``gpupool whatif --from SNAPSHOT``: the live state plus changes, baseline and change side by side.

A service with running, pending and recent jobs is snapshotted; the CLI adds H100 nodes,
raises a guarantee and scales the load by 1.5 over a few hours. The change has the added
accelerators, more jobs, and the figures come per sector and project; bad changes exit 2
naming the option.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.service.live_whatif import LiveChange, changed_fleet, changed_tenants, workload
from gpupool.service.twin_snapshot import Snapshot, write_folder
from gpupool.sim.trace.reader import read_trace
from tests.service.conftest import Service

MIN = 60_000


def _snapshot(service: Service, out: Path) -> Path:
    for i in range(12):
        user, project = ("minjun.kim", "vision") if i % 2 else ("jungmin.park", "climate")
        r = service.submit(user, project=project, gpus=(8, 4, 2)[i % 3], models=["H100"], walltime_s=3600)
        assert r.status_code == 201, r.text
        service.cycle()
        service.clock.advance(10 * MIN)
        if service.executor.live:
            service.executor.finish(sorted(service.executor.live)[0], 0)
        service.cycle()
    for _ in range(4):  # a backlog at the snapshot: three of them run, one waits (24 H100)
        assert service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).status_code == 201
    service.cycle()
    write_folder(service.call("GET", "/v1/twin/snapshot").json(), out)
    return out


def test_whatif_from_a_snapshot_compares_baseline_and_change(service: Service, tmp_path: Path) -> None:
    snap_dir = _snapshot(service, tmp_path / "snap")
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["whatif", "--from", str(snap_dir), "--add-nodes", "kisti:H100:2:8", "--scale-load", "1.5",
         "--guarantee", "public-research/kisti/climate:H100:8", "--hours", "4", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    base, change = doc["baseline"], doc["change"]
    assert change["gpus"] == base["gpus"] + 16
    assert change["jobs"] > base["jobs"] > 0
    assert "public-research" in base["sectors"] and "academia/snu/vision" in base["projects"]
    assert {r["what"] for r in doc["compare"]} >= {
        "avg_queue_s",
        "utilization",
        "jain_fairness",
        "guarantees_met",
    }
    text = runner.invoke(
        app, ["whatif", "--from", str(snap_dir), "--remove-nodes", "kisti:H100:1", "--hours", "2"]
    )
    assert text.exit_code == 0, text.output
    assert "baseline" in text.output and "sector academia: avg wait s" in text.output


def test_bad_changes_name_the_option(service: Service, tmp_path: Path) -> None:
    snap_dir = _snapshot(service, tmp_path / "snap")
    runner = CliRunner()
    for args, needle in (
        (["--add-nodes", "kisti:H100:many"], "add_nodes"),
        (["--add-nodes", "kisti:H100:1000000000"], "must be from 1 to 50,000"),
        (["--add-nodes", "kisti:H100:2:100000"], "must be from 1 to 128"),
        (["--add-nodes", "nowhere:H100:2"], "no cluster 'nowhere'"),
        (["--remove-nodes", "kisti:H100:999"], "remove_nodes"),
        (["--weight", "academia/none:2"], "no tenant"),
        (["--scale-load", "0"], "scale_load"),
    ):
        res = runner.invoke(app, ["whatif", "--from", str(snap_dir), "--hours", "1", *args])
        assert res.exit_code == 2 and needle in res.output, (args, res.output)


def test_the_workload_is_the_backlog_then_the_history_scaled(service: Service, tmp_path: Path) -> None:
    snap = Snapshot.read(_snapshot(service, tmp_path / "snap"))
    history = read_trace(tmp_path / "snap" / "history.csv", "native")
    assert len(history) == 16
    base = workload(snap, history, 1.0, 24, 0)
    double = workload(snap, history, 2.0, 24, 0)
    backlog = [j for j in base if j.submit_ms == 0 and not j.id.startswith("h")]
    assert len(backlog) == len(snap.point.pending) + len(snap.point.running()) > 0
    assert len(double) - len(backlog) == 2 * (len(base) - len(backlog))
    fleet_doc = {"sites": [{"name": "s", "clusters": [{"name": "a", "blocks": [
        {"name": "b", "racks": [{"name": "r", "nodes": [{"name": f"n{i}", "model": "H100", "gpus": 8}
                                                          for i in range(3)]}]}]}]}]}  # fmt: skip
    moved = changed_fleet(
        fleet_doc, LiveChange(add_nodes=(("a", "H200", 2, 4),), remove_nodes=(("a", "H100", 1),))
    )
    nodes = [n for b in moved["sites"][0]["clusters"][0]["blocks"] for r in b["racks"] for n in r["nodes"]]
    assert sorted((n["model"], n["gpus"]) for n in nodes) == [("H100", 8)] * 2 + [("H200", 4)] * 2
    tdoc = {"sectors": {"s": {"organisations": {"o": {"projects": {"p": {"weight": 1}}}}}}}
    t = changed_tenants(tdoc, LiveChange(weights=(("s/o/p", 3.0),), awards=(("s/o/p", 100.0),)))
    assert t["sectors"]["s"]["organisations"]["o"]["projects"]["p"] == {
        "weight": 3.0,
        "budget_gpu_hours": 100.0,
    }


def test_twin_commands_refuse_what_is_not_a_snapshot(tmp_path: Path) -> None:
    runner = CliRunner()
    for cmd in (["twin", "replay", "--from", str(tmp_path)], ["whatif", "--from", str(tmp_path)]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2 and "not a snapshot folder" in res.output, res.output
    (tmp_path / "state.json").write_text('{"format": "something else"}')
    res = runner.invoke(app, ["twin", "replay", "--from", str(tmp_path)])
    assert res.exit_code == 2 and "field 'format'" in res.output, res.output
