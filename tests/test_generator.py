"""Tests for gpupool.sim.generator: calibrated Poisson workloads and Gavel's generator."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from gpupool.sim.generator import GAVEL_SCALE_FACTORS, generate_gavel, generate_workload, offered_load
from gpupool.sim.trace import gavel_v100_throughputs, read_trace, shipped_trace, write_native
from gpupool.sim.workload import WorkloadJob


@cache
def _philly() -> tuple[WorkloadJob, ...]:
    return tuple(read_trace(shipped_trace("philly/philly_jobs.csv")))


@cache
def _itp09() -> tuple[WorkloadJob, ...]:
    return tuple(read_trace(shipped_trace("microsoft-itp-2021/raw/cluster09.csv")))


# --------------------------------------------------------------------------- calibrated generator


def test_hits_offered_load_with_a_light_tailed_calibration() -> None:
    # ITP cluster 09: 1-GPU jobs, GPU-time CV ~0.6, so 33k jobs pin the load to ~0.5 %.
    jobs = generate_workload(_itp09(), capacity_gpus=64, load=0.9, hours=2_000, tenants=None, seed=7)
    assert len(jobs) > 30_000
    assert offered_load(jobs, capacity_gpus=64, hours=2_000) == pytest.approx(0.9, rel=0.02)


def test_hits_offered_load_on_philly_over_a_long_horizon() -> None:
    # Philly's GPU-time has a CV near 10: ~400k jobs are needed for a few per cent.
    jobs = generate_workload(_philly(), capacity_gpus=1_000, load=0.8, hours=6_000, tenants=None, seed=0)
    assert len(jobs) > 350_000
    assert offered_load(jobs, capacity_gpus=1_000, hours=6_000) == pytest.approx(0.8, rel=0.05)
    # The arrival count itself is Poisson with the chosen rate (tight).
    gpu_ms = np.array([j.gpus * j.duration_ms for j in _philly()], dtype=np.float64)
    expected_count = 0.8 * 1_000 * 6_000 * 3_600_000 / gpu_ms.mean()
    assert len(jobs) == pytest.approx(expected_count, rel=0.01)


def test_jobs_are_sorted_in_horizon_with_unique_ids() -> None:
    jobs = generate_workload(_philly(), capacity_gpus=500, load=0.7, hours=48, tenants=None, seed=3)
    assert jobs
    submits = [j.submit_ms for j in jobs]
    assert submits == sorted(submits)
    assert submits[0] >= 0 and submits[-1] < 48 * 3_600_000
    assert [j.id for j in jobs] == [f"gen-{i}" for i in range(len(jobs))]
    shapes = {(j.gpus, j.duration_ms) for j in _philly()}
    assert all((j.gpus, j.duration_ms) in shapes for j in jobs)  # resampled joint pairs


def test_deterministic_per_seed_and_leaves_global_rng_alone() -> None:
    np.random.seed(123)
    random.seed(123)
    kwargs = {"capacity_gpus": 256, "load": 0.8, "hours": 100.0, "tenants": None}
    a = generate_workload(_philly(), seed=42, **kwargs)  # type: ignore[arg-type]
    b = generate_workload(_philly(), seed=42, **kwargs)  # type: ignore[arg-type]
    c = generate_workload(_philly(), seed=43, **kwargs)  # type: ignore[arg-type]
    generate_gavel(num_jobs=100, seed=1, jobs_per_hour=1.0, multi_gpu=True)
    assert a == b
    assert a != c
    # Nothing was drawn from the global generators: they continue where seed(123) left them.
    drawn = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    assert drawn == (np.random.random(), random.random())


def test_respects_max_gpus_and_whole_nodes() -> None:
    jobs = generate_workload(
        _philly(), capacity_gpus=4_096, load=0.8, hours=500, tenants=None, seed=1, max_gpus=24
    )
    sizes = Counter(j.gpus for j in jobs)
    assert max(sizes) <= 24
    for j in jobs:
        if j.gpus > 8:
            assert j.gpus % 8 == 0 and j.gpus_per_worker == 8
        else:
            assert j.gpus_per_worker == 0
    # Philly's 12-GPU jobs become 16 (whole nodes); 32+ are capped to 24 (3 nodes).
    assert set(sizes) <= {1, 2, 4, 8, 16, 24}


def test_size_scale_makes_national_training_gangs() -> None:
    jobs = generate_workload(
        _philly(),
        capacity_gpus=20_000,
        load=0.7,
        hours=200,
        tenants=None,
        seed=5,
        max_gpus=1_024,
        size_scale=8,
    )
    sizes = {j.gpus for j in jobs}
    assert min(sizes) == 8 and max(sizes) <= 1_024
    assert any(64 <= s <= 1_024 for s in sizes)
    assert all(s % 8 == 0 for s in sizes)
    # The rate accounts for the scaled gangs: the load stays on target.
    assert offered_load(jobs, capacity_gpus=20_000, hours=200) == pytest.approx(0.7, rel=0.25)


def test_capacity_caps_gangs_even_without_max_gpus() -> None:
    jobs = generate_workload(_philly(), capacity_gpus=16, load=0.5, hours=2_000, tenants=None, seed=2)
    assert max(j.gpus for j in jobs) <= 16


def test_tenant_mix_from_weights() -> None:
    jobs = generate_workload(
        _itp09(),
        capacity_gpus=64,
        load=1.0,
        hours=1_000,
        tenants=[("physics", 3.0), ("bio", 1.0), ("idle", 0.0)],
        seed=11,
    )
    counts = Counter(j.tenant for j in jobs)
    assert set(counts) == {"physics", "bio"}
    assert counts["physics"] / len(jobs) == pytest.approx(0.75, abs=0.02)


def test_tenant_mix_defaults_to_calibration_frequencies() -> None:
    jobs = generate_workload(_philly(), capacity_gpus=1_000, load=0.8, hours=1_000, tenants=None, seed=4)
    share = Counter(j.tenant for j in jobs)["6214e9"] / len(jobs)
    assert share == pytest.approx(41_226 / 82_247, abs=0.02)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity_gpus": 0},
        {"load": 0.0},
        {"hours": -1.0},
        {"max_gpus": 0},
        {"size_scale": 0},
        {"tenants": []},
        {"tenants": [("a", -1.0)]},
        {"tenants": [("a", 1.0), ("a", 2.0)]},
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"capacity_gpus": 8, "load": 0.5, "hours": 1.0, "tenants": None, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError):
        generate_workload(_itp09(), **args)  # type: ignore[arg-type]


def test_rejects_empty_calibration() -> None:
    with pytest.raises(ValueError, match="empty"):
        generate_workload([], capacity_gpus=8, load=0.5, hours=1.0, tenants=None, seed=0)


def test_generated_workload_round_trips_through_native(tmp_path: Path) -> None:
    jobs = generate_workload(
        _philly(), capacity_gpus=512, load=0.9, hours=24, tenants=None, seed=9, size_scale=4
    )
    for suffix in (".csv", ".jsonl"):
        path = tmp_path / f"gen{suffix}"
        write_native(jobs, path)
        back = read_trace(path)
        assert [dataclasses.replace(j, source_line=0) for j in back] == jobs


# --------------------------------------------------------------------------- Gavel generator


def test_gavel_distributions() -> None:
    jobs = generate_gavel(num_jobs=100_000, seed=0, jobs_per_hour=3.0, multi_gpu=True)
    n = len(jobs)
    assert n == 100_000
    sizes = Counter(j.gpus for j in jobs)
    for sf, p in GAVEL_SCALE_FACTORS:
        assert sizes[sf] / n == pytest.approx(p, abs=0.01)
    table = gavel_v100_throughputs()
    types = {t for t, _ in table}
    distributed = {t for t, sf in table if sf > 1}
    assert len(types) == 26 and len(distributed) == 19
    single = Counter(j.workload_class for j in jobs if j.gpus == 1)
    assert set(single) == types
    assert max(single.values()) / min(single.values()) < 1.15  # uniform over 26
    assert all(j.workload_class in distributed for j in jobs if j.gpus > 1)
    assert all((j.workload_class, j.gpus) in table for j in jobs)
    durations_s = np.array([j.duration_ms for j in jobs]) / 1000
    assert durations_s.min() >= 60 * 10**1.5 - 1 and durations_s.max() <= 60 * 10**4 + 1
    assert float(np.mean(durations_s > 60_000)) == pytest.approx(0.2, abs=0.01)
    # E[duration] = 0.8 * E[60*10^U(1.5,3)] + 0.2 * E[60*10^U(3,4)] = 60,363 s.
    assert float(durations_s.mean()) == pytest.approx(60_363, rel=0.03)
    gaps_h = np.diff([0] + [j.submit_ms for j in jobs]) / 3_600_000
    assert float(gaps_h.mean()) == pytest.approx(1 / 3.0, rel=0.02)
    assert [j.id for j in jobs[:3]] == ["gavel-0", "gavel-1", "gavel-2"]


def test_gavel_single_gpu_static_and_deterministic() -> None:
    static = generate_gavel(num_jobs=700, seed=1)
    assert {j.submit_ms for j in static} == {0}
    assert {j.gpus for j in static} == {1}
    assert generate_gavel(num_jobs=700, seed=1) == static
    assert generate_gavel(num_jobs=700, seed=2) != static
    with pytest.raises(ValueError):
        generate_gavel(num_jobs=10, seed=0, jobs_per_hour=0.0)
