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

from gpupool.core.tenancy import ANY_MODEL
from gpupool.service import store
from gpupool.service.tenant_tree import active_allocations
from gpupool.service.usage import gpu_hours


@dataclass(frozen=True, slots=True)
class Verdict:
    over: bool
    #: ``preemptible`` or ``reject`` when over
    action: str = ""
    detail: str = ""


UNDER = Verdict(False)


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


def used_hours(s: Session, a: AllocationLike, now: int) -> float:
    """GPU-hours the allocation's project used of its class within its period, up to now."""
    model = None if a.model == ANY_MODEL else a.model
    rows = store.usage_rows(s, [a.project_id], a.period_start_ms, a.period_end_ms, model)
    return gpu_hours(rows, a.period_start_ms, min(a.period_end_ms, now), now)


def verdict(
    s: Session,
    project_id: int,
    project_path: str,
    models: Sequence[str],
    now: int,
    active: Sequence[AllocationLike] | None = None,
) -> Verdict:
    """The budget verdict for a new job of ``project_id`` that accepts ``models`` (empty: any).

    ``active``: the project's allocations active at ``now`` when the caller has them (the
    API's directory cache); otherwise they are read from the database.
    """
    if active is None:
        active = [a for a in active_allocations(s, now) if a.project_id == project_id]
    mine = list(active)
    if not mine:
        return UNDER
    usable = [a for a in mine if a.model == ANY_MODEL or not models or a.model in models]
    if not usable:
        want = "/".join(models)
        return Verdict(
            True,
            "preemptible",
            f"{project_path} has no active allocation of {want}: runs as preemptible",
        )
    spent = []
    for a in usable:
        used = used_hours(s, a, now)
        if used < a.gpu_hours:
            return UNDER
        spent.append(f"allocation {a.id} ({a.model}): {used:,.1f} of {a.gpu_hours:,.1f} GPU-hours used")
    action = "preemptible" if any(a.over_budget == "preemptible" for a in usable) else "reject"
    then = "runs as preemptible" if action == "preemptible" else "new jobs are refused"
    return Verdict(True, action, f"{project_path} is past its GPU-hour budget ({'; '.join(spent)}): {then}")
