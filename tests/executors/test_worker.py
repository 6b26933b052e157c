"""The shared executor worker alone: its back-off sequence, reconcile at start and after a failed
round, wake and stop (the executors' own tests run it under the local, Slurm and K8s executors)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest

from gpupool.service.executors.worker import Backoff, BackoffRule, ExecutorWorker


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap_and_starts_over_after_a_success() -> None:
    b = Backoff(BackoffRule(initial_s=0.5, cap_s=10.0, jitter=0.5), rng=lambda: 0.0)
    assert [b.failed() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    b.succeeded()
    assert b.failures == 0 and b.failed() == 0.5


def test_jitter_takes_off_at_most_its_fraction_of_the_delay() -> None:
    draws = iter([0.999, 0.5, 0.0])
    b = Backoff(BackoffRule(initial_s=1.0, cap_s=4.0, jitter=0.5), rng=lambda: next(draws))
    assert b.failed() == pytest.approx(1.0 * (1 - 0.5 * 0.999))
    assert b.failed() == pytest.approx(2.0 * 0.75)
    assert b.failed() == 4.0
    # Many failures later the power is still finite and the cap holds.
    assert BackoffRule(initial_s=1.0, cap_s=4.0).delay(10_000, 0.0) == 4.0


@pytest.mark.parametrize(
    "rule", [dict(initial_s=0.0), dict(initial_s=2.0, cap_s=1.0), dict(factor=0.5), dict(jitter=1.5)]
)
def test_a_bad_rule_is_refused(rule: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="back-off rule"):
        BackoffRule(**rule)


class Engine:
    """A round that fails the first ``failures`` times; records what the worker called."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def round(self) -> None:
        self.calls.append("round")
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("controller unreachable")

    def reconcile(self) -> None:
        self.calls.append("reconcile")


def test_reconcile_runs_at_start_and_again_before_the_round_after_a_failure() -> None:
    e = Engine(failures=2)
    b = Backoff(rng=lambda: 0.0)
    w = ExecutorWorker("w", round=e.round, reconcile=e.reconcile, tick_s=1.0, backoff=b)
    w.start(thread=False)
    assert e.calls == ["reconcile"]
    assert w.run_round() is False and w.last_delay_s == 0.5
    assert w.run_round() is False and w.last_delay_s == 1.0
    assert w.run_round() is True
    assert w.run_round() is True
    assert e.calls == ["reconcile", "round", "reconcile", "round", "reconcile", "round", "round"]
    assert w.backoff.failures == 0


def test_a_failing_reconcile_is_retried_before_the_next_round() -> None:
    state = {"fail": 1}
    calls: list[str] = []

    def reconcile() -> None:
        calls.append("reconcile")
        if state["fail"]:
            state["fail"] -= 1
            raise OSError("state directory unreadable")

    w = ExecutorWorker("w", round=lambda: calls.append("round"), reconcile=reconcile, tick_s=1.0)
    w.start(thread=False)  # logged, not raised
    assert w.run_round() is True
    assert calls == ["reconcile", "reconcile", "round"]


def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_the_thread_waits_the_growing_backoff_after_each_failure() -> None:
    e = Engine(failures=3)
    stamps: list[float] = []

    def round_() -> None:
        stamps.append(time.monotonic())
        e.round()

    rule = BackoffRule(initial_s=0.05, cap_s=0.2, jitter=0.0)
    w = ExecutorWorker("w", round=round_, reconcile=e.reconcile, tick_s=0.01, backoff=Backoff(rule))
    w.start()
    wait_for(lambda: len(stamps) >= 6)
    w.stop(timeout_s=5)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # After failures 1, 2, 3: 0.05, 0.1, 0.2 s; after a success the back-off starts over.
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    assert w.backoff.failures == 0
    assert e.calls[:2] == ["reconcile", "round"] and e.calls.count("reconcile") == 4


def test_wake_runs_a_round_now_and_stop_ends_the_thread() -> None:
    ran = threading.Event()
    w = ExecutorWorker("w", round=ran.set, tick_s=3600.0)
    w.start()
    assert w.running and not ran.wait(0.1)
    w.wake()
    assert ran.wait(5.0)
    t0 = time.monotonic()
    w.stop(timeout_s=5)
    assert not w.running and time.monotonic() - t0 < 2.0


def test_wake_does_not_cut_a_backoff_short() -> None:
    stamps: list[float] = []

    def round_() -> None:
        stamps.append(time.monotonic())
        raise RuntimeError("down")

    w = ExecutorWorker(
        "w", round=round_, tick_s=0.01, backoff=Backoff(BackoffRule(initial_s=0.3, cap_s=0.3, jitter=0.0))
    )
    w.start()
    wait_for(lambda: len(stamps) >= 1)
    for _ in range(10):
        w.wake()
        time.sleep(0.01)
    wait_for(lambda: len(stamps) >= 2)
    w.stop(timeout_s=5)
    assert stamps[1] - stamps[0] >= 0.3
