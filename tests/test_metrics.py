"""Metrics of hand-built runs whose right answers are worked out by hand in each test."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.sim.metrics import (
    JobArrays,
    compute_metrics,
    jain_index,
    queue_series,
    utilization,
    utilization_series,
)
from gpupool.sim.records import JobRecord, PoolSample, RunResult

H = 3_600_000  # ms per hour


def job(
    jid: str,
    tenant: str = "t",
    *,
    submit: int = 0,
    start: int = -1,
    end: int = -1,
    gpus: int = 1,
    state: str = "finished",
    gpu_ms: int | None = None,
    preemptions: int = 0,
    lost_gpu_ms: int = 0,
) -> JobRecord:
    run = (end - start) if start >= 0 and end >= 0 else 0
    return JobRecord(
        id=jid,
        tenant=tenant,
        gpus=gpus,
        submit_ms=submit,
        duration_ms=run,
        state=state,
        first_start_ms=start,
        end_ms=end,
        run_ms=run,
        gpu_ms=run * gpus if gpu_ms is None else gpu_ms,
        preemptions=preemptions,
        lost_gpu_ms=lost_gpu_ms,
    )


def result(
    jobs: list[JobRecord],
    samples: list[PoolSample] | None = None,
    **kw: Any,
) -> RunResult:
    return RunResult(policy=kw.pop("policy", "p"), jobs=jobs, samples=samples or [], total_gpus=10, **kw)


def sample(t: int, busy: int, total: int = 10, pending: int = 0) -> PoolSample:
    return PoolSample(t_ms=t, busy_gpus=busy, total_gpus=total, pending_jobs=pending, running_jobs=0)


# --------------------------------------------------------------------------- JCT, queue


def test_two_jobs_exact_jct_and_queue_statistics() -> None:
    # a: submitted 0, ran 0..10 s -> JCT 10 s, waited 0 s.
    # b: submitted 1 s, ran 5..31 s -> JCT 30 s, waited 4 s.
    m = compute_metrics(
        result([job("a", start=0, end=10_000), job("b", submit=1_000, start=5_000, end=31_000)])
    )
    assert m["jobs"] == 2 and m["finished"] == 2
    assert m["avg_jct_s"] == 20.0
    assert m["p50_jct_s"] == 20.0  # linear: midway between the two
    assert m["p95_jct_s"] == pytest.approx(10 + 0.95 * 20)
    assert m["p99_jct_s"] == pytest.approx(10 + 0.99 * 20)
    assert m["avg_queue_s"] == 2.0
    assert m["p50_queue_s"] == 2.0
    assert m["p99_queue_s"] == pytest.approx(0.99 * 4)
    assert m["makespan_s"] == 31.0  # last end 31 s minus first submit 0


def test_states_and_populations() -> None:
    jobs = [
        job("fin", submit=0, start=0, end=4_000),
        job("running", submit=0, start=2_000, state="unfinished"),  # started: counts for queue only
        job("pending", submit=1_000, state="unfinished"),
        job("never", submit=0, state="unschedulable"),
        job("gone", submit=500, start=1_000, end=3_000, state="cancelled"),
    ]
    m = compute_metrics(result(jobs))
    assert (m["jobs"], m["finished"], m["unfinished"], m["unschedulable"], m["cancelled"]) == (5, 1, 2, 1, 1)
    # JCT over the finished job only; queue over the three that started: 0, 2 and 0.5 s.
    assert m["avg_jct_s"] == 4.0 and m["p99_jct_s"] == 4.0
    assert m["avg_queue_s"] == pytest.approx((0 + 2 + 0.5) / 3)
    # Last end (the cancelled job's 3 s is before the finished one's 4 s) minus first submit.
    assert m["makespan_s"] == 4.0


def test_undefined_metrics_are_none_and_json_stays_strict() -> None:
    m = compute_metrics(result([job("p", state="unfinished")]))
    for key in ("avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "makespan_s", "cycle_ms_p50"):
        assert m[key] is None, key
    assert m["jobs_per_wall_s"] is None  # wall_s is 0
    json.dumps(m, allow_nan=False)


def test_empty_run() -> None:
    m = compute_metrics(result([]))
    assert m["jobs"] == 0 and m["utilization"] == 0.0 and m["jain_fairness"] is None
    assert m["tenants"] == [] and m["sectors"] == []


def _plain(x: object) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or type(x) in (int, float, str, bool)


def test_metrics_are_plain_python_values() -> None:
    jobs = [job("a", "서울대학교", start=0, end=H), job("b", "KAIST", submit=5, start=10, end=20)]
    m = compute_metrics(result(jobs, [sample(0, 3)], cycle_ms=[1.0, 2.0], wall_s=1.5))
    assert _plain(m)  # no numpy scalars sneaking into the JSON
    json.loads(json.dumps(m, allow_nan=False, ensure_ascii=False))


# --------------------------------------------------------------------------- utilisation


def test_utilization_of_known_step_function() -> None:
    # 10 GPUs: idle 0..10 s, full 10..20 s, half 20..40 s. Jobs span 0..40 s.
    # Mean busy fraction = (0*10 + 1*10 + 0.5*20) / 40 = 0.5.
    samples = [sample(0, 0), sample(10_000, 10), sample(20_000, 5)]
    jobs = [job("a", submit=0, start=0, end=40_000)]
    assert utilization(result(jobs, samples)) == pytest.approx(0.5)
    assert compute_metrics(result(jobs, samples))["utilization"] == pytest.approx(0.5)
    # The window starts at the first submission (5 s): (0*5 + 10 + 10) / 35.
    jobs = [job("a", submit=5_000, start=5_000, end=40_000)]
    assert utilization(result(jobs, samples)) == pytest.approx(20 / 35)


def test_utilization_conventions() -> None:
    jobs = [job("a", submit=0, start=0, end=20_000)]
    # Before the first sample the pool counts as idle: (0*10 + 1*10) / 20.
    assert utilization(result(jobs, [sample(10_000, 10)])) == pytest.approx(0.5)
    # Same instant twice: the last sample wins (8, not 2), and order of arrival is kept.
    assert utilization(result(jobs, [sample(0, 2), sample(0, 8)])) == pytest.approx(0.8)
    # A pool with zero GPUs up is idle, not a division by zero.
    assert utilization(result(jobs, [sample(0, 0, total=0)])) == 0.0
    # Busy fraction is per sample: 5/10 for 10 s then 5/5 for 10 s -> 0.75.
    assert utilization(result(jobs, [sample(0, 5), sample(10_000, 5, total=5)])) == pytest.approx(0.75)


def test_utilization_and_queue_series_resample_time_weighted() -> None:
    samples = [
        sample(0, 0, pending=4),
        sample(10_000, 10, pending=0),
        sample(15_000, 5, pending=2),
    ]
    r = result([job("a", end=25_000, start=0)], samples)
    # Buckets of 10 s over 0..25 s (the last one 5 s long).
    u = utilization_series(r, 10.0)
    assert list(u.t_s) == [0.0, 10.0, 20.0]
    # 10..20 s: full for 5 s then half for 5 s -> 0.75; 20..25 s: half.
    assert u.values == pytest.approx([0.0, 0.75, 0.5])
    q = queue_series(r, 10.0)
    assert q.values == pytest.approx([4.0, 1.0, 2.0])
    # An explicit window and a bucket that does not divide it.
    u = utilization_series(r, 4.0, start_ms=8_000, end_ms=16_000)
    assert list(u.t_s) == [8.0, 12.0]
    assert u.values == pytest.approx([0.5, (3 * 1.0 + 1 * 0.5) / 4])
    with pytest.raises(ValueError):
        utilization_series(r, 0.0)


def test_series_of_many_samples_matches_direct_integration() -> None:
    rng = np.random.default_rng(7)
    t = np.sort(rng.integers(0, 1_000_000, 5_000))
    busy = rng.integers(0, 11, t.size)
    samples = [sample(int(a), int(b)) for a, b in zip(t, busy, strict=True)]
    r = result([job("a", start=0, end=1_000_000)], samples)
    s = utilization_series(r, 100.0)
    # The mean over the buckets (all 100 s long) equals the overall mean over 0..1000 s.
    assert float(np.mean(s.values)) == pytest.approx(utilization(r), rel=1e-9)


# --------------------------------------------------------------------------- fairness


def test_jain_index_known_values() -> None:
    assert jain_index([3.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)  # one gets all: 1/n
    assert jain_index([1.0, 2.0, 3.0]) == pytest.approx(36 / 42)  # (1+2+3)^2 / (3 (1+4+9))
    assert jain_index([]) is None
    assert jain_index([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError):
        jain_index([1.0, -1.0])


def test_jain_fairness_against_entitlement() -> None:
    # A (entitled 0.5) gets 2 GPU-hours, B (entitled 0.25) 1 GPU-hour: both got exactly
    # 4 GPU-hours per unit of entitlement -> perfectly fair.
    jobs = [job("a", "A", start=0, end=2 * H), job("b", "B", start=0, end=H)]
    ent = {"A": 0.5, "B": 0.25, "C": 0.25}  # C submitted nothing: left out of the index
    m = compute_metrics(result(jobs, entitlement=ent))
    assert m["jain_fairness"] == pytest.approx(1.0)
    # Without entitlements, equal shares: x = (2, 1) -> 9 / (2 * 5) = 0.9.
    m = compute_metrics(result(jobs))
    assert m["jain_fairness"] == pytest.approx(0.9)
    assert [t["entitled_share"] for t in m["tenants"]] == [0.5, 0.5]


def test_tenant_and_sector_rollups() -> None:
    jobs = [
        job("a1", "서울대학교", submit=0, start=0, end=H, gpus=2),  # 2 GPU-h, JCT 3600 s
        job("a2", "서울대학교", submit=0, start=1_000, end=H + 1_000),  # 1 GPU-h, waited 1 s
        job("b1", "KAIST", submit=0, start=3_000, end=3_000 + H),  # 1 GPU-h, waited 3 s
        job("c1", "한국전자통신연구원", submit=0, state="unschedulable"),
    ]
    ent = {"서울대학교": 0.5, "KAIST": 0.3, "한국전자통신연구원": 0.2}
    sectors = {"서울대학교": "academia", "KAIST": "academia", "한국전자통신연구원": "public"}
    m = compute_metrics(result(jobs, entitlement=ent, sector_of=sectors, policy="fifo"))
    assert m["policy"] == "fifo" and m["gpu_hours"] == pytest.approx(4.0)
    by = {t["tenant"]: t for t in m["tenants"]}
    assert [t["tenant"] for t in m["tenants"]] == ["서울대학교", "KAIST", "한국전자통신연구원"]
    snu = by["서울대학교"]
    assert (snu["jobs"], snu["finished"], snu["sector"]) == (2, 2, "academia")
    assert snu["gpu_hours"] == pytest.approx(3.0) and snu["share"] == pytest.approx(0.75)
    assert snu["entitled_share"] == 0.5
    assert snu["avg_jct_s"] == pytest.approx(3600.5) and snu["avg_queue_s"] == pytest.approx(0.5)
    etri = by["한국전자통신연구원"]
    assert etri["gpu_hours"] == 0.0 and etri["avg_jct_s"] is None and etri["avg_queue_s"] is None
    # x = (3/0.5, 1/0.3, 0/0.2): the unschedulable tenant submitted work and got nothing.
    x = [6.0, 1 / 0.3, 0.0]
    assert m["jain_fairness"] == pytest.approx(sum(x) ** 2 / (3 * sum(v * v for v in x)))

    sec = {s["sector"]: s for s in m["sectors"]}
    acad = sec["academia"]
    assert (acad["tenants"], acad["jobs"]) == (2, 3)
    assert acad["share"] == pytest.approx(1.0) and acad["entitled_share"] == pytest.approx(0.8)
    # Job-weighted: (3600 + 3601 + 3603) / 3, not the mean of the two tenant means.
    assert acad["avg_jct_s"] == pytest.approx((3600 + 3600 + 1 + 3600 + 3) / 3)
    assert acad["avg_queue_s"] == pytest.approx((0 + 1 + 3) / 3)
    assert sec["public"]["share"] == 0.0


def test_preemptions_and_gpu_hours() -> None:
    jobs = [
        job("a", start=0, end=H, gpus=4, preemptions=2, lost_gpu_ms=H // 2),
        job("b", start=0, end=H, preemptions=1, lost_gpu_ms=H // 4),
    ]
    m = compute_metrics(result(jobs))
    assert m["preemptions"] == 3
    assert m["gpu_hours"] == pytest.approx(5.0)
    assert m["lost_gpu_hours"] == pytest.approx(0.75)


def test_scheduler_cost_metrics() -> None:
    r = result(
        [job("a", start=0, end=3_600_000), job("b", start=0, end=1_000)],
        cycle_ms=[4.0, 1.0, 3.0, 2.0],
        wall_s=2.0,
        sim_end_ms=7_200_000,
    )
    m = compute_metrics(r)
    assert m["cycles"] == 4
    assert m["cycle_ms_p50"] == 2.5 and m["cycle_ms_max"] == 4.0
    assert m["cycle_ms_p99"] == pytest.approx(3 + 0.97)
    assert m["wall_s"] == 2.0 and m["jobs_per_wall_s"] == 1.0
    # Two simulated hours in two wall seconds.
    assert m["sim_hours_per_wall_hour"] == pytest.approx(3600.0)


def test_job_arrays_columns() -> None:
    a = JobArrays.from_result(
        result(
            [job("a", "x", start=5, end=10), job("b", "y", submit=2), job("c", "x", submit=1, start=3, end=9)]
        )
    )
    assert a.tenants == ["x", "y"] and list(a.tenant_idx) == [0, 1, 0]
    assert list(a.jct_s) == [0.01, 0.008]
    assert list(a.queue_s) == [0.005, 0.002]


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=50))
def test_jain_index_is_between_one_over_n_and_one(x: list[float]) -> None:
    j = jain_index(x)
    assert j is not None
    assert 1 / len(x) <= j <= 1.0
    if max(x) > 0 and min(x) == max(x):
        assert j == pytest.approx(1.0)


@st.composite
def runs(draw: st.DrawFn) -> RunResult:
    total = draw(st.integers(min_value=0, max_value=64))
    times = draw(st.lists(st.integers(min_value=0, max_value=10**9), max_size=30))
    samples = [sample(t, draw(st.integers(min_value=0, max_value=total)), total=total) for t in times]
    jobs = []
    for i in range(draw(st.integers(min_value=0, max_value=5))):
        submit = draw(st.integers(min_value=0, max_value=10**9))
        end = draw(st.one_of(st.just(-1), st.integers(min_value=submit, max_value=2 * 10**9)))
        jobs.append(job(f"j{i}", submit=submit, start=submit if end >= 0 else -1, end=end))
    return result(jobs, samples)


@settings(max_examples=200, deadline=None)
@given(runs())
def test_utilization_is_a_fraction(r: RunResult) -> None:
    u = compute_metrics(r)["utilization"]
    assert 0.0 <= u <= 1.0 and not math.isnan(u)
    s = utilization_series(r, 3600.0)
    assert np.all(s.values >= -1e-9) and np.all(s.values <= 1 + 1e-9)


def test_precomputed_job_arrays_give_the_same_metrics() -> None:
    r = result([job("a", "x", start=5, end=10), job("b", "y", submit=2)], [sample(0, 4), sample(7, 1)])
    assert compute_metrics(r, jobs=JobArrays.from_result(r)) == compute_metrics(r)
