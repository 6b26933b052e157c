"""Tests for gpupool.sim.trace: every format on its shipped files, bad rows, native round trip."""

from __future__ import annotations

import dataclasses
import itertools
import json
import string
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.sim.trace import (
    NATIVE_COLUMNS,
    POLLUX_TYPICAL_GPU_HOURS,
    TRACE_FORMATS,
    gavel_v100_throughputs,
    read_trace,
    shipped_trace,
    write_native,
)
from gpupool.sim.workload import TraceError, WorkloadJob

PHILLY = shipped_trace("philly/philly_jobs.csv")
TRACES_ROOT = PHILLY.parent.parent
ITP_JOBS = {"01": 1595, "02": 5778, "04": 15802, "05": 3629, "06": 2396, "08": 13047, "09": 11134}


def _philly_vcs() -> list[str]:
    return pl.read_csv(shipped_trace("philly/philly_vc_nodes.csv"))["vc"].to_list()


def _strip_lines(jobs: list[WorkloadJob]) -> list[WorkloadJob]:
    return [dataclasses.replace(job, source_line=0) for job in jobs]


# --------------------------------------------------------------------------- shipped data


def test_formats_are_named() -> None:
    assert set(TRACE_FORMATS) == {
        "philly",
        "itp-raw",
        "itp-elasticflow",
        "gavel",
        "pollux",
        "tiresias",
        "native",
    }


def test_shipped_trace_resolves_files_and_rejects_others() -> None:
    assert PHILLY.is_file()
    assert shipped_trace("gavel-throughputs/simulation_throughputs.json").is_file()
    with pytest.raises(FileNotFoundError):
        shipped_trace("philly/no_such_file.csv")
    with pytest.raises(FileNotFoundError):
        shipped_trace("../sim/trace.py")


def test_every_shipped_folder_has_source_and_licence() -> None:
    for folder in sorted(p for p in TRACES_ROOT.iterdir() if p.is_dir()):
        names = {p.name for p in folder.iterdir()}
        assert "SOURCE.md" in names, folder
        if folder.name != "sia-workloads":  # the Sia artifact has no licence file (SOURCE.md says so)
            assert any(n.startswith("LICENSE") for n in names), folder
    total = sum(p.stat().st_size for p in TRACES_ROOT.rglob("*") if p.is_file())
    assert total < 15_500_000


# --------------------------------------------------------------------------- philly


def test_philly_full_table() -> None:
    jobs = read_trace(PHILLY)
    assert len(jobs) == 82_247
    assert len({j.id for j in jobs}) == 82_247
    assert [j.submit_ms for j in jobs] == sorted(j.submit_ms for j in jobs)
    assert jobs[0].submit_ms == 0  # origin = earliest timestamp of the file
    assert jobs[-1].submit_ms == 9_408_690_000  # 2017-12-22 08:02:11 - 2017-09-04 10:30:41
    sizes = Counter(j.gpus for j in jobs)
    assert sizes[1] == 76_627 and sizes[128] == 3
    assert len({j.tenant for j in jobs}) == 15
    assert Counter(j.tenant for j in jobs)["6214e9"] == 41_226
    gpu_hours = sum(j.gpus * j.duration_ms for j in jobs) / 3_600_000
    assert gpu_hours == pytest.approx(978_078, abs=1)
    first_row = next(j for j in jobs if j.id == "philly-0")
    # Line 2 of the file: 2017-10-09 07:01:55,66.0,1,66.0,11cb48
    assert (first_row.source_line, first_row.duration_ms, first_row.gpus, first_row.tenant) == (
        2,
        66_000,
        1,
        "11cb48",
    )


def test_philly_window_restricted_to_vc_table() -> None:
    vcs = _philly_vcs()
    assert len(vcs) == 11
    jobs = read_trace(PHILLY, "philly", start="2017-10-01 00:00:00", end="2017-11-30 23:59:59", tenants=vcs)
    assert len(jobs) == 68_503
    assert {j.tenant for j in jobs} <= set(vcs)
    assert jobs[0].submit_ms >= 0  # relative to start
    assert jobs[-1].submit_ms <= 61 * 86_400_000
    # A bare date as end means the whole day.
    same = read_trace(PHILLY, start="2017-10-01", end="2017-11-30", tenants=vcs)
    assert same == jobs


def test_philly_ties_keep_file_order() -> None:
    jobs = read_trace(PHILLY)
    for a, b in itertools.pairwise(jobs):
        if a.submit_ms == b.submit_ms:
            assert a.source_line < b.source_line


def test_philly_bad_bound_is_value_error() -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        read_trace(PHILLY, start="October 1st")


def test_philly_reads_in_well_under_a_second() -> None:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        read_trace(PHILLY)
        best = min(best, time.perf_counter() - t0)
    assert best < 1.0, f"full Philly read took {best:.3f} s"


# --------------------------------------------------------------------------- other formats


@pytest.mark.parametrize("cluster", sorted(ITP_JOBS))
def test_itp_raw_and_elasticflow(cluster: str) -> None:
    raw = read_trace(shipped_trace(f"microsoft-itp-2021/raw/cluster{cluster}.csv"))
    ef = read_trace(shipped_trace(f"microsoft-itp-2021/elasticflow/cluster{cluster}.csv"), "itp-elasticflow")
    assert len(raw) == len(ef) == ITP_JOBS[cluster]
    assert {j.tenant for j in raw} == {f"itp-cluster{cluster}"}
    assert [(j.id, j.submit_ms, j.duration_ms, j.gpus) for j in raw] == [
        (j.id, j.submit_ms, j.duration_ms, j.gpus) for j in ef
    ]
    assert {j.workload_class for j in raw} == {"default"}
    assert {j.workload_class for j in ef} <= {
        "vgg16",
        "bert",
        "resnet50",
        "inception3",
        "gpt2",
        "deepspeech2",
    }


def test_itp_total_gpu_hours_and_relative_window() -> None:
    total = 0.0
    for cluster in ITP_JOBS:
        jobs = read_trace(shipped_trace(f"microsoft-itp-2021/raw/cluster{cluster}.csv"), "itp-raw")
        total += sum(j.gpus * j.duration_ms for j in jobs) / 3_600_000
    assert total == pytest.approx(1_096_454, abs=1)
    path = shipped_trace("microsoft-itp-2021/raw/cluster04.csv")
    every = read_trace(path)
    day = read_trace(path, start="86400", end="172800")
    expected = [j for j in every if 86_400_000 <= j.submit_ms <= 172_800_000]
    assert [j.id for j in day] == [j.id for j in expected]
    assert [j.submit_ms for j in day] == [j.submit_ms - 86_400_000 for j in expected]
    with pytest.raises(ValueError, match="seconds from the trace origin"):
        read_trace(path, start="2021-03-05")
    assert read_trace(path, tenants=["someone-else"]) == []
    with pytest.raises(TypeError):
        read_trace(path, tenants="itp-cluster04")


def test_gavel_msr_traces() -> None:
    files = sorted((TRACES_ROOT / "gavel-traces" / "msr-seed0").glob("*.trace"))
    assert len(files) == 15
    jobs = [j for f in files for j in read_trace(f)]
    assert len(jobs) == 15_264
    small = read_trace(shipped_trace("gavel-traces/msr-seed0/23dbec.trace"), "gavel")
    assert len(small) == 9 and {j.tenant for j in small} == {"23dbec"}
    first = small[0]
    assert first.workload_class == "Transformer (batch size 128)" and first.gpus == 1
    tput = gavel_v100_throughputs()[("Transformer (batch size 128)", 1)]
    assert first.duration_ms == round(14_612 / tput * 1000)
    cyclegan = next(j for j in small if j.workload_class == "CycleGAN")
    # CycleGAN cannot run distributed: its 8-GPU throughput is extrapolated from 1 GPU.
    assert cyclegan.gpus == 8
    assert cyclegan.duration_ms == round(55_992 / (gavel_v100_throughputs()[("CycleGAN", 1)] * 8) * 1000)


def test_gavel_physical_cluster_traces() -> None:
    files = sorted((TRACES_ROOT / "gavel-traces" / "physical_cluster").glob("*.trace"))
    counts = {f.stem: len(read_trace(f)) for f in files}
    assert sum(counts.values()) == 287
    assert counts["minimize_makespan"] == 100 and counts["highmem_test"] == 8


def test_gavel_table_shape() -> None:
    table = gavel_v100_throughputs()
    assert len(table) == 83
    assert len({t for t, _ in table}) == 26
    assert table[("ResNet-50 (batch size 64)", 1)] == pytest.approx(4.39, abs=0.01)


@pytest.mark.parametrize(
    "folder",
    [
        "pollux-workloads/workloads",
        "pollux-workloads/workloads-realistic",
        "sia-workloads/philly",
        "sia-workloads/saturn",
    ],
)
def test_pollux_and_sia_workloads(folder: str) -> None:
    files = sorted((TRACES_ROOT / folder).glob("*.csv"))
    assert len(files) == (10 if folder.endswith("saturn") else 8)
    for f in files:
        jobs = read_trace(f)
        assert len(jobs) == 160
        for j in jobs:
            hours = POLLUX_TYPICAL_GPU_HOURS[j.workload_class]
            assert j.duration_ms == round(hours * 3_600_000 / j.gpus)


def test_tiresias_example() -> None:
    jobs = read_trace(shipped_trace("tiresias/60_job.csv"))
    assert len(jobs) == 60
    first = jobs[0]
    assert (first.id, first.gpus, first.submit_ms, first.duration_ms, first.workload_class) == (
        "60_job-0",
        1,
        0,
        164_000,
        "vgg19",
    )


# --------------------------------------------------------------------------- malformed input

PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
GOOD_ROW = "2017-10-09 07:01:55,66.0,1,66.0,11cb48\n"


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (GOOD_ROW + "2017-10-09 07:01:56,abc,1,66.0,11cb48\n", 3, "duration", "not a number"),
        (GOOD_ROW + "2017-10-09 07:01:56,-5,1,66.0,11cb48\n", 3, "duration", "negative duration"),
        (GOOD_ROW + "2017-10-09 07:01:56,5,0,0,11cb48\n", 3, "num_gpus", ">= 1"),
        (GOOD_ROW + "2017-10-09 07:01:56,5,1.5,0,11cb48\n", 3, "num_gpus", "not an integer"),
        (GOOD_ROW + "2017-10-09 07:01:56,,1,0,11cb48\n", 3, "duration", "missing value"),
        (GOOD_ROW + "2017-13-09 07:01:56,5,1,5,11cb48\n", 3, "timestamp", "timestamp"),
        (GOOD_ROW + "2017-10-09 07:01:56,5,1,5,\n", 3, "cluster", "missing value"),
        (GOOD_ROW + "2017-10-09 07:01:56,5,1,5\n", 3, "cluster", "missing field"),
        (GOOD_ROW + "2017-10-09 07:01:56,5,1,5,a,b\n", 3, "", "wrong column count"),
        # Blank lines still count: the bad row is physical line 5.
        (GOOD_ROW + "\n\n2017-10-09 07:01:56,x,1,5,a\n", 5, "duration", "not a number"),
        # Two bad rows: the earlier line is reported whichever column is checked first.
        (GOOD_ROW + "2017-10-09 07:01:56,5,1,5,\n2017-10-09 07:01:56,x,1,5,a\n", 3, "cluster", "missing"),
    ],
)
def test_philly_bad_rows_name_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, message: str
) -> None:
    path = tmp_path / "philly.csv"
    path.write_text(PHILLY_HEADER + body)
    with pytest.raises(TraceError, match=message) as info:
        read_trace(path, "philly")
    assert (info.value.line, info.value.field, info.value.path) == (line, field, str(path))


@pytest.mark.parametrize(
    ("name", "text", "fmt", "line", "field", "message"),
    [
        ("empty.csv", "", "auto", 0, "", "empty file"),
        ("blank.csv", "\n  \n", "philly", 0, "", "empty file"),
        ("header.csv", PHILLY_HEADER, "philly", 0, "", "no data rows"),
        ("x.csv", PHILLY_HEADER + GOOD_ROW, "parquet", 0, "fmt", "unknown format"),
        ("odd.csv", "a,b,c\n1,2,3\n", "auto", 1, "", "unrecognised trace header"),
        ("h.csv", "timestamp,duration,num_gpus,cluster\n", "philly", 1, "gpu_time", "missing column"),
        ("h2.csv", PHILLY_HEADER.strip() + ",extra\n", "philly", 1, "extra", "unknown column"),
        (
            "itp.csv",
            "job_id,submission_time,duration,num_gpu\na,1,2,1\nb,3,4,1\na,5,6,1\n",
            "auto",
            4,
            "job_id",
            "duplicate id 'a' \\(first on line 2\\)",
        ),
        (
            "itp2.csv",
            "job_id,submission_time,duration,num_gpu\na,-1,2,1\n",
            "itp-raw",
            2,
            "submission_time",
            "negative",
        ),
        (
            "p.csv",
            "name,time,application,num_replicas,batch_size\nj,1,gpt9,1,8\n",
            "auto",
            2,
            "application",
            "unknown application",
        ),
        (
            "g.trace",
            "ResNet-50 (batch size 64)\tcmd\t-n\t1\t100\t0\t1\nMyNet\tcmd\t-n\t1\t100\t0\t1\n",
            "auto",
            2,
            "job_type",
            "unknown Gavel job type",
        ),
        ("g2.trace", "ResNet-50 (batch size 64)\tcmd\t-n\t1\t100\t0\t1\t9\n", "gavel", 1, "", "7 or 10"),
        (
            "g3.trace",
            "ResNet-50 (batch size 64)\tcmd\t-n\t1\t100\t0\t1\n"
            "ResNet-50 (batch size 64)\tcmd\t-n\t1\t100\t0\n",
            "gavel",
            2,
            "scale_factor",
            "missing field",
        ),
        (
            "n.csv",
            "submit_s,duration_s,gpus,tenant,colour\n1,2,1,a,red\n",
            "native",
            1,
            "colour",
            "unknown column",
        ),
        ("n2.csv", "submit_s,duration_s,tenant\n1,2,a\n", "native", 1, "gpus", "missing column"),
        (
            "n3.csv",
            "submit_s,duration_s,gpus,tenant,models\n1,2,1,a,x;;y\n",
            "native",
            2,
            "models",
            "empty name",
        ),
        (
            "n4.csv",
            'submit_s,duration_s,gpus,tenant\n1,2,1,"a,b"\n1,2,"x",c\n',
            "native",
            3,
            "gpus",
            "not a number",
        ),
        (
            "n5.csv",
            'submit_s,duration_s,gpus,tenant\n1,2,1,"multi\nline"\n1,-2,1,c\n',
            "native",
            4,
            "duration_s",
            "must be >= 0",
        ),
        ("n6.csv", 'submit_s,duration_s,gpus,tenant\n1,2,1,"open\n', "native", 2, "", "malformed CSV"),
        (
            "n.jsonl",
            '{"submit_s":1,"duration_s":2,"gpus":1,"tenant":"a"}\n{"submit_s":1,\n',
            "auto",
            2,
            "",
            "invalid JSON",
        ),
        (
            "n2.jsonl",
            '{"submit_s":1,"duration_s":2,"gpus":1,"tenant":"a","colour":1}\n',
            "auto",
            1,
            "colour",
            "unknown key",
        ),
        (
            "n3.jsonl",
            '\n{"submit_s":1,"duration_s":2,"gpus":true,"tenant":"a"}\n',
            "auto",
            2,
            "gpus",
            "not a number",
        ),
        ("n4.jsonl", '{"submit_s":1,"duration_s":2,"gpus":1}\n', "native", 1, "tenant", "missing value"),
        ("n5.jsonl", "[1, 2]\n", "native", 1, "", "JSON object"),
        (
            "n6.jsonl",
            '{"submit_s":1,"duration_s":2,"gpus":1,"tenant":"a","models":"x"}\n',
            "native",
            1,
            "models",
            "list",
        ),
        ("n.txt", "submit_s,duration_s,gpus,tenant\n1,2,1,a\n", "native", 0, "", ".csv or .jsonl"),
    ],
)
def test_bad_files_name_line_and_field(
    tmp_path: Path, name: str, text: str, fmt: str, line: int, field: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TraceError, match=message) as info:
        read_trace(path, fmt)
    assert (info.value.line, info.value.field) == (line, field)


def test_non_utf8_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (PHILLY_HEADER + GOOD_ROW).encode() + "2017-10-09 07:01:56,5,1,5,caf\xe9\n".encode("latin-1")
    )
    with pytest.raises(TraceError, match="UTF-8") as info:
        read_trace(path)
    assert info.value.line == 3


def test_missing_file_is_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "absent.csv", "philly")


def test_crlf_and_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(
        (PHILLY_HEADER + GOOD_ROW + GOOD_ROW.replace("11cb48", "aaaaaa")).replace("\n", "\r\n").encode()
        + b"\r\n\r\n"
    )
    jobs = read_trace(path)
    assert [(j.tenant, j.source_line) for j in jobs] == [("11cb48", 2), ("aaaaaa", 3)]


# --------------------------------------------------------------------------- native format


def _sample_jobs() -> list[WorkloadJob]:
    return [
        WorkloadJob(id="a", submit_ms=1_500, duration_ms=3_600_000, gpus=8, tenant="t1"),
        WorkloadJob(
            id='b,quoted "name"',
            submit_ms=0,
            duration_ms=1,
            gpus=64,
            tenant="tenant, with comma",
            user="alice",
            gpus_per_worker=8,
            models=("H100", "A100-80GB"),
            min_memory_gib=80,
            stacks=("cuda12",),
            topology="same-rack",
            workload_class="llm-pretrain",
            walltime_ms=7_200_123,
            priority_class="high",
            checkpoint_interval_ms=600_000,
            kind="inference",
        ),
        WorkloadJob(id="c", submit_ms=1_500, duration_ms=0, gpus=1, tenant="t2"),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_native_round_trip(tmp_path: Path, suffix: str) -> None:
    jobs = _sample_jobs()
    path = tmp_path / f"w{suffix}"
    write_native(jobs, path)
    back = read_trace(path)
    expected = sorted(jobs, key=lambda j: j.submit_ms)
    assert _strip_lines(back) == expected
    assert all(j.source_line > 0 for j in back)


def test_native_minimal_columns_get_defaults_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "mini.csv"
    path.write_text("tenant,gpus,duration_s,submit_s,models\nx,2,1.5,0.25,\ny,1,2,0,a;b\n")
    jobs = read_trace(path)
    assert [(j.id, j.submit_ms, j.duration_ms, j.gpus, j.tenant, j.models) for j in jobs] == [
        ("mini-1", 0, 2000, 1, "y", ("a", "b")),
        ("mini-0", 250, 1500, 2, "x", ()),
    ]
    assert jobs[0].topology == "any" and jobs[0].kind == "training"
    jl = tmp_path / "mini.jsonl"
    jl.write_text(json.dumps({"submit_s": 0.25, "duration_s": 1.5, "gpus": 2, "tenant": "x"}) + "\n")
    (job,) = read_trace(jl)
    assert (job.id, job.submit_ms, job.duration_ms) == ("mini-0", 250, 1500)


def test_native_header_lists_all_columns(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    write_native(_sample_jobs(), path)
    assert path.read_text().splitlines()[0].split(",") == list(NATIVE_COLUMNS)


@pytest.mark.parametrize(
    "job",
    [
        WorkloadJob(id="x", submit_ms=0, duration_ms=1, gpus=1, tenant=""),
        WorkloadJob(id="x", submit_ms=0, duration_ms=1, gpus=1, tenant="a\nb"),
        WorkloadJob(id="x", submit_ms=0, duration_ms=1, gpus=1, tenant="a", models=("a;b",)),
        WorkloadJob(id="x", submit_ms=-1, duration_ms=1, gpus=1, tenant="a"),
        WorkloadJob(id="x", submit_ms=0, duration_ms=1, gpus=0, tenant="a"),
    ],
)
def test_write_native_refuses_what_cannot_round_trip(tmp_path: Path, job: WorkloadJob) -> None:
    with pytest.raises(ValueError):
        write_native([job], tmp_path / "w.csv")


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(",;\"' "),
    min_size=1,
    max_size=12,
).filter(lambda s: bool(s.strip()))
_NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_. ,\"'é中", min_size=1, max_size=8).filter(
    lambda s: ";" not in s
)
_MS = st.integers(min_value=0, max_value=10**12)


@st.composite
def _jobs(draw: st.DrawFn) -> list[WorkloadJob]:
    ids = draw(st.lists(_TEXT, min_size=1, max_size=6, unique=True))
    return [
        WorkloadJob(
            id=job_id,
            submit_ms=draw(_MS),
            duration_ms=draw(_MS),
            gpus=draw(st.integers(min_value=1, max_value=100_000)),
            tenant=draw(_TEXT),
            user=draw(st.one_of(st.just(""), _TEXT)),
            gpus_per_worker=draw(st.integers(min_value=0, max_value=16)),
            models=tuple(draw(st.lists(_NAME, max_size=3))),
            min_memory_gib=draw(st.integers(min_value=0, max_value=1024)),
            stacks=tuple(draw(st.lists(_NAME, max_size=2))),
            topology=draw(_TEXT),
            workload_class=draw(_TEXT),
            walltime_ms=draw(_MS),
            priority_class=draw(_TEXT),
            checkpoint_interval_ms=draw(_MS),
            kind=draw(_TEXT),
        )
        for job_id in ids
    ]


@settings(max_examples=150, deadline=None)
@given(jobs=_jobs(), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_native_round_trip_property(jobs: list[WorkloadJob], suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"w{suffix}"
        write_native(jobs, path)
        back = read_trace(path)
    assert _strip_lines(back) == sorted(jobs, key=lambda j: j.submit_ms)
