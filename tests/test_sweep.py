"""Sweeps: the cross product, the changes, the confidence intervals, and a sweep on a local Ray."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from gpupool.core.tenancy import TenancyError
from gpupool.fleetfile import load_fleet, load_tenants
from gpupool.sim.sweep import (
    Change,
    SweepError,
    SweepSpec,
    mean_ci,
    override_guarantees,
    parse_change,
    run_one,
    run_sweep,
    scale_fleet,
    summarise,
)
from gpupool.sim.sweep_report import write_sweep


def spec(**kw: object) -> SweepSpec:
    base: dict[str, object] = dict(
        fleet="demo",
        tenants=None,
        workload="synthetic",
        hours=2.0,
        policies=("fifo", "fairshare+easy"),
        changes=(Change(),),
        loads=(0.8,),
        seeds=(0, 1),
    )
    base.update(kw)
    return SweepSpec(**base)  # type: ignore[arg-type]


def test_the_cross_product_has_every_combination_once_in_order() -> None:
    s = spec(changes=(Change("a"), Change("b", fleet_scale=2)), loads=(0.5, 0.9), seeds=(0, 1, 2))
    runs = s.runs()
    assert len(runs) == 2 * 2 * 2 * 3
    keys = [(r.policy, r.change.name, r.load, r.seed) for r in runs]
    assert len(set(keys)) == len(keys)
    assert keys[0] == ("fifo", "a", 0.5, 0) and keys[-1] == ("fairshare+easy", "b", 0.9, 2)


def test_a_sweep_refuses_duplicates_and_empty_lists() -> None:
    with pytest.raises(SweepError, match="seeds names a value twice"):
        spec(seeds=(1, 1))
    with pytest.raises(SweepError, match="at least one of loads"):
        spec(loads=())
    with pytest.raises(SweepError, match="two changes share a name"):
        spec(changes=(Change("x"), Change("x", fleet_scale=2)))


def test_changes_parse_from_the_command_line_syntax() -> None:
    assert parse_change("base") == Change("base")
    c = parse_change("gov=fleet:0.5,failures:10,mttr:48,guarantee:academia/snu/H100:16")
    assert c == Change("gov", 0.5, 10.0, 48.0, (("academia/snu", "H100", 16),))
    with pytest.raises(SweepError, match="unknown item 'racks'"):
        parse_change("x=racks:3")
    with pytest.raises(SweepError, match="bad value in 'fleet:-1'"):
        parse_change("x=fleet:-1")
    with pytest.raises(SweepError, match="no name"):
        parse_change("=fleet:2")


def test_the_confidence_interval_is_students_t_over_the_seeds() -> None:
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    # sd 1, t(0.975, 2 df) = 4.302653
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean_ci([5.0]) == (5.0, None, 1)
    assert mean_ci([None, 4.0, 6.0])[:2] == (5.0, pytest.approx(12.706205))  # sd sqrt(2), n 2
    assert mean_ci([None]) == (None, None, 0)


def test_the_summary_groups_seeds_per_policy_change_and_load() -> None:
    rows = [
        {"policy": "fifo", "change": "base", "load": 0.8, "seed": s, "avg_queue_s": q, "error": ""}
        for s, q in ((0, 10.0), (1, 20.0), (2, 30.0))
    ] + [{"policy": "las", "change": "base", "load": 0.8, "seed": 0, "avg_queue_s": None, "error": "stuck"}]
    out = {r["policy"]: r for r in summarise(rows)}
    assert out["fifo"]["runs"] == 3 and out["fifo"]["errors"] == 0
    assert out["fifo"]["avg_queue_s_mean"] == 20.0
    assert out["fifo"]["avg_queue_s_ci95"] == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-6)
    assert out["las"]["errors"] == 1 and out["las"]["avg_queue_s_mean"] is None


def test_scaling_the_fleet_keeps_every_pool_and_scales_its_nodes() -> None:
    demo = load_fleet("demo")
    double = scale_fleet(demo, 2.0)
    assert double.total_gpus == 2 * demo.total_gpus
    assert set(double.gpus_by_pool) == set(demo.gpus_by_pool)
    assert len(set(double.node_by_name)) == 2 * len(demo.nodes)
    assert [n.index for n in double.nodes] == list(range(len(double.nodes)))
    half = scale_fleet(demo, 0.5)
    # H100 has 3 nodes in kisti: round(1.5) = 2; every one-node pool keeps its node
    assert half.gpus_by_model()["H100"] == 16 and half.gpus_by_model()["H200"] == 8


def test_a_guarantee_override_is_checked_against_the_fleet() -> None:
    fleet = load_fleet("demo")
    tenancy = load_tenants("demo", fleet)
    project = tenancy.nodes[tenancy.projects[0]].path
    t = override_guarantees(tenancy, fleet, [(project, "H100", 8)])
    assert t.nodes[t.by_path[project]].guaranteed["H100"] == 8
    with pytest.raises(TenancyError, match="but the parent guarantees only"):
        override_guarantees(tenancy, fleet, [(project, "H100", 1000)])
    root = project.split("/")[0]
    with pytest.raises(TenancyError, match="above the fleet's capacity of 24"):
        override_guarantees(tenancy, fleet, [(root, "H100", 1000)])
    with pytest.raises(TenancyError, match="unknown tenant 'nobody/here'"):
        override_guarantees(tenancy, fleet, [("nobody/here", "H100", 1)])


def test_an_infeasible_change_is_a_row_with_an_error_not_a_lost_sweep() -> None:
    s = spec(changes=(Change("greedy", guarantees=(("nobody/here", "*", 1),)),), seeds=(0,))
    row = run_one(s.runs()[0])
    assert row["error"].startswith("TenancyError") and row["avg_queue_s"] is None


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    # short: Ray's socket paths under it must stay within the 107-byte limit of AF_UNIX
    d = tempfile.mkdtemp(prefix="gpr")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_gives_the_same_rows_as_running_them_here(
    ray_tmp: str, tmp_path: Path
) -> None:
    s = spec(changes=(Change("base"), Change("flaky", failure_scale=500, mttr_h=1)), policies=("fifo",))
    seen: list[int] = []
    rows = run_sweep(s, num_cpus=2, temp_dir=ray_tmp, progress=lambda d, _n: seen.append(d))
    assert len(rows) == 4 and seen[0] == 0 and seen[-1] == 4
    assert [(r["change"], r["seed"]) for r in rows] == [("base", 0), ("base", 1), ("flaky", 0), ("flaky", 1)]
    assert all(r["error"] == "" and r["jobs"] > 0 for r in rows)
    assert all(r["node_failures"] > 0 for r in rows if r["change"] == "flaky")
    here = run_sweep(s, serial=True)
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in here]

    summary = summarise(rows)
    assert [(x["change"], x["runs"]) for x in summary] == [("base", 2), ("flaky", 2)]
    for x in summary:
        vals = [r["avg_queue_s"] for r in rows if r["change"] == x["change"]]
        assert x["avg_queue_s_mean"] == pytest.approx(sum(vals) / 2)
        assert x["avg_queue_s_ci95"] == pytest.approx(12.706205 * abs(vals[0] - vals[1]) / 2, rel=1e-6)

    report = write_sweep(tmp_path, rows, summary, "test sweep")
    table = pl.read_parquet(tmp_path / "runs.parquet")
    assert table.height == 4 and {"policy", "change", "load", "seed", "avg_queue_s", "error"} <= set(
        table.columns
    )
    assert pl.read_csv(tmp_path / "runs.csv").height == 4
    ci = pl.read_csv(tmp_path / "summary.csv")
    assert ci.height == 2 and {"avg_queue_s_mean", "avg_queue_s_ci95", "utilization_ci95"} <= set(ci.columns)
    assert "data:image/png;base64," in report.read_text()


def test_an_address_where_no_ray_answers_fails_fast_and_says_so() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SweepError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        run_sweep(spec(seeds=(0,)), address=f"127.0.0.1:{port}")


@pytest.mark.slow
def test_the_sweep_command_writes_the_table_summary_and_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gpupool.cli.main import app

    runner = CliRunner()
    args = ["sweep", "--serial", "--hours", "2", "--policies", "fifo", "--seeds", "0,1"]
    r = runner.invoke(app, [*args, "--change", "base", "--change", "tight=fleet:0.5", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    runs = pl.read_csv(tmp_path / "runs.csv")
    assert runs.height == 4
    # halving the demo fleet leaves 4 GB200 under an 8-GB200 guarantee: an error row each
    tight = runs.filter(pl.col("change") == "tight")
    assert tight["error"].str.contains("above the fleet's capacity of 4").all()
    assert runs.filter(pl.col("change") == "base")["avg_queue_s"].null_count() == 0
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "report.html").exists()
    bad = runner.invoke(app, [*args, "--change", "x=racks:2"])
    assert bad.exit_code == 2 and "unknown item 'racks'" in bad.output
