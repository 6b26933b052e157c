"""The public accountability report's figures for a period: aggregates only, no tenant's detail.

This module owns what the programme publishes per period (``2026-Q1``): for each sector and
each call, GPU-hours granted, used and left; each sector's share of the pool against its
target; queueing delays; the pool's utilisation; fairness; and the share of work on domestic
NPUs. It names sectors, calls and accelerator models, never a job, user, command or project.

Definitions (each stated in the page too):

- *granted*: GPU-hours of the allocations (approved, active or expired) whose period overlaps
  the report's, in full; *used*: what their projects used of each allocation's model within
  the allocation's period, up to the end of the report's period (or now); *left*: granted
  minus used (never below zero). A call's figures are its awards' allocations, by sector of
  the awarded project.
- *target share*: the sector's guaranteed accelerators over the fleet's; *actual share*: its
  GPU-hours in the period over the pool's capacity (fleet accelerators times the period's
  hours elapsed).
- *waits*: first start minus submission of the jobs whose first start falls in the period.
- *utilisation*: GPU-hours used over capacity.
- *fairness*: Jain's index of GPU-hours per guaranteed accelerator over the projects with
  demand (a job submitted in, or running during, the period) and a guarantee, as the twin
  computes it; equal shares when no such project has a guarantee.
- *domestic NPUs*: models whose catalogue vendor is Korean (Rebellions, FuriosaAI).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.accelerator import Catalogue
from gpupool.service import budget, store
from gpupool.service.db import AllocationRow, AwardRow, CallRow, JobRow, TenantRow
from gpupool.service.report.usage_table import entitlements, first_starts, percentile
from gpupool.service.usage import HOUR_MS, gpu_ms_within, speed
from gpupool.sim.metrics import jain_index

__all__ = ["DOMESTIC_VENDORS", "GRANTED_STATES", "public_report"]

#: NPU vendors counted as domestic (Korean) in the catalogue
DOMESTIC_VENDORS = frozenset({"Rebellions", "FuriosaAI"})
#: allocation states that are a grant (requested and rejected ones are not)
GRANTED_STATES = ("approved", "active", "expired")


@dataclass(slots=True)
class Granted:
    granted_gpu_hours: float = 0.0
    used_gpu_hours: float = 0.0

    @property
    def left_gpu_hours(self) -> float:
        return max(0.0, self.granted_gpu_hours - self.used_gpu_hours)


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def sector_of(path: str) -> str:
    return path.split("/", 1)[0]


def public_report(
    s: Session, catalogue: Catalogue, fleet_gpus: int, label: str, start_ms: int, end_ms: int, now: int
) -> dict[str, Any]:
    """The report's figures as JSON-ready data (see the module's definitions)."""
    until = max(start_ms, min(end_ms, now))
    hours = (until - start_ms) / HOUR_MS
    capacity = fleet_gpus * hours
    tenants = list(s.scalars(select(TenantRow).order_by(TenantRow.id)))
    paths = {t.id: t.path for t in tenants}
    sectors = [t.path for t in tenants if t.parent_id is None]
    sector_names = {t.path: t.name for t in tenants if t.parent_id is None}
    ent = entitlements(s, now)

    # Usage in the period, per sector, project and model.
    rows = store.usage_rows(s, None, start_ms, until) if until > start_ms else []
    used_sector: dict[str, float] = dict.fromkeys(sectors, 0.0)
    used_project: dict[int, float] = {}
    by_model: dict[str, list[float]] = {}
    for r in rows:
        h = gpu_ms_within(r, start_ms, until, now) / HOUR_MS
        sec = sector_of(paths.get(r.project_id, "?"))
        used_sector[sec] = used_sector.get(sec, 0.0) + h
        used_project[r.project_id] = used_project.get(r.project_id, 0.0) + h
        m = by_model.setdefault(r.model, [0.0, 0.0])
        m[0] += h
        m[1] += h * speed(catalogue, r)
    first_start = first_starts(s, sorted({r.job_seq for r in rows if r.start_ms >= start_ms}))

    # Waits of the jobs first started in the period, per sector.
    started = [seq for seq, t in first_start.items() if start_ms <= t < until]
    submits: dict[int, tuple[int, int]] = {}
    for i in range(0, len(started), 500):
        chunk = started[i : i + 500]
        for seq, submit, pid in s.execute(
            select(JobRow.seq, JobRow.submit_ms, JobRow.project_id).where(JobRow.seq.in_(chunk))
        ):
            submits[seq] = (submit, pid)
    waits: dict[str, list[float]] = {}
    for seq, (submit, pid) in submits.items():
        waits.setdefault(sector_of(paths.get(pid, "?")), []).append(max(0, first_start[seq] - submit) / 1000)
    all_waits = [w for ws in waits.values() for w in ws]

    # Demand: projects with a job submitted in the period, or running during it.
    demand = set(used_project) | {
        pid
        for (pid,) in s.execute(
            select(JobRow.project_id).where(JobRow.submit_ms >= start_ms, JobRow.submit_ms < until).distinct()
        )
    }
    entitled = {p: float(sum(ent.get(paths.get(p, ""), {}).values())) for p in demand}
    if any(entitled.values()):
        fair = [used_project.get(p, 0.0) / e for p, e in entitled.items() if e > 0]
    else:
        fair = [used_project.get(p, 0.0) for p in demand]
    jain = jain_index(fair)

    # Grants: allocations overlapping the period, by sector; awards' allocations by call.
    allocs = list(
        s.scalars(
            select(AllocationRow).where(
                AllocationRow.state.in_(GRANTED_STATES),
                AllocationRow.period_start_ms < end_ms,
                AllocationRow.period_end_ms > start_ms,
            )
        )
    )
    granted: dict[str, Granted] = {sec: Granted() for sec in sectors}
    used_of: dict[int, float] = {}
    for a in allocs:
        g = granted.setdefault(sector_of(paths.get(a.project_id, "?")), Granted())
        used_of[a.id] = budget.used_hours(s, a, until, catalogue)
        g.granted_gpu_hours += a.gpu_hours
        g.used_gpu_hours += used_of[a.id]
    calls: list[dict[str, Any]] = []
    alloc_by_id = {a.id: a for a in allocs}
    for call in s.scalars(select(CallRow).order_by(CallRow.id)):
        per: dict[str, Granted] = {}
        for award in s.scalars(select(AwardRow).where(AwardRow.call_id == call.id)):
            for aid in award.allocation_ids:
                got = alloc_by_id.get(aid)
                if got is None:
                    continue  # not overlapping the period, or no longer a grant
                g = per.setdefault(sector_of(paths.get(got.project_id, "?")), Granted())
                g.granted_gpu_hours += got.gpu_hours
                g.used_gpu_hours += used_of[aid]
        for sec, g in sorted(per.items()):
            calls.append(
                {
                    "call_id": call.id,
                    "title_ko": call.title_ko,
                    "title_en": call.title_en,
                    "sector": sec,
                    "granted_gpu_hours": _r(g.granted_gpu_hours),
                    "used_gpu_hours": _r(g.used_gpu_hours),
                    "left_gpu_hours": _r(g.left_gpu_hours),
                }
            )

    total_used = sum(m[0] for m in by_model.values())
    fleet = fleet_gpus or 1
    sector_lines = []
    for sec in sorted(set(sectors) | set(used_sector) | set(granted)):
        g = granted.get(sec, Granted())
        ws = waits.get(sec, [])
        guaranteed = sum(ent.get(sec, {}).values())
        sector_lines.append(
            {
                "sector": sec,
                "name": sector_names.get(sec, sec),
                "granted_gpu_hours": _r(g.granted_gpu_hours),
                "used_gpu_hours": _r(g.used_gpu_hours),
                "left_gpu_hours": _r(g.left_gpu_hours),
                "gpu_hours": _r(used_sector.get(sec, 0.0)),
                "guaranteed_gpus": guaranteed,
                "target_share": _r(guaranteed / fleet, 9),
                "actual_share": _r(used_sector.get(sec, 0.0) / capacity, 9) if capacity else None,
                "jobs_started": len(ws),
                "wait_p50_s": _r(percentile(ws, 0.5), 3),
                "wait_p95_s": _r(percentile(ws, 0.95), 3),
            }
        )
    models = []
    domestic_h = 0.0
    for name in sorted(by_model):
        h, eh = by_model[name]
        vendor = catalogue[name].vendor if name in catalogue else ""
        domestic = vendor in DOMESTIC_VENDORS
        domestic_h += h if domestic else 0.0
        models.append(
            {
                "model": name,
                "vendor": vendor,
                "domestic": domestic,
                "gpu_hours": _r(h),
                "effective_gpu_hours": _r(eh),
            }
        )
    return {
        "period": label,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "until_ms": until,
        "pool": {
            "fleet_gpus": fleet_gpus,
            "capacity_gpu_hours": _r(capacity),
            "gpu_hours": _r(total_used),
            "effective_gpu_hours": _r(sum(m[1] for m in by_model.values())),
            "utilisation": _r(total_used / capacity, 9) if capacity else None,
            "jobs_started": len(all_waits),
            "wait_p50_s": _r(percentile(all_waits, 0.5), 3),
            "wait_p95_s": _r(percentile(all_waits, 0.95), 3),
            "jain_fairness": _r(jain, 9),
            "projects_with_demand": len(demand),
            "domestic_npu_gpu_hours": _r(domestic_h),
            "domestic_npu_share": _r(domestic_h / total_used, 9) if total_used else None,
        },
        "sectors": sector_lines,
        "calls": calls,
        "models": models,
    }
