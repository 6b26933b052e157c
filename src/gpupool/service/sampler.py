"""Queue depth and cycle time over time: a small in-memory sampler of the service's metrics.

This module owns ``SeriesSampler``. The service keeps only the current value of its gauges
(pending and running jobs, busy accelerators) and a cumulative histogram of cycle durations;
the dashboard wants them over time. A daemon thread reads the Prometheus registry every
``interval_s`` seconds and keeps a bounded ring of samples (a day at the default interval).
Cycle time per sample is the mean of the cycles that ran since the previous sample (the
difference of the histogram's sum and count) and a 95th percentile read off its buckets
(the upper bound of the bucket it falls in: a histogram cannot say more).

The history lives in memory only: a restarted service starts an empty series. That is enough
to watch a pool live; long-term history is Prometheus's job (``/metrics``).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

#: one sample per five seconds, a day of them
DEFAULT_INTERVAL_S = 5.0
DEFAULT_KEEP = 17_280


@dataclass(frozen=True, slots=True)
class Sample:
    at_ms: int
    pending: int
    running: int
    busy: int
    total: int
    #: cycles run since the previous sample, their mean and p95 duration (None: no cycle ran)
    cycles: int
    cycle_ms_mean: float | None
    cycle_ms_p95: float | None


@dataclass(slots=True)
class _Reading:
    pending: float = 0.0
    running: float = 0.0
    busy: float = 0.0
    total: float = 0.0
    cycle_sum: float = 0.0
    cycle_count: float = 0.0
    buckets: dict[float, float] | None = None


def _read(registry: CollectorRegistry) -> _Reading:
    r = _Reading(buckets={})
    assert r.buckets is not None
    for family in registry.collect():
        for s in family.samples:
            if s.name == "gpupool_jobs_pending":
                r.pending = s.value
            elif s.name == "gpupool_jobs_running":
                r.running = s.value
            elif s.name == "gpupool_accelerators_busy":
                r.busy += s.value
            elif s.name == "gpupool_accelerators_total":
                r.total += s.value
            elif s.name == "gpupool_cycle_duration_seconds_sum":
                r.cycle_sum = s.value
            elif s.name == "gpupool_cycle_duration_seconds_count":
                r.cycle_count = s.value
            elif s.name == "gpupool_cycle_duration_seconds_bucket":
                r.buckets[float(s.labels["le"])] = s.value
    return r


def _p95_ms(before: dict[float, float], after: dict[float, float], n: float) -> float | None:
    """The upper bound of the bucket holding the 95th percentile of the new observations."""
    if n <= 0:
        return None
    want = 0.95 * n
    for le in sorted(after):
        if after[le] - before.get(le, 0.0) >= want:
            return None if math.isinf(le) else le * 1000.0
    return None


class SeriesSampler:
    """Samples a metrics registry every ``interval_s`` seconds into a bounded ring."""

    def __init__(
        self,
        registry: CollectorRegistry,
        clock: Callable[[], int],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.interval_s = interval_s
        self._ring: deque[Sample] = deque(maxlen=keep)
        self._last: _Reading | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> Sample:
        now = self.clock()
        r = _read(self.registry)
        with self._lock:
            last = self._last
            n = r.cycle_count - (last.cycle_count if last else 0.0)
            mean = (r.cycle_sum - last.cycle_sum) / n * 1000.0 if last and n > 0 else None
            p95 = _p95_ms(last.buckets or {}, r.buckets or {}, n) if last else None
            s = Sample(
                at_ms=now,
                pending=int(r.pending),
                running=int(r.running),
                busy=int(r.busy),
                total=int(r.total),
                cycles=int(n) if last else 0,
                cycle_ms_mean=mean,
                cycle_ms_p95=p95,
            )
            self._last = r
            self._ring.append(s)
        return s

    def samples(self, since_ms: int | None = None) -> list[Sample]:
        with self._lock:
            got = list(self._ring)
        if since_ms is not None:
            got = [s for s in got if s.at_ms >= since_ms]
        return got

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.sample_once()
        self._thread = threading.Thread(target=self._run, name="gpupool-dashboard-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample_once()
            except Exception:  # pragma: no cover - a registry read failing must not end the series
                continue
