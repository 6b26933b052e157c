"""Advance reservations in the twin: the reservations file, and a simulated maintenance window."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.core.scheduler import SchedulerConfig
from gpupool.sim.reservations_file import ReservationsFileError, read_reservations
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import fleet, tenants

H = 3_600_000


def test_a_maintenance_window_over_the_whole_fleet_holds_every_job_that_would_overlap_it(
    tmp_path: Path,
) -> None:
    f = tmp_path / "reservations.csv"
    f.write_text(
        "# maintenance of the whole (one-node) fleet from hour 2 to hour 4\n"
        "id,start_s,end_s,cluster,model,count,nodes,tenants\n"
        "m1,7200,14400,c0,H100,8,,\n"
    )
    resv = tuple(read_reservations(f))
    # a job every half hour for 3 hours, each 1 h (walltime 1 h), 8 GPUs: one at a time
    jobs = [WorkloadJob(f"j{i}", i * H // 2, H, 8, "p", walltime_ms=H) for i in range(7)]
    cfg = SimConfig(SchedulerConfig(policy="fifo", backfill="easy"), reservations=resv)
    got = {r.id: r for r in simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg).jobs}
    for r in got.values():
        assert r.first_start_ms >= 0
        start, end = r.first_start_ms, r.first_start_ms + H
        assert not (start < 4 * H and end > 2 * H), (r.id, start)
    assert got["j1"].first_start_ms == 1 * H  # ends at hour 2, as the window opens
    assert got["j2"].first_start_ms == 4 * H  # held until the window closes
    # without the window it would have run at hour 2
    plain = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, SimConfig(cfg.scheduler))
    assert {r.id: r.first_start_ms for r in plain.jobs}["j2"] == 2 * H


@pytest.mark.parametrize(
    "row,where",
    [
        ("m,10,5,c0,H100,8,,", "end_s"),
        ("m,x,5,c0,H100,8,,", "start_s"),
        ("m,0,5,,,,,", "nodes"),
    ],
)
def test_bad_rows_name_the_file_line_and_field(tmp_path: Path, row: str, where: str) -> None:
    f = tmp_path / "r.csv"
    f.write_text(f"id,start_s,end_s,cluster,model,count,nodes,tenants\n{row}\n")
    with pytest.raises(ReservationsFileError, match=rf"r.csv:2: {where}:"):
        read_reservations(f)


def test_simulate_reads_a_reservations_file_and_names_a_bad_one(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from gpupool.cli.main import app

    f = tmp_path / "resv.csv"
    head = "id,start_s,end_s,cluster,model,count,nodes,tenants\n"
    f.write_text(head + "m1,3600,10800,kisti,H100,24,,\n")  # every H100 of the demo fleet for 2 h
    args = ["simulate", "--fleet", "demo", "--hours", "4", "--json", "--reservations", str(f)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    held = json.loads(r.stdout)
    plain = json.loads(CliRunner().invoke(app, args[:-2]).stdout)
    assert held != plain  # the window changed what ran
    f.write_text(head + "m1,3600,10800,kisti,H100,25,,\n")
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert f"{f}: reservation m1: count: count 25 exceeds the 24 H100 of kisti" in " ".join(r.output.split())
