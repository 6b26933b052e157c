"""The live scheduler's fractions: which GPUs of the capacity are cut, and who holds each cut.

This module owns ``PoolFractions``, the part of a ``PoolState`` through which a fractional
job (a MIG instance or a share of a GPU: ``gpupool.core.fraction_spec``) starts and stops,
and ``FractionPlacement``, the placement such a job holds.

Rules, and why:

* ``Capacity`` stays the truth for whole GPUs. A GPU this part opens (its first share or
  instance) is taken from the capacity, and given back when its last share or instance
  leaves, so a whole-GPU job or a gang only ever sees idle whole GPUs: a partly used GPU is
  not free to it. A GPU of a fixed MIG layout is the fraction layer's from the start.
* The cuts are placed by a ``FractionState`` (``gpupool.core.fraction_placement``) with the
  fragmentation-aware placer by default: a share packs onto an already shared GPU, a MIG
  instance onto a partitioned one, before an idle GPU is opened; only idle GPUs the capacity
  says are free and on schedulable nodes may be opened.
* A fractional job is charged its grant's share of an accelerator-hour (1g.10gb of an H100:
  1/7; a share: max(fraction, memory share)); it still counts as one held GPU for borrowing
  limits and guarantees (conservative: those are whole-GPU promises).
* On a node whose rule allows neither sharing nor MIG, a fractional job holds one whole GPU
  as before (the caller's capacity plan), and is charged one.

Jobs without a fraction never reach this module, so whole-GPU decisions do not change.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpupool.core.capacity import Capacity, Placement
from gpupool.core.fleet import Fleet
from gpupool.core.fraction_placement import (
    CellMode,
    FractionRequest,
    FractionState,
    Grant,
    Placer,
    Workload,
)
from gpupool.core.fraction_spec import FractionAsk
from gpupool.core.node_fractions import MigMode

#: the target workload the fragmentation measure is computed against when none is given:
#: whole gangs of 1, 2, 4 and 8 GPUs and quarter / half shares (what the pool keeps room for)
DEFAULT_TARGET: Workload = (
    (FractionRequest.whole(8), 2.0),
    (FractionRequest.whole(4), 1.0),
    (FractionRequest.whole(2), 1.0),
    (FractionRequest.whole(1), 2.0),
    (FractionRequest.shared(0.5), 1.0),
    (FractionRequest.shared(0.25), 1.0),
)


class FractionPlacement(tuple[tuple[int, tuple[int, ...]], ...]):
    """The (node, GPU ids) a fractional job has a cut of: the capacity holds those GPUs for
    the fraction layer, not for this job, so a trial never frees them with the job."""

    __slots__ = ()


def request_of(spec: FractionAsk) -> FractionRequest | None:
    """The fraction a spec asks (None for a whole-GPU job)."""
    if spec.mig:
        return FractionRequest.mig(spec.mig, spec.mig_count)
    if spec.gpu_fraction > 0 or spec.gpu_memory_gib > 0:
        return FractionRequest.shared(spec.gpu_fraction, spec.gpu_memory_gib)
    return None


class PoolFractions:
    """The cut GPUs of a capacity and the grants on them (see the module docstring)."""

    def __init__(
        self,
        fleet: Fleet,
        capacity: Capacity,
        placer: Placer = Placer.FRAG_AWARE,
        target: Workload = DEFAULT_TARGET,
    ) -> None:
        self.fleet = fleet
        self.capacity = capacity
        self.placer = placer
        self._target = target
        self._state: FractionState | None = None
        #: may the placement in progress open an idle GPU (``take(open_new=...)``)
        self._may_open = True
        #: (node, gpu) taken from the capacity by this layer (opened cells, fixed layouts)
        self.owned: set[tuple[int, int]] = set()
        #: per running job id: its grant
        self.grants: dict[str, Grant] = {}
        #: per pool: its nodes whose rule allows a cut (sharing or MIG) the model can give;
        #: a pool with none never builds the fraction state (fractions there hold whole GPUs)
        self.cuttable: list[list[int]] = [[] for _ in capacity.pools]
        for node, rule in sorted(fleet.fractions.items()):
            model = fleet.catalogue[fleet.nodes[node].model]
            if (rule.shared and model.sharing) or (rule.mig is not MigMode.NONE and model.mig is not None):
                self.cuttable[capacity.node_pool[node]].append(node)
            if rule.mig is MigMode.FIXED and fleet.catalogue[fleet.nodes[node].model].mig is not None:
                ids = tuple(range(fleet.nodes[node].gpus))
                capacity.take(node, ids)
                self.owned.update((node, g) for g in ids)

    @property
    def state(self) -> FractionState:
        """The per-GPU state, made at the first fractional job (a whole-GPU fleet pays nothing)."""
        if self._state is None:
            self._state = FractionState(self.fleet, workload=self._target, opens=self._opens)
        return self._state

    def _opens(self, node: int, gpu: int) -> bool:
        cap = self.capacity
        return self._may_open and cap.schedulable[node] and bool(cap.mask[node] >> gpu & 1)

    def take(
        self,
        spec: FractionAsk,
        job_id: str,
        pool: int,
        nodes: Sequence[int] | None = None,
        open_new: bool = True,
    ) -> Placement | None:
        """Place ``spec``'s fraction in ``pool`` (on ``nodes`` only, when given); the
        ``FractionPlacement`` taken, or None (nothing changed) when it fits nowhere.

        ``open_new`` False: only onto a GPU already cut (it takes nothing from the capacity,
        so an EASY reservation's count of free GPUs stays true)."""
        req = request_of(spec)
        if req is None:
            return None
        cuttable = self.cuttable[pool]
        if not cuttable:
            return None
        cap = self.capacity
        if nodes is not None:
            wanted = set(nodes)
            cuttable = [n for n in cuttable if n in wanted]
        scope = [n for n in cuttable if cap.schedulable[n]]
        if not scope:
            return None
        self._may_open = open_new
        try:
            grant = self.state.place(job_id, req, self.placer, scope)
        finally:
            self._may_open = True
        if grant is None:
            return None
        self.grants[job_id] = grant
        per_node: dict[int, list[int]] = {}
        for p in grant.pieces:
            if (p.node, p.gpu) not in self.owned:
                cap.take(p.node, (p.gpu,))
                self.owned.add((p.node, p.gpu))
            ids = per_node.setdefault(p.node, [])
            if p.gpu not in ids:
                ids.append(p.gpu)
        return FractionPlacement((n, tuple(sorted(ids))) for n, ids in per_node.items())

    def charged(self, job_id: str) -> float | None:
        """The share of an accelerator-hour a running fractional job is charged (None: not one)."""
        g = self.grants.get(job_id)
        return None if g is None else g.charged

    def release(self, job_id: str) -> Grant:
        """Free exactly ``job_id``'s grant; a GPU left with no share or instance goes back to
        the capacity (unless it carries a fixed layout)."""
        self.grants.pop(job_id)
        state = self.state
        grant = state.release(job_id)
        for p in grant.pieces:
            c = state.cells[p.node][p.gpu]
            if (p.node, p.gpu) in self.owned and not c.fixed and c.mode is CellMode.IDLE:
                self.capacity.release(p.node, (p.gpu,))
                self.owned.discard((p.node, p.gpu))
        return grant

    def validate(self) -> None:
        """AssertionError unless no GPU is oversubscribed, the grants match the cells, and the
        capacity holds exactly the GPUs this layer uses."""
        if self._state is None:
            return
        state = self._state
        state.validate()
        assert set(state.grants) == set(self.grants), "the live grants and the cells disagree"
        for cells in state.cells:
            for c in cells:
                used = c.fixed or c.mode is not CellMode.IDLE
                key = (c.node, c.index)
                if used:
                    assert key in self.owned, f"GPU {key} is cut but not taken from the capacity"
                    assert not self.capacity.mask[c.node] >> c.index & 1, f"GPU {key} is cut and free"
