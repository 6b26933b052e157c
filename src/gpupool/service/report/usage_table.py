"""The usage report's rows: per group, accelerator model and time bucket, what was used and waited.

This module owns ``usage report`` arithmetic. Usage intervals (``usage`` rows: one per
allocation of a job, with its model, accelerators, start and end) are split across the
buckets they overlap, so an interval running from Monday 22:00 to Tuesday 02:00 counts two
hours on each day. Per (bucket, group, model) it gives GPU-hours, effective GPU-hours (weighed
by the model's throughput for the job's workload class), the jobs that ran, the queueing delay
(first start minus submission, p50 and p95) of the jobs whose first start falls in the
bucket, and the share of the group's entitlement used: GPU-hours over the accelerators of
that model guaranteed to the group (its own and its active allocations', its children's when
it sets none) times the bucket's hours (up to now, for the bucket now runs in). Guarantees
of any model (``*``) are not spread over models; ``user`` rows have no entitlement.

Rights follow ``/v1/usage`` and the dashboard's tenants page: pool admins and viewers see
everything; others see, by project or user, their own projects only, and by organisation or
sector the whole totals of the organisations and sectors they may see (aggregates: projects
they may not see count in them, never shown on their own).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpupool.core.accelerator import Catalogue
from gpupool.service import store
from gpupool.service.api.dashboard.session import usage_projects
from gpupool.service.auth import Caller
from gpupool.service.db import JobRow, TenantRow, UsageRow, UserRow
from gpupool.service.report.buckets import Bucket
from gpupool.service.tenant_tree import active_allocations, guarantees, tenant_rows
from gpupool.service.usage import HOUR_MS, gpu_ms_within, group_key, speed

__all__ = ["By", "Scope", "UsageLine", "first_starts", "percentile", "usage_lines", "visible_projects"]


class By(StrEnum):
    SECTOR = "sector"
    ORGANISATION = "organisation"
    PROJECT = "project"
    USER = "user"


class Scope(StrEnum):
    """What the figures cover, said next to them so a partial sum never reads as the whole."""

    ALL = "all"
    WHOLE_GROUPS = "whole totals of the groups you may see"
    YOUR_PROJECTS = "your projects only"


@dataclass(slots=True)
class UsageLine:
    period: str
    start_ms: int
    end_ms: int
    key: str
    model: str
    gpu_hours: float = 0.0
    effective_gpu_hours: float = 0.0
    jobs: int = 0
    started: int = 0
    wait_p50_s: float | None = None
    wait_p95_s: float | None = None
    entitlement_gpu_hours: float | None = None
    share_of_entitlement: float | None = None
    _jobs: set[int] = field(default_factory=set)
    _waits: list[float] = field(default_factory=list)
    _started: set[int] = field(default_factory=set)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def visible_projects(caller: Caller, paths: dict[int, str], by: By) -> list[int] | None:
    """The projects whose usage counts in the caller's report (None: all), as ``/v1/usage``."""
    if caller.sees_all:
        return None
    if by in (By.PROJECT, By.USER):
        return sorted(usage_projects(caller) or ())
    # Whole groups the caller may see: every project whose sector or organisation is one.
    ids = {p: t for t, p in paths.items()}
    return sorted(
        t
        for t, p in paths.items()
        if (g := ids.get(group_key(p, by.value))) is not None and caller.can_see(g)
    )


def scope_of(caller: Caller, by: By) -> Scope:
    if caller.sees_all:
        return Scope.ALL
    return Scope.YOUR_PROJECTS if by in (By.PROJECT, By.USER) else Scope.WHOLE_GROUPS


def entitlements(s: Session, now: int) -> dict[str, dict[str, int]]:
    """Each tenant's guaranteed accelerators by model, by path: its own and its active
    allocations', or its children's sum when it sets none."""
    rows = tenant_rows(s)
    own = guarantees(rows, active_allocations(s, now))
    children: dict[int | None, list[int]] = {}
    for r in rows:
        children.setdefault(r.parent_id, []).append(r.id)
    out: dict[int, dict[str, int]] = {}

    def visit(tid: int) -> dict[str, int]:
        summed: dict[str, int] = {}
        for c in children.get(tid, []):
            for m, g in visit(c).items():
                summed[m] = summed.get(m, 0) + g
        out[tid] = dict(own[tid]) if own[tid] else summed
        return out[tid]

    for root in children.get(None, []):
        visit(root)
    return {r.path: out.get(r.id, {}) for r in rows}


def first_starts(s: Session, seqs: Sequence[int]) -> dict[int, int]:
    """Each job's first start: its earliest usage interval's, which may precede a report's range.

    A job's queueing delay ends there: a restart after preemption is not a wait for capacity
    the job never had."""
    out: dict[int, int] = {}
    for i in range(0, len(seqs), 500):
        q = select(UsageRow.job_seq, func.min(UsageRow.start_ms)).where(
            UsageRow.job_seq.in_(seqs[i : i + 500])
        )
        for seq, first in s.execute(q.group_by(UsageRow.job_seq)):
            out[int(seq)] = int(first)
    return out


def usage_lines(
    s: Session,
    caller: Caller,
    catalogue: Catalogue,
    by: By,
    cuts: list[Bucket],
    now: int,
) -> tuple[Scope, list[UsageLine]]:
    """The report's lines, sorted by bucket, group and model, over ``cuts``."""
    if not cuts:
        return scope_of(caller, by), []
    paths: dict[int, str] = {t: p for t, p in s.execute(select(TenantRow.id, TenantRow.path))}
    projects = visible_projects(caller, paths, by)
    start_ms, end_ms = cuts[0].start_ms, cuts[-1].end_ms
    rows = store.usage_rows(s, projects, start_ms, end_ms)
    seqs = sorted({r.job_seq for r in rows})
    jobs: dict[int, tuple[int, int]] = {}  # seq -> (submit_ms, user_id)
    for i in range(0, len(seqs), 500):
        chunk = seqs[i : i + 500]
        for seq, submit, user in s.execute(
            select(JobRow.seq, JobRow.submit_ms, JobRow.user_id).where(JobRow.seq.in_(chunk))
        ):
            jobs[seq] = (submit, user)
    users: dict[int, str] = {}
    if by is By.USER:
        users = {i: n for i, n in s.execute(select(UserRow.id, UserRow.name))}
    first_start = first_starts(s, sorted({r.job_seq for r in rows if r.start_ms >= start_ms}))
    lines: dict[tuple[int, str, str], UsageLine] = {}

    def key_of(project_id: int, seq: int) -> str:
        if by is By.USER:
            return users.get(jobs.get(seq, (0, 0))[1], f"#{jobs.get(seq, (0, 0))[1]}")
        return group_key(paths.get(project_id, f"#{project_id}"), by.value)

    starts = [b.start_ms for b in cuts]
    for r in rows:
        key = key_of(r.project_id, r.job_seq)
        # only the buckets the interval overlaps (an open interval runs to now)
        end = min(r.end_ms if r.end_ms is not None else now, end_ms)
        first = max(0, bisect.bisect_right(starts, r.start_ms) - 1)
        last = bisect.bisect_left(starts, max(end, r.start_ms + 1))
        for i in range(first, last):
            b = cuts[i]
            ms = gpu_ms_within(r, b.start_ms, b.end_ms, now)
            starts_here = r.start_ms == first_start.get(r.job_seq) and b.start_ms <= r.start_ms < b.end_ms
            if ms <= 0 and not starts_here:
                continue
            line = lines.get((i, key, r.model))
            if line is None:
                line = lines[(i, key, r.model)] = UsageLine(b.label, b.start_ms, b.end_ms, key, r.model)
            hours = ms / HOUR_MS
            line.gpu_hours += hours
            line.effective_gpu_hours += hours * speed(catalogue, r)
            line._jobs.add(r.job_seq)
            if starts_here and r.job_seq in jobs and r.job_seq not in line._started:
                line._started.add(r.job_seq)
                line._waits.append(max(0, r.start_ms - jobs[r.job_seq][0]) / 1000)
                line.started += 1
    ent = entitlements(s, now) if by is not By.USER else {}
    out: list[UsageLine] = []
    for (i, _key, _model), line in sorted(lines.items()):
        line.jobs = len(line._jobs)
        line.wait_p50_s = percentile(line._waits, 0.5)
        line.wait_p95_s = percentile(line._waits, 0.95)
        if by is not By.USER:
            g = ent.get(line.key, {}).get(line.model, 0)
            # the current bucket is entitled to the hours gone so far, not to its future
            elapsed = max(0, min(cuts[i].end_ms, now) - cuts[i].start_ms) / HOUR_MS
            line.entitlement_gpu_hours = g * elapsed
            line.share_of_entitlement = line.gpu_hours / line.entitlement_gpu_hours if g else None
        out.append(line)
    return scope_of(caller, by), out
