"""Restoring a pool state after a restart: rebuilt without a decision or a cycle.

This module owns how the live service puts back, from its database, what one scheduler's
pool state held before a restart: pending jobs with the service they already had
(``restore_pending``), running jobs on exactly the accelerators they hold
(``restore_running``) and the history of held accelerators that fair share decays
(``restore_usage``). They go through the pool state's own primitives, as a submission and a
start do (``admit``, ``new_job``, ``enqueue``, ``hold``), without a decision or a cycle, and
are reached through the scheduler's public methods of the same names.

Part of the pure core.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpupool.core.decisions import Reason
from gpupool.core.job import JobSpec
from gpupool.core.pool_state import PoolState, Refusal


def _admit(state: PoolState, spec: JobSpec) -> tuple[int, tuple[int, ...], int]:
    """``PoolState.admit``, its refusal as the ValueError a restore raises."""
    try:
        return state.admit(spec)
    except Refusal as e:
        if e.reason is Reason.INVALID and spec.id in state.jobs:
            raise ValueError(f"job {spec.id!r} is already in the scheduler") from None
        if e.reason is Reason.INVALID:
            raise ValueError(e.detail) from None
        raise ValueError(f"job {spec.id!r}: {e.detail}") from None


def restore_pending(
    state: PoolState,
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
    project, cands, cset = _admit(state, spec)
    j = state.new_job(spec, project, cands, spec.rank, cset)
    j.attempt, j.run_ms, j.attained, j.preemptions = attempt, run_ms, attained, preemptions
    if preemptions:
        j.reason = Reason.PREEMPTED
    state.enqueue(j)
    state.dirty.update(cands)


def restore_running(
    state: PoolState,
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
    spans pools or does not hold the job's accelerators, or an accelerator is taken. A job
    whose request no pool could hold now (the fleet changed) keeps its own pool as its
    only candidate.
    """
    try:
        project, cands, _ = state.admit(spec)
    except Refusal as e:
        if e.reason is not Reason.UNSCHEDULABLE:
            _admit(state, spec)  # raises the restore's error for this refusal
        resolved = state.resolve(spec.project)
        assert resolved is not None  # admit resolves the project before the candidates
        project, cands = resolved, ()
    nodes = []
    for name, ids in placement:
        idx = state.fleet.node_by_name.get(name)
        if idx is None:
            raise ValueError(f"job {spec.id!r}: unknown node {name!r}")
        nodes.append((idx, tuple(ids)))
    pools = {state.capacity.node_pool[n] for n, _ in nodes}
    if len(pools) != 1 or sum(len(ids) for _, ids in nodes) != spec.gpus:
        raise ValueError(f"job {spec.id!r}: placement must hold its {spec.gpus} accelerators in one pool")
    pool = pools.pop()
    # a fraction is cut again on its node (the GPU it had there, when that is the one free)
    cut = state.fractions.take(spec, spec.id, pool, [n for n, _ in nodes])
    if cut is not None:
        j = state.new_job(spec, project, cands or (pool,), spec.rank)
        j.attempt, j.run_ms, j.attained = attempt, run_ms, attained
        state.hold(j, pool, cut, start_ms)
        return
    trial = state.trial()
    try:
        for n, ids in nodes:
            trial.retake(((n, ids),))
    except AssertionError as e:
        trial.rollback()
        raise ValueError(f"job {spec.id!r}: {e}") from None
    trial.commit()
    j = state.new_job(spec, project, cands or (pool,), spec.rank)
    j.attempt, j.run_ms, j.attained = attempt, run_ms, attained
    state.hold(j, pool, tuple(nodes), start_ms)


def restore_usage(
    state: PoolState, project: str, model: str, gpus: int, at_ms: int, rate: float | None = None
) -> None:
    """Replay one change of held accelerators (``gpus`` < 0 to release) into the ledger.

    ``rate``: what the change adds to usage per ms when usage is effective (the start's
    ``PoolState.usage_rate``, negated at the stop); None: raw, ``gpus``.

    For fair-share history after a restart: call in time order, interleaved with
    ``restore_running``, since the ledger is closed-form in time and must see every
    change in the order it happened.
    """
    idx = state.tenancy.resolve(project)
    if idx is None:
        raise ValueError(f"unknown project {project!r}")
    state.ledger.change(idx, model, gpus, at_ms, rate)
    state.held_changed(idx)
