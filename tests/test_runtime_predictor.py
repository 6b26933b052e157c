"""The runtime predictor: learns only what it is told of finished jobs, falls back, and is deterministic."""

from __future__ import annotations

import pytest

from gpupool.core.runtime_predictor import RuntimePredictor, keys_of, size_bucket
from tests.builders import job


def test_with_no_history_the_estimate_is_the_age_or_the_prior() -> None:
    p = RuntimePredictor(prior_ms=60_000)
    spec = job("j", 1, user="u")
    assert p.expected_remaining(spec, 0) == 60_000
    assert p.expected_remaining(spec, 500_000) == 500_000


def test_the_estimate_is_the_conditional_mean_of_longer_run_times() -> None:
    p = RuntimePredictor(window=8, min_samples=2)
    for i, ran in enumerate((100, 200, 1_000, 3_000)):
        p.observe(job(f"h{i}", 1, user="u"), ran)
    spec = job("j", 1, user="u")
    assert p.expected_remaining(spec, 0) == (100 + 200 + 1_000 + 3_000) // 4
    # having run 150 ms, only 200, 1,000 and 3,000 are still possible: mean 1,400, minus 150
    assert p.expected_remaining(spec, 150) == 1_400 - 150
    # past 1,000 only one longer run time is known (< min_samples): every key says the same,
    # so the estimate falls back to the age
    assert p.expected_remaining(spec, 1_500) == max(p.prior_ms, 1_500)


def test_a_key_without_enough_history_falls_back_to_coarser_ones() -> None:
    p = RuntimePredictor(window=16, min_samples=3)
    for i in range(3):
        p.observe(job(f"a{i}", 2, project="vision", user="ann"), 10_000)
    for i in range(3):
        p.observe(job(f"b{i}", 8, project="vision", user="bob"), 90_000)
    # ann's own history (2 GPUs) decides for ann
    assert p.expected_remaining(job("x", 2, project="vision", user="ann"), 0) == 10_000
    # carol has none: her project's jobs of her size (bob's 8-GPU jobs)
    assert p.expected_remaining(job("y", 8, project="vision", user="carol"), 0) == 90_000
    # a 1-GPU job of carol: no user or size history, the project's: mean of all six
    assert p.expected_remaining(job("z", 1, project="vision", user="carol"), 0) == 50_000
    # another project: the whole pool's history
    assert p.expected_remaining(job("w", 1, project="nlp", user="dan"), 0) == 50_000


def test_the_window_forgets_the_oldest_finishes() -> None:
    p = RuntimePredictor(window=3, min_samples=1)
    for i, ran in enumerate((1_000_000, 10, 20, 30)):
        p.observe(job(f"h{i}", 1, user="u"), ran)
    assert p.samples(keys_of(job("j", 1, user="u"))[0]) == (10, 20, 30)
    assert p.expected_remaining(job("j", 1, user="u"), 0) == 20


def test_the_same_finishes_give_the_same_estimates() -> None:
    finishes = [
        (job(f"h{i}", 1 + i % 9, project=f"p{i % 3}", user=f"u{i % 5}"), (i * 7919) % 50_000)
        for i in range(300)
    ]
    a, b = RuntimePredictor(), RuntimePredictor()
    for spec, ran in finishes:
        a.observe(spec, ran)
        b.observe(spec, ran)
    probes = [job(f"q{i}", 1 + i % 12, project=f"p{i % 4}", user=f"u{i % 6}") for i in range(50)]
    for age in (0, 1_000, 20_000, 60_000):
        assert [a.expected_remaining(s, age) for s in probes] == [
            b.expected_remaining(s, age) for s in probes
        ]
    assert a.observed == 300


def test_size_buckets_are_powers_of_two() -> None:
    assert [size_bucket(g) for g in (1, 2, 3, 4, 5, 8, 9, 16, 17)] == [0, 1, 2, 2, 3, 3, 4, 4, 5]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        RuntimePredictor(window=2, min_samples=3)
