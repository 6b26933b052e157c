"""The tenant tree as stored: seeding it from a tenants file, and the core's view of it.

This module owns the mapping between tenant rows (plus active allocations) and the core's
``Tenancy``: guarantees are the tenant's own plus the guaranteed shares of its active
allocations; GPU-hour budgets are not given to the core (budgets have periods and accelerator
classes, which ``gpupool.service.budget`` checks at submission). It also seeds an empty
database from a tenants file: tenants, member users, and one allocation per budgeted project.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.fleet import Fleet
from gpupool.core.tenancy import ANY_MODEL, DEFAULT_CLASSES, Tenancy, TenancyBuilder
from gpupool.service.db import AllocationRow, MembershipRow, TenantRow, UserRow

log = logging.getLogger("gpupool.service")
YEAR_MS = 365 * 86_400_000


def tenant_rows(s: Session) -> list[TenantRow]:
    """Every tenant, parents before children (ids grow as tenants are added under parents)."""
    return list(s.scalars(select(TenantRow).order_by(TenantRow.id)))


def active_allocations(s: Session, now: int) -> list[AllocationRow]:
    return list(
        s.scalars(
            select(AllocationRow).where(
                AllocationRow.state == "active",
                AllocationRow.period_start_ms <= now,
                AllocationRow.period_end_ms > now,
            )
        )
    )


def guarantees(rows: list[TenantRow], allocations: list[AllocationRow]) -> dict[int, dict[str, int]]:
    """Each tenant's guaranteed accelerators by model, by tenant id: its own plus the
    guaranteed shares of ``allocations`` (give the active ones)."""
    extra: dict[int, dict[str, int]] = {}
    for a in allocations:
        if a.guaranteed > 0:
            more = extra.setdefault(a.project_id, {})
            more[a.model] = more.get(a.model, 0) + a.guaranteed
    out: dict[int, dict[str, int]] = {}
    for r in rows:
        guaranteed = dict(r.guaranteed)
        for model, g in extra.get(r.id, {}).items():
            guaranteed[model] = guaranteed.get(model, 0) + g
        out[r.id] = guaranteed
    return out


def effective_classes(rows: list[TenantRow]) -> dict[int, frozenset[str]]:
    """Each tenant's allowed priority classes by id: its own list, else its parent's (give
    the rows parents first, as ``tenant_rows`` does)."""
    out: dict[int, frozenset[str]] = {}
    for r in rows:
        inherited = out.get(r.parent_id, frozenset(DEFAULT_CLASSES)) if r.parent_id is not None else None
        own = r.allowed_classes
        if own is not None:
            out[r.id] = frozenset(own)
        else:
            out[r.id] = inherited if inherited is not None else frozenset(DEFAULT_CLASSES)
    return out


def build_tenancy(
    rows: list[TenantRow], allocations: list[AllocationRow], fleet: Fleet, name: str = "service"
) -> Tenancy:
    """The core's tenancy for these rows; raises ``TenancyError`` if they contradict."""
    guaranteed_by_id = guarantees(rows, allocations)
    b = TenancyBuilder(name)
    index: dict[int, int] = {}
    for r in rows:
        guaranteed = guaranteed_by_id[r.id]
        parent = -1 if r.parent_id is None else index[r.parent_id]
        index[r.id] = b.add(
            parent,
            r.path.rsplit("/", 1)[-1],
            name=r.name,
            kind=r.kind,
            weight=r.weight,
            guaranteed=guaranteed,
            borrow_limit=r.borrow_limit,
            over_budget=r.over_budget,
            clusters=r.clusters,
            allowed_classes=r.allowed_classes,
        )
    return b.build(capacity_by_model=fleet.gpus_by_model())


def leaf_kind(path: str) -> str:
    depth = path.count("/")
    return ("sector", "organisation", "project")[min(depth, 2)]


def seed(s: Session, tenancy: Tenancy, now: int) -> None:
    """Fill an empty database from a tenants file (within the caller's transaction)."""
    ids: dict[int, int] = {}
    users: dict[str, UserRow] = {}
    for n in tenancy.nodes:
        row = TenantRow(
            path=n.path,
            name=n.name,
            kind=n.kind,
            parent_id=None if n.parent < 0 else ids[n.parent],
            weight=n.weight,
            guaranteed=dict(n.guaranteed),
            borrow_limit=None if n.borrow_limit is None else dict(n.borrow_limit),
            clusters=list(n.clusters),
            over_budget=n.over_budget,
            allowed_classes=None if n.allowed_classes is None else list(n.allowed_classes),
            created_ms=now,
        )
        s.add(row)
        s.flush()
        ids[n.index] = row.id
        if n.budget_gpu_hours is not None:
            if n.kind != "project":
                log.warning("tenant %s: a budget above project level is not an allocation; ignored", n.path)
            else:
                s.add(
                    AllocationRow(
                        project_id=row.id,
                        model=ANY_MODEL,
                        gpu_hours=n.budget_gpu_hours,
                        period_start_ms=now,
                        period_end_ms=now + YEAR_MS,
                        guaranteed=0,
                        over_budget=n.over_budget,
                        state="active",
                        note="budget from the tenants file",
                        created_ms=now,
                    )
                )
        for m in n.members:
            u = users.get(m)
            if u is None:
                u = users[m] = UserRow(name=m, display_name=m, role="user", created_ms=now)
                s.add(u)
                s.flush()
            s.add(MembershipRow(user_id=u.id, tenant_id=row.id, role="member"))
