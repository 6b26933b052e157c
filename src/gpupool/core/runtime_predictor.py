"""Run times learned online from the jobs that finished: what a job will still need.

This module owns ``RuntimePredictor``: a window of the run times of recently finished jobs
per key, from the finest to the coarsest (user x project x workload class x size bucket,
project x size bucket, project, everyone), and the expected remaining run time of a job
that has already run ``age`` ms: ``E[D - age | D > age]`` over the finest key whose window
holds at least ``min_samples`` run times longer than ``age`` (coarser keys when the job
has outlived its own key's history, or when there is none yet).

Rules, and why:

* It learns only from ``observe``, which the scheduler calls on a ``JobFinished`` event with
  the run time the job held accelerators (every attempt); it never reads a job's duration
  hint (the trace's oracle), walltime or anything of a job that has not finished.
* A window per key (the last ``window`` finishes, 1,024 by default), not the whole
  history: a user's jobs change over weeks, and the window bounds memory and the cost of
  an estimate. On Philly at a quarter of the nodes a window of 16 gave a mean JCT of
  39,640 s, 64 gave 37,236 s, 256 36,949 s and 1,024 35,540 s: a long window estimates the
  tail of the run times better, and the tail decides the conditional mean.
  With the 24 h starvation bound (ADR 0014) 1,024 gave 37,292 s, 4,096 37,727 s, 16,384 37,619 s:
  the bound serves the long waiters first, and a longer history no longer helps.
* The conditional mean, not the mean: a job that has run for an hour is not a fresh job of
  its class. Over heavy-tailed run times (training traces) the expected remaining time
  grows with age, so the order degrades gracefully to least attained service; over
  light-tailed ones it favours jobs about to end.
* With no history that says anything, the estimate is the age itself (at least
  ``prior_ms``): a Pareto-like guess that again orders by attained service.

Pure and deterministic: the same finishes in the same order give the same estimates.
Part of the pure core.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field

from gpupool.core.job import JobSpec

Key = tuple[str | int, ...]


def size_bucket(gpus: int) -> int:
    """The size class of a gang: 1, 2, 3-4, 5-8, 9-16, ... (powers of two, rounded up)."""
    return max(0, gpus - 1).bit_length()


def keys_of(spec: JobSpec) -> tuple[Key, ...]:
    """A job's history keys, finest first; the last, ``()``, is every job."""
    b = size_bucket(spec.gpus)
    return (
        ("u", spec.user, spec.project, spec.workload_class, b),
        ("p", spec.project, b),
        ("p", spec.project),
        (),
    )


@dataclass(slots=True)
class _History:
    """The last run times of one key, and their sorted view with suffix sums (made lazily)."""

    window: deque[int]
    sorted_ms: list[int] = field(default_factory=list)
    #: suffix[i] = sum(sorted_ms[i:])
    suffix: list[int] = field(default_factory=list)
    stale: bool = True

    def refresh(self) -> None:
        self.sorted_ms = sorted(self.window)
        acc = 0
        suffix = [0] * (len(self.sorted_ms) + 1)
        for i in range(len(self.sorted_ms) - 1, -1, -1):
            acc += self.sorted_ms[i]
            suffix[i] = acc
        self.suffix = suffix
        self.stale = False


class RuntimePredictor:
    """Expected remaining run times from the finishes it was told about (see the module)."""

    def __init__(self, window: int = 1024, min_samples: int = 4, prior_ms: int = 60_000) -> None:
        if window < 1 or min_samples < 1 or min_samples > window:
            raise ValueError(f"need 1 <= min_samples <= window, got {min_samples} and {window}")
        self.window = window
        self.min_samples = min_samples
        self.prior_ms = prior_ms
        self._by_key: dict[Key, _History] = {}
        #: finishes observed (for tests and reports)
        self.observed = 0

    def observe(self, spec: JobSpec, ran_ms: int) -> None:
        """A job finished after holding accelerators ``ran_ms`` in all (its attempts added)."""
        ran = max(0, int(ran_ms))
        for k in keys_of(spec):
            h = self._by_key.get(k)
            if h is None:
                h = self._by_key[k] = _History(deque(maxlen=self.window))
            h.window.append(ran)
            h.stale = True
        self.observed += 1

    def samples(self, key: Key) -> tuple[int, ...]:
        """The run times remembered under ``key``, oldest first."""
        h = self._by_key.get(key)
        return tuple(h.window) if h is not None else ()

    def expected_remaining(self, spec: JobSpec, age_ms: int) -> int:
        """``E[D - age | D > age]`` (ms) over the finest key with enough longer run times."""
        age = max(0, age_ms)
        need = self.min_samples
        for k in keys_of(spec):
            h = self._by_key.get(k)
            if h is None or len(h.window) < need:
                continue
            if h.stale:
                h.refresh()
            i = bisect_right(h.sorted_ms, age)
            n = len(h.sorted_ms) - i
            if n >= need:
                return max(1, h.suffix[i] // n - age)
        return max(self.prior_ms, age)
