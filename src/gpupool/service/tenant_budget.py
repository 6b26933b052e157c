"""GPU-hour budgets along a project's path: its own, its organisation's and its sector's.

This module owns the submission's budget verdict over the tenant tree (ADR 0018), as the twin
checks it (``Ledger.over_budget``: the first node on the path past its budget): the project's
allocations as before (``gpupool.service.budget``), then those of its organisation and of its
sector, each counting the usage of every project under it. The first level that is spent
decides: the job runs as preemptible, or is refused when that level's allocations say
``reject``. A level without an active allocation covering the job's models does not limit it.
Each allocation counts in its own unit (GPU-hours or effective GPU-hours).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.accelerator import Catalogue
from gpupool.service import budget
from gpupool.service.db import TenantRow
from gpupool.service.directory import Directory


def ancestors(path: str) -> list[str]:
    """The organisation and sector above a project path, nearest first."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def projects_under(s: Session, path: str) -> list[int]:
    """The projects at or under ``path``."""
    rows = s.execute(select(TenantRow.id, TenantRow.path).where(TenantRow.kind == "project"))
    return [i for i, p in rows if p == path or p.startswith(path + "/")]


def verdict(
    s: Session,
    directory: Directory,
    project_id: int,
    project_path: str,
    models: Sequence[str],
    now: int,
    catalogue: Catalogue,
) -> budget.Verdict:
    """The verdict for a new job of the project: its own budget, then each level above it."""
    own = budget.verdict(
        s, project_id, project_path, models, now, directory.allocations(project_id, now), catalogue
    )
    if own.over:
        return own
    for path in ancestors(project_path):
        tenant = directory.tenant(path)
        if tenant is None:
            continue
        active = directory.allocations(tenant.id, now)
        if not active:
            continue
        under = projects_under(s, path)
        got = budget.verdict(s, tenant.id, path, models, now, active, catalogue, under, False)
        if got.over:
            return got
    return budget.UNDER
