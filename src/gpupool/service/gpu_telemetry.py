"""GPU telemetry across processes: the leader's executors sample, the API processes show.

This module owns ``TelemetryPublisher`` and ``read_telemetry``. The local executor samples
each allocation's GPUs (NVML) in the process that runs it, which under ``gpupool serve`` is the
scheduler process (ADR 0006), not the API process that answers the job detail page. The
scheduler publishes what changed into ``gpu_telemetry`` about once a second (one row per
allocation: its samples so far, as the executor keeps them), and an API process reads the row.
Rows not updated for ``KEEP_MS`` are pruned. Publishing decides nothing and is not fenced: a
stale leader can at worst rewrite samples its own processes took.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from gpupool.service.db import TelemetryRow
from gpupool.service.executors.gpus import GpuSample

#: rows not updated for this long are removed (a day of finished allocations stays visible)
KEEP_MS = 86_400_000
#: pruning runs at most this often
PRUNE_EVERY_MS = 60_000


def _rows(samples: Iterable[GpuSample]) -> list[list[Any]]:
    return [[s.at_ms, s.device, s.utilization_pct, s.memory_used_mib] for s in samples]


class TelemetryPublisher:
    """Writes the samples that changed since the last call, for the executors given."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        #: allocations published, with the number of samples each had
        self._counts: dict[str, int] = {}
        self._last_prune = -(10**18)

    def publish(self, executors: Iterable[object], now: int) -> int:
        """Publish new samples (running allocations, and once more those that just ended)."""
        changed: dict[str, list[GpuSample]] = {}
        seen: set[str] = set()
        for ex in executors:
            read = getattr(ex, "telemetry", None)
            running = getattr(ex, "allocations", None)
            if not callable(read) or not callable(running):
                continue
            live = set(running())
            for aid in live | (set(self._counts) - seen):
                samples = list(read(aid))
                if aid in live:
                    seen.add(aid)
                if samples and len(samples) != self._counts.get(aid):
                    changed[aid] = samples
        # allocations that ended: their last samples were published above; stop watching
        for aid in set(self._counts) - seen - set(changed):
            del self._counts[aid]
        if not changed and now - self._last_prune < PRUNE_EVERY_MS:
            return 0
        with self.factory.begin() as s:
            for aid, samples in changed.items():
                values = {"samples": _rows(samples), "updated_ms": now}
                hit = s.connection().execute(
                    update(TelemetryRow).where(TelemetryRow.allocation_id == aid).values(**values)
                )
                if hit.rowcount == 0:
                    s.add(TelemetryRow(allocation_id=aid, **values))
                self._counts[aid] = len(samples)
            if now - self._last_prune >= PRUNE_EVERY_MS:
                self._last_prune = now
                s.execute(delete(TelemetryRow).where(TelemetryRow.updated_ms < now - KEEP_MS))
        return len(changed)


def read_telemetry(s: Session, allocation_id: str) -> list[GpuSample]:
    """The published samples of one allocation (none if its executor sampled nothing)."""
    rows = s.scalar(select(TelemetryRow.samples).where(TelemetryRow.allocation_id == allocation_id))
    return [GpuSample(int(a), str(d), int(u), int(m)) for a, d, u, m in rows or []]
