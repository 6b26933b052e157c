"""Usage accounting: GPU-hours and effective GPU-hours from the usage intervals.

This module owns the arithmetic over ``usage`` rows: the GPU-hours an interval spent inside a
time range (open intervals count up to ``now``), and effective GPU-hours, which weigh each
hour by the accelerator model's relative throughput for the job's workload class (from the
catalogue: an hour of a model twice as fast as the reference counts two). It also rolls usage
up to projects, organisations and sectors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gpupool.core.accelerator import Catalogue
from gpupool.service.db import UsageRow

HOUR_MS = 3_600_000
GROUPS = ("project", "organisation", "sector")


def gpu_ms_within(row: UsageRow, start_ms: int, end_ms: int, now: int) -> int:
    """Accelerator-milliseconds of ``row`` inside [start_ms, end_ms)."""
    end = row.end_ms if row.end_ms is not None else now
    lo = max(row.start_ms, start_ms)
    hi = min(end, end_ms)
    return max(0, hi - lo) * row.gpus


def speed(catalogue: Catalogue, row: UsageRow) -> float:
    """What an hour of ``row`` counts in effective GPU-hours: its model's relative throughput
    for the job's workload class (1 for a model the catalogue does not know)."""
    return catalogue[row.model].speed(row.workload_class) if row.model in catalogue else 1.0


def gpu_hours(rows: Iterable[UsageRow], start_ms: int, end_ms: int, now: int) -> float:
    return sum(gpu_ms_within(r, start_ms, end_ms, now) for r in rows) / HOUR_MS


@dataclass(slots=True)
class UsageTotal:
    key: str
    gpu_hours: float = 0.0
    effective_gpu_hours: float = 0.0
    allocations: int = 0


def group_key(path: str, by: str) -> str:
    """The project, organisation or sector path a project path rolls up to."""
    depth = GROUPS.index(by)
    parts = path.split("/")
    return "/".join(parts[: len(parts) - depth]) if depth else path


def roll_up(
    rows: Iterable[UsageRow],
    paths: dict[int, str],
    by: str,
    catalogue: Catalogue,
    start_ms: int,
    end_ms: int,
    now: int,
) -> list[UsageTotal]:
    """Usage per ``by`` group, sorted by key."""
    out: dict[str, UsageTotal] = {}
    for r in rows:
        ms = gpu_ms_within(r, start_ms, end_ms, now)
        if ms <= 0:
            continue
        key = group_key(paths.get(r.project_id, f"#{r.project_id}"), by)
        t = out.get(key)
        if t is None:
            t = out[key] = UsageTotal(key)
        hours = ms / HOUR_MS
        t.gpu_hours += hours
        t.effective_gpu_hours += hours * speed(catalogue, r)
        t.allocations += 1
    return [out[k] for k in sorted(out)]
