"""The scheduler's invariants: what must hold between any two cycles.

This module owns ``validate``, the check behind ``Scheduler.validate`` (the simulator's
``validate`` option and the tests call it after cycles): running jobs hold exactly their
gangs' accelerators, in one pool, none of them twice and none also counted free; every
node's held and free accelerators add up to its size; the ledger's holdings match the
running jobs'; the pending count matches the sub-queues. It reads the pool state
and changes nothing; AssertionError names the first invariant broken.

Part of the pure core, like the scheduler it checks.
"""

from __future__ import annotations

from gpupool.core.fraction_pool import FractionPlacement
from gpupool.core.job_state import RUNNING
from gpupool.core.pool_state import PoolState


def validate(sched: PoolState) -> None:
    """Check the invariants of a pool state; AssertionError names the first one broken."""
    sched.capacity.validate()
    owner: dict[tuple[int, int], str] = {}
    held: dict[int, int] = {}
    for j in sched.running.values():
        if j.status != RUNNING:
            raise AssertionError(f"job {j.spec.id} is in the running set but not running")
        if isinstance(j.placement, FractionPlacement):  # checked by the fraction layer below
            held[j.project] = held.get(j.project, 0) + j.gpus
            continue
        got = sum(len(ids) for _, ids in j.placement)
        if got != j.gpus:
            raise AssertionError(f"gang {j.spec.id} holds {got} of its {j.gpus} accelerators")
        for node, ids in j.placement:
            if sched.capacity.node_pool[node] != j.pool:
                raise AssertionError(f"job {j.spec.id} spans pools")
            for i in ids:
                if (node, i) in owner:
                    raise AssertionError(
                        f"accelerator {i} of node {node} held by {owner[(node, i)]} and {j.spec.id}"
                    )
                owner[(node, i)] = j.spec.id
                if sched.capacity.mask[node] >> i & 1:
                    raise AssertionError(f"accelerator {i} of node {node} is both held and free")
        held[j.project] = held.get(j.project, 0) + j.gpus
    sched.fractions.validate()
    used: dict[int, int] = {}
    for node, _ in [*owner, *sched.fractions.owned]:
        used[node] = used.get(node, 0) + 1
    for n, nd in enumerate(sched.fleet.nodes):
        if used.get(n, 0) + sched.capacity.free[n] != nd.gpus:
            raise AssertionError(f"node {nd.name}: {used.get(n, 0)} held + {sched.capacity.free[n]} free")
    for p in sched.tenancy.projects:
        if sched.ledger.held_all[p] != held.get(p, 0):
            raise AssertionError(
                f"ledger says {sched.tenancy.nodes[p].path} holds "
                f"{sched.ledger.held_all[p]}, running jobs hold {held.get(p, 0)}"
            )
    n_pending = sum(len(q) for q in sched.queues.values())
    if n_pending != sched.pending:
        raise AssertionError(f"pending count {sched.pending} != queued {n_pending}")
