"""Allocation matrices of the round-based policies: constraints always hold, objectives do their job."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.core import allocation

CAP = np.array([2.0, 2.0])  # two "V100" and two "K80"


def feasible(x: np.ndarray, gpus: np.ndarray, cap: np.ndarray, allowed: np.ndarray) -> None:
    assert np.all(x >= -1e-9) and np.all(x <= 1 + 1e-9)
    assert np.all(x.sum(axis=1) <= 1 + 1e-6)
    assert np.all((x * gpus[:, None]).sum(axis=0) <= cap + 1e-6)
    assert np.all(x[~allowed] == 0)


def test_max_min_fairness_gives_each_job_the_model_it_is_comparatively_fastest_on() -> None:
    # job 0 runs 3x faster on V100; job 1 the same everywhere; room for one job per model
    thr = np.array([[3.0, 1.0], [1.0, 1.0]])
    gpus = np.ones(2)
    cap = np.ones(2)
    allowed = np.ones((2, 2), dtype=bool)
    x = allocation.max_min_fairness(thr, gpus, cap, allowed)
    feasible(x, gpus, cap, allowed)
    # normalised by their isolated throughputs (2 and 1), both reach 1 only if job 0 has at
    # least 2/3 of the V100 and job 1 all of its time: the least one cannot do better
    norm = (thr * x).sum(axis=1) / np.array([2.0, 1.0])
    assert norm.min() == pytest.approx(1.0, abs=1e-6)
    assert x[0, 0] >= 2 / 3 - 1e-6 and x[0, 0] > x[1, 0]


def test_equal_share_water_fills_and_spreads_over_models_by_capacity() -> None:
    gpus = np.array([1.0, 1.0, 4.0])
    allowed = np.ones((3, 2), dtype=bool)
    x = allocation.equal_share(gpus, CAP, allowed)
    feasible(x, gpus, CAP, allowed)
    # 4 accelerators, equal GPU-time z: 1-GPU jobs get all their time (z=1 each), the
    # 4-GPU job the remaining 2 GPUs = half of its time
    assert x.sum(axis=1) == pytest.approx([1.0, 1.0, 0.5])
    assert x[0] == pytest.approx([0.5, 0.5])


def test_fifo_takes_jobs_in_order_on_their_fastest_model_with_room_and_stops_at_the_first_misfit() -> None:
    thr = np.array([[1.0, 2.0], [3.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    gpus = np.array([2.0, 1.0, 4.0, 1.0])
    allowed = np.ones((4, 2), dtype=bool)
    x = allocation.fifo(thr, gpus, CAP, allowed)
    assert x.tolist() == [[0, 1], [1, 0], [0, 0], [0, 0]]  # job 2 fits nowhere: job 3 waits too


def test_min_makespan_balances_finish_times() -> None:
    thr = np.array([[2.0, 1.0], [2.0, 1.0]])
    gpus = np.ones(2)
    cap = np.array([1.0, 1.0])
    allowed = np.ones((2, 2), dtype=bool)
    rem = np.array([3_600_000.0 * 100, 3_600_000.0 * 100])  # milliseconds: scaled inside
    x = allocation.min_makespan(thr, gpus, cap, allowed, rem)
    feasible(x, gpus, cap, allowed)
    rate = (thr * x).sum(axis=1)
    # the fast model shared equally: both run at (2 + 1) / 2 = 1.5
    assert rate == pytest.approx([1.5, 1.5], rel=1e-4)


def test_finish_time_fairness_keeps_every_job_within_its_isolated_finish_time() -> None:
    # job 0 runs alike everywhere, job 1 3x faster on V100: rho <= 1 for both needs job 0
    # all of its time and job 1 at least half of the V100
    thr = np.array([[1.0, 1.0], [3.0, 1.0]])
    gpus = np.ones(2)
    cap = np.array([1.0, 1.0])
    allowed = np.ones((2, 2), dtype=bool)
    elapsed = np.array([0.0, 0.0])
    rem = np.array([100.0, 100.0])
    x = allocation.finish_time_fairness(thr, gpus, cap, allowed, elapsed, rem)
    feasible(x, gpus, cap, allowed)
    iso = (thr * allocation.isolated(gpus, cap, allowed)).sum(axis=1)
    rho = (elapsed + rem / (thr * x).sum(axis=1)) / (elapsed + rem / iso)
    assert rho.max() <= 1.0 + allocation.FTF_TOLERANCE
    assert x[1, 0] >= 0.5 - 1e-6


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 3),
    st.data(),
)
def test_every_objective_respects_the_base_constraints(n: int, k: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    thr = rng.uniform(0.1, 3.0, (n, k))
    gpus = rng.choice([1.0, 2.0, 4.0, 8.0], n)
    cap = rng.choice([4.0, 8.0, 16.0], k)
    allowed = rng.random((n, k)) < 0.8
    allowed[np.arange(n), rng.integers(0, k, n)] = True  # every job may run somewhere
    elapsed = rng.uniform(0, 1e7, n)
    rem = rng.uniform(1e3, 1e8, n)
    for x in (
        allocation.max_min_fairness(thr, gpus, cap, allowed),
        allocation.equal_share(gpus, cap, allowed),
        allocation.fifo(thr, gpus, cap, allowed),
        allocation.finish_time_fairness(thr, gpus, cap, allowed, elapsed, rem),
        allocation.min_makespan(thr, gpus, cap, allowed, rem),
    ):
        feasible(x, gpus, cap, allowed)
