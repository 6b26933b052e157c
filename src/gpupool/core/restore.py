"""Restoring the scheduler after a restart: its state rebuilt without a decision or a cycle.

This module owns how the live service puts back, from its database, what one ``Scheduler``
held before a restart: pending jobs with the service they already had
(``restore_pending``), running jobs on exactly the accelerators they hold
(``restore_running``) and the history of held accelerators that fair share decays
(``restore_usage``). They mirror the scheduler's submission and start (the same state,
without a decision or a cycle), and are reached through its public methods of the same
names.

Part of the pure core, like the scheduler it rebuilds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpupool.core.decisions import Reason
from gpupool.core.job import JobSpec
from gpupool.core.job_state import RUNNING, JobState

if TYPE_CHECKING:
    from gpupool.core.scheduler import Scheduler


def restore_pending(
    sched: Scheduler,
    spec: JobSpec,
    *,
    attempt: int = 0,
    run_ms: int = 0,
    attained: float = 0.0,
    preemptions: int = 0,
) -> None:
    """Put back a pending job with the service it already had (after a restart).

    Unlike a submission it keeps its attempts, run time and attained service, so ``las``
    and ``srtf`` order it as before the restart. No decision, no cycle. ValueError if the
    job is invalid, its project is unknown or it could never be placed.
    """
    spec.validate()
    if spec.id in sched.jobs:
        raise ValueError(f"job {spec.id!r} is already in the scheduler")
    project = sched.tenancy.resolve(spec.project)
    if project is None:
        raise ValueError(f"job {spec.id!r}: unknown project {spec.project!r}")
    cands, why = sched._cands.of(spec, project)
    if not cands:
        raise ValueError(f"job {spec.id!r}: {why}")
    sched._seq += 1
    j = JobState(spec, sched._seq, project, cands, spec.rank)
    j.attempt, j.run_ms, j.attained, j.preemptions = attempt, run_ms, attained, preemptions
    if preemptions:
        j.reason = Reason.PREEMPTED
    sched.jobs[spec.id] = j
    sched._by_seq[j.seq] = j
    sched._enqueue(j)
    sched._dirty.update(cands)


def restore_running(
    sched: Scheduler,
    spec: JobSpec,
    placement: Sequence[tuple[str, Sequence[int]]],
    start_ms: int,
    attempt: int,
    run_ms: int = 0,
    attained: float = 0.0,
) -> None:
    """Put back a job that was running on exactly these accelerators (after a restart).

    The live service rebuilds the core from its database with this; it makes no decision.
    ValueError if the job is invalid, its project or a node is unknown, the placement
    spans pools or does not hold the job's accelerators, or an accelerator is taken.
    """
    spec.validate()
    if spec.id in sched.jobs:
        raise ValueError(f"job {spec.id!r} is already in the scheduler")
    project = sched.tenancy.resolve(spec.project)
    if project is None:
        raise ValueError(f"job {spec.id!r}: unknown project {spec.project!r}")
    nodes = []
    for name, ids in placement:
        idx = sched.fleet.node_by_name.get(name)
        if idx is None:
            raise ValueError(f"job {spec.id!r}: unknown node {name!r}")
        nodes.append((idx, tuple(ids)))
    pools = {sched.capacity.node_pool[n] for n, _ in nodes}
    if len(pools) != 1 or sum(len(ids) for _, ids in nodes) != spec.gpus:
        raise ValueError(f"job {spec.id!r}: placement must hold its {spec.gpus} accelerators in one pool")
    pool = pools.pop()
    taken: list[tuple[int, tuple[int, ...]]] = []
    try:
        for n, ids in nodes:
            sched.capacity.take(n, ids)
            taken.append((n, ids))
    except AssertionError as e:
        for n, ids in taken:
            sched.capacity.release(n, ids)
        raise ValueError(f"job {spec.id!r}: {e}") from None
    cands, _ = sched._cands.of(spec, project)
    sched._seq += 1
    j = JobState(spec, sched._seq, project, cands or (pool,), spec.rank, status=RUNNING)
    j.attempt, j.allocation_id, j.pool = attempt, f"{spec.id}#{attempt}", pool
    j.placement, j.start_ms, j.run_ms, j.attained = tuple(taken), start_ms, run_ms, attained
    j.expected_end = start_ms + sched._remaining(j)
    sched.jobs[spec.id] = j
    sched._by_seq[j.seq] = j
    sched.running[j.seq] = j
    sched._running_by_pool[pool].add((j.expected_end, j.seq))
    sched._preemption.add(j, pool)
    for n, _ in taken:
        sched._node_jobs.setdefault(n, set()).add(j.seq)
    model = sched.capacity.pools[pool].model
    sched.ledger.change(project, model, spec.gpus, start_ms, sched._usage_rate(spec, model))
    sched._fairshare.held_changed(project)
    sched._version += 1
    sched._fairshare.usage_moved()


def restore_usage(sched: Scheduler, project: str, model: str, gpus: int, at_ms: int) -> None:
    """Replay one change of held accelerators (``gpus`` < 0 to release) into the ledger.

    For fair-share history after a restart: call in time order, interleaved with
    ``restore_running``, since the ledger is closed-form in time and must see every
    change in the order it happened.
    """
    idx = sched.tenancy.resolve(project)
    if idx is None:
        raise ValueError(f"unknown project {project!r}")
    sched.ledger.change(idx, model, gpus, at_ms)
    sched._fairshare.held_changed(idx)
