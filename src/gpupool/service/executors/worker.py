"""The executor worker: the one background loop under the local, Slurm and Kubernetes executors.

This module owns ``ExecutorWorker`` and its back-off rule (``BackoffRule``, ``Backoff``). Every
executor keeps the ``Executor`` protocol non-blocking by doing its engine work on one thread:
the local executor reaps, signals and samples processes, the Slurm executor submits, cancels
and scans, the Kubernetes executor creates, deletes and lists Jobs. What they share is here:

- **rounds**: the executor's ``round`` runs every ``tick_s``, or at once after ``wake()`` (a
  launch or a terminate need not wait for the next tick);
- **reconcile**: the executor's ``reconcile`` (compare what it tracks with what the engine or
  its state files say: adopt, re-report, forget) runs once, synchronously, in ``start`` (so
  ``allocations()`` is right for the loop's reconcile as soon as the executor exists), and
  again before the first round after a round failed (a failed round may have left the
  executor's view of the engine half-updated);
- **back-off**: a round that raises is logged and the next one waits a capped exponential
  delay with jitter (``BackoffRule``: 0.5 s, 1 s, 2 s ... up to 10 s, each cut by up to half at
  random, so that many services do not retry a recovering controller in step); a round that
  works resets it. Engine calls that fail transiently inside a round (a submission the
  controller did not answer) use the same rule through their own ``Backoff``;
- **stop**: ``stop()`` ends the thread after the current round; running jobs are not touched
  (the next executor adopts them).

The jitter comes from a function passed in (``random.random`` by default), so the delays of a
test are exact.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_BACKOFF", "Backoff", "BackoffRule", "ExecutorWorker"]


@dataclass(frozen=True, slots=True)
class BackoffRule:
    """Delays after consecutive failures: ``initial_s * factor**n`` capped at ``cap_s``, of
    which a random fraction up to ``jitter`` is taken off (0: exact, 1: "full jitter")."""

    initial_s: float = 0.5
    cap_s: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.cap_s) or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(
                f"bad back-off rule {self!r}: need 0 < initial <= cap, factor >= 1, 0 <= jitter <= 1"
            )

    def delay(self, failures: int, u: float) -> float:
        """The delay after ``failures`` (>= 1) consecutive failures, for a uniform draw ``u`` in [0, 1)."""
        exponent = min(max(failures - 1, 0), 64)  # past the cap anyway; keeps the power finite
        base = min(self.cap_s, self.initial_s * self.factor**exponent)
        return base * (1.0 - self.jitter * u)


#: The one rule every executor uses, for failed rounds and for transient engine errors alike.
DEFAULT_BACKOFF = BackoffRule()


class Backoff:
    """Consecutive failures under a ``BackoffRule``: ``failed()`` gives the next delay,
    ``succeeded()`` starts over."""

    def __init__(self, rule: BackoffRule = DEFAULT_BACKOFF, rng: Callable[[], float] = random.random) -> None:
        self.rule = rule
        self._rng = rng
        self.failures = 0

    def failed(self) -> float:
        self.failures += 1
        return self.rule.delay(self.failures, self._rng())

    def succeeded(self) -> None:
        self.failures = 0


class ExecutorWorker:
    """Runs ``round`` every ``tick_s`` on a daemon thread; see the module docstring.

    ``reconcile`` is called in ``start`` and after a failed round; ``start(thread=False)``
    only reconciles (tests then drive the rounds themselves).
    """

    def __init__(
        self,
        name: str,
        *,
        round: Callable[[], None],
        reconcile: Callable[[], None] | None = None,
        tick_s: float,
        backoff: Backoff | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self._round = round
        self._reconcile = reconcile
        self.tick_s = tick_s
        self.backoff = backoff if backoff is not None else Backoff()
        self._log = log if log is not None else logging.getLogger("gpupool.executors.worker")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reconcile_due = reconcile is not None
        self._thread: threading.Thread | None = None
        #: The delay the worker waits after the last failed round.
        self.last_delay_s = 0.0

    def start(self, *, thread: bool = True) -> None:
        """Reconcile now (a failure is logged and retried before the first round), then run."""
        self._reconcile_if_due()
        if thread:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Run the next round now rather than at the next tick."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """End the thread after its current round (waits up to ``timeout_s``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _reconcile_if_due(self) -> None:
        if not self._reconcile_due or self._reconcile is None:
            return
        try:
            self._reconcile()
        except Exception:  # the engine is still down: the rounds retry under the back-off
            self._log.exception("%s: reconcile failed", self.name)
            return
        self._reconcile_due = False

    def run_round(self) -> bool:
        """One round (reconcile first if due); False if it raised. The thread's body, also
        callable by tests of a worker started with ``thread=False``."""
        try:
            if self._reconcile_due and self._reconcile is not None:
                self._reconcile()
                self._reconcile_due = False
            self._round()
        except Exception:  # a dead worker would strand every job of its engine: log, back off
            self._reconcile_due = self._reconcile is not None
            self.last_delay_s = self.backoff.failed()
            self._log.exception(
                "%s: worker round failed (%d in a row, next in %.2f s)",
                self.name,
                self.backoff.failures,
                self.last_delay_s,
            )
            return False
        self.backoff.succeeded()
        return True

    def _run(self) -> None:
        delay = self.tick_s
        while not self._stop.is_set():
            if self.backoff.failures:
                self._stop.wait(delay)  # backing off: a launch's wake must not cut it short
            else:
                self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            delay = self.tick_s if self.run_round() else self.last_delay_s
