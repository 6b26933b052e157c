"""Pipelines in the twin: dependencies read from the native format and simulated."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.core.scheduler import SchedulerConfig
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.trace.native import write_native
from gpupool.sim.trace.reader import read_trace
from gpupool.sim.workload import TraceError, WorkloadJob

from .builders import fleet, tenants

HEADER = "id,submit_s,duration_s,gpus,tenant,dependency\n"


def run(jobs: list[WorkloadJob], nodes: int = 1) -> dict[str, tuple[int, int, str]]:
    r = simulate(
        fleet(racks=1, nodes_per_rack=nodes), tenants("p"), jobs, SimConfig(SchedulerConfig(policy="fifo"))
    )
    return {j.id: (j.first_start_ms, j.end_ms, j.state) for j in r.jobs}


def test_a_pipeline_from_a_native_csv_runs_stage_after_stage(tmp_path: Path) -> None:
    trace = tmp_path / "pipe.csv"
    # two nodes: without its dependency, "train" would start at once beside "prep"
    trace.write_text(
        HEADER
        + "prep,0,100,8,p,\n"
        + "train,0,300,8,p,afterok:prep\n"
        + "eval,0,50,4,p,afterok:train\n"
        + "report,10,10,1,p,afterany:eval:prep\n"
        + "other,5,20,8,p,\n"
    )
    jobs = read_trace(trace)
    assert [j.dependency for j in jobs if j.id == "eval"] == ["afterok:train"]
    got = run(jobs, nodes=2)
    assert got["prep"][:2] == (0, 100_000)
    assert got["other"][0] == 5_000  # the held stages leave the second node to it
    assert got["train"][:2] == (100_000, 400_000)
    assert got["eval"][:2] == (400_000, 450_000)
    assert got["report"][0] == 450_000
    assert {s for *_, s in got.values()} == {"finished"}


def test_native_jsonl_round_trips_dependencies(tmp_path: Path) -> None:
    jobs = [
        WorkloadJob("a", 0, 1000, 1, "p"),
        WorkloadJob("b", 0, 1000, 1, "p", dependency="afterok:a"),
    ]
    for name in ("w.jsonl", "w.csv"):
        write_native(jobs, tmp_path / name)
        back = read_trace(tmp_path / name)
        assert [(j.id, j.dependency) for j in back] == [("a", ""), ("b", "afterok:a")]


def test_a_failed_stage_ends_what_needs_it(tmp_path: Path) -> None:
    # the 16-GPU stage can never fit one 8-GPU node: rejected, so afterok on it never is met
    jobs = [
        WorkloadJob("big", 0, 1000, 16, "p"),
        WorkloadJob("next", 0, 1000, 1, "p", dependency="afterok:big"),
        WorkloadJob("cleanup", 0, 1000, 1, "p", dependency="afternotok:big"),
    ]
    got = run(jobs)
    assert got["next"][2] == "unschedulable" and got["cleanup"][2] == "finished"


@pytest.mark.parametrize(
    ("rows", "line", "words"),
    [
        ("a,0,1,1,p,afterwards:b\n", 2, "unknown dependency type"),
        ("a,0,1,1,p,afterok:zz\n", 2, "does not hold"),
        ("a,0,1,1,p,afterok:b\nb,0,1,1,p,afterok:a\n", 2, "dependency cycle: a -> b -> a"),
        ("a,0,1,1,p,afterok:b\nb,5,1,1,p,\n", 2, "submitted after it"),
    ],
)
def test_bad_dependencies_in_a_trace_name_file_line_and_field(
    tmp_path: Path, rows: str, line: int, words: str
) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text(HEADER + rows)
    with pytest.raises(TraceError) as e:
        read_trace(trace)
    assert (e.value.line, e.value.field) == (line, "dependency") and words in e.value.message


def test_an_array_from_a_native_csv_runs_its_tasks_within_its_limit_then_its_dependant(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "sweep.csv"
    trace.write_text(
        "id,submit_s,duration_s,gpus,tenant,dependency,array\n"
        + "sweep,0,100,1,p,,0-5%2\n"
        + "collect,0,10,1,p,afterok:sweep,\n"
        + "peek,0,10,1,p,afterany:sweep_3,\n"
    )
    got = run(read_trace(trace), nodes=1)
    starts = sorted(got[f"sweep_{i}"][0] for i in range(6))
    assert starts == [0, 0, 100_000, 100_000, 200_000, 200_000]  # two at a time, of 8 free
    assert got["peek"][0] == got["sweep_3"][1]
    assert got["collect"][0] == 300_000 and "sweep" not in got


def test_a_bad_array_cell_names_file_line_and_field(tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("id,submit_s,duration_s,gpus,tenant,array\n" + "a,0,1,1,p,9-1\n")
    with pytest.raises(TraceError) as e:
        read_trace(trace)
    assert (e.value.line, e.value.field) == (2, "array") and "ends before" in e.value.message
