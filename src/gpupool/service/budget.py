"""GPU-hour budgets: is a project past what its allocations grant, and what then.

This module owns the budget verdict given at submission. A project with no active allocation
has no budget (the tenant tree's guarantees and fair share still apply). Otherwise a job may
draw on an active allocation whose accelerator class it can use (``*`` covers every model) and
whose GPU-hours in the allocation's period are not spent. When none is left, the job runs only
as ``preemptible``, or is refused when the allocations say ``over_budget: reject``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from gpupool.core.accelerator import Catalogue
from gpupool.core.tenancy import ANY_MODEL
from gpupool.service import store
from gpupool.service.tenant_tree import active_allocations
from gpupool.service.usage import HOUR_MS, gpu_hours, gpu_ms_within, speed


@dataclass(frozen=True, slots=True)
class Verdict:
    over: bool
    #: ``preemptible`` or ``reject`` when over
    action: str = ""
    detail: str = ""


UNDER = Verdict(False)
#: the unit of an allocation counted in H100-equivalent hours (the other: ``gpu_hours``)
EFFECTIVE = "effective"
UNITS = ("gpu_hours", EFFECTIVE)


class AllocationLike(Protocol):
    """An allocation as the budget reads it: a row, or the directory's detached copy."""

    @property
    def id(self) -> int: ...
    @property
    def project_id(self) -> int: ...
    @property
    def model(self) -> str: ...
    @property
    def gpu_hours(self) -> float: ...
    @property
    def period_start_ms(self) -> int: ...
    @property
    def period_end_ms(self) -> int: ...
    @property
    def over_budget(self) -> str: ...
    @property
    def unit(self) -> str: ...


def used_hours(
    s: Session,
    a: AllocationLike,
    now: int,
    catalogue: Catalogue | None = None,
    project_ids: Sequence[int] | None = None,
) -> float:
    """What the allocation's tenant used of its class within its period, up to now, in the
    allocation's unit: GPU-hours, or effective GPU-hours (each hour weighed by its model's
    throughput in ``catalogue``; ADR 0018). ``project_ids``: the projects whose usage counts
    (default: the allocation's own tenant, a project; an organisation's or a sector's
    allocation passes the projects under it)."""
    model = None if a.model == ANY_MODEL else a.model
    ids = list(project_ids) if project_ids is not None else [a.project_id]
    rows = store.usage_rows(s, ids, a.period_start_ms, a.period_end_ms, model)
    end = min(a.period_end_ms, now)
    if a.unit != EFFECTIVE:
        return gpu_hours(rows, a.period_start_ms, end, now)
    if catalogue is None:
        raise ValueError(f"allocation {a.id} is in effective GPU-hours: its usage needs the catalogue")
    return sum(gpu_ms_within(r, a.period_start_ms, end, now) * speed(catalogue, r) for r in rows) / HOUR_MS


def verdict(
    s: Session,
    project_id: int,
    project_path: str,
    models: Sequence[str],
    now: int,
    active: Sequence[AllocationLike] | None = None,
    catalogue: Catalogue | None = None,
    project_ids: Sequence[int] | None = None,
    uncovered_is_over: bool = True,
) -> Verdict:
    """The budget verdict for a new job of ``project_id`` that accepts ``models`` (empty: any).

    ``active``: the project's allocations active at ``now`` when the caller has them (the
    API's directory cache); otherwise they are read from the database. The same verdict is
    asked of an organisation or a sector (``gpupool.service.tenant_budget``): then
    ``project_ids`` are the projects under it, whose usage its allocations count, and
    ``uncovered_is_over`` is False (a budget above a project limits only the models it covers).
    """
    if active is None:
        active = [a for a in active_allocations(s, now) if a.project_id == project_id]
    mine = list(active)
    if not mine:
        return UNDER
    usable = [a for a in mine if a.model == ANY_MODEL or not models or a.model in models]
    if not usable:
        if not uncovered_is_over:
            return UNDER
        want = "/".join(models)
        return Verdict(
            True,
            "preemptible",
            f"{project_path} has no active allocation of {want}: runs as preemptible",
        )
    spent = []
    for a in usable:
        used = used_hours(s, a, now, catalogue, project_ids)
        if used < a.gpu_hours:
            return UNDER
        unit = "effective GPU-hours" if a.unit == EFFECTIVE else "GPU-hours"
        spent.append(f"allocation {a.id} ({a.model}): {used:,.1f} of {a.gpu_hours:,.1f} {unit} used")
    action = "preemptible" if any(a.over_budget == "preemptible" for a in usable) else "reject"
    then = "runs as preemptible" if action == "preemptible" else "new jobs are refused"
    return Verdict(True, action, f"{project_path} is past its GPU-hour budget ({'; '.join(spent)}): {then}")
