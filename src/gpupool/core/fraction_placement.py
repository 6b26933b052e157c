"""Placing fractions of accelerators (MIG instances, shares) and whole-GPU gangs, per GPU.

This module owns ``FractionRequest`` (what one job asks: ``count`` x a MIG profile, a share,
or whole GPUs), ``GpuCell`` (the state of one accelerator: idle, shared, MIG-partitioned or
held whole), ``FractionState`` (every cell of a fleet, with grants and their release), the
fragmentation measure, and the four placers compared by the twin:

| placer          | chooses                                                             |
|-----------------|---------------------------------------------------------------------|
| ``best-fit``    | the node with the least free capacity that fits, then its tightest GPU |
| ``worst-fit``   | the node with the most free capacity, then its emptiest GPU          |
| ``packing``     | a GPU already in use before an idle one, then the fullest node      |
| ``frag-aware``  | the option that adds the least fragmentation (below), ties by packing |

Fragmentation, after "fragmentation gradient descent" (Weng et al., "Beware of
Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
USENIX ATC'23): given a target workload (task kinds with their popularity), the
fragmentation of a node is the expected free GPU capacity on it that a task drawn from the
workload could *not* use; the placer takes the option whose fragmentation grows least.

Rules every placer keeps, because the hardware or the gangs need them:

* a MIG instance starts only at a valid start of its profile on a free run of slices
  (``gpupool.core.mig``), on a node whose rule allows MIG; a fixed layout's instances are
  used as they are;
* a share never oversubscribes a GPU's compute or memory (``gpupool.core.gpu_share``) and
  lands only on a node whose rule allows sharing;
* a whole-GPU job takes idle GPUs only: never a GPU that holds a share or an instance, and
  never one of a fixed MIG layout.

Pure and deterministic: options are visited in fleet index order and ties broken by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

from gpupool.core.fleet import Fleet
from gpupool.core.gpu_share import SharedGpu, ShareNeed, ShareRequest
from gpupool.core.mig import MigGeometry, MigInstance
from gpupool.core.node_fractions import WHOLE_ONLY, MigMode, NodeFractions


class RequestKind(Enum):
    WHOLE = "whole"
    MIG = "mig"
    SHARE = "share"


class Placer(Enum):
    BEST_FIT = "best-fit"
    WORST_FIT = "worst-fit"
    PACKING = "packing"
    FRAG_AWARE = "frag-aware"


class CellMode(Enum):
    """What a GPU is now: ``IDLE`` (whole and free), ``WHOLE`` (held by one job),
    ``SHARED`` (held in shares) or ``MIG`` (partitioned into instances)."""

    IDLE = "idle"
    WHOLE = "whole"
    SHARED = "shared"
    MIG = "mig"


@dataclass(frozen=True, slots=True)
class FractionRequest:
    """One job's ask: ``gpus`` whole GPUs on one node, ``count`` x ``profile``, or a share."""

    kind: RequestKind
    gpus: int = 0
    profile: str = ""
    count: int = 1
    share: ShareRequest = field(default_factory=ShareRequest)

    @staticmethod
    def whole(gpus: int) -> FractionRequest:
        return FractionRequest(RequestKind.WHOLE, gpus=gpus)

    @staticmethod
    def mig(profile: str, count: int = 1) -> FractionRequest:
        return FractionRequest(RequestKind.MIG, profile=profile, count=count)

    @staticmethod
    def shared(fraction: float = 0.0, memory_gib: float = 0.0) -> FractionRequest:
        return FractionRequest(RequestKind.SHARE, share=ShareRequest(fraction, memory_gib))

    def label(self) -> str:
        if self.kind is RequestKind.WHOLE:
            return f"{self.gpus} GPU"
        if self.kind is RequestKind.MIG:
            return f"{self.count}x{self.profile}"
        s = self.share
        return "share " + " ".join(
            x
            for x in (
                f"{s.gpu_fraction:g}" if s.gpu_fraction else "",
                f"{s.gpu_memory_gib:g}GiB" if s.gpu_memory_gib else "",
            )
            if x
        )


@dataclass(slots=True)
class GpuCell:
    """One accelerator: its rule, its geometry and what holds it."""

    node: int
    index: int
    memory_gib: float
    rule: NodeFractions
    geometry: MigGeometry | None
    mode: CellMode = CellMode.IDLE
    holder: str = ""
    share: SharedGpu | None = None
    #: MIG: instances that exist (start -> instance) and who holds each ("" = free)
    instances: dict[int, MigInstance] = field(default_factory=dict)
    held: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule.mig is MigMode.FIXED and self.geometry is not None:
            self.mode = CellMode.MIG
            self.instances = {i.start: i for i in self.rule.layout}
            self.held = {i.start: "" for i in self.rule.layout}

    @property
    def fixed(self) -> bool:
        return self.rule.mig is MigMode.FIXED

    def used_mask(self) -> tuple[int, int]:
        """Memory-slice mask and compute slices of the instances that exist."""
        geo = self.geometry
        assert geo is not None
        mask = compute = 0
        for inst in self.instances.values():
            mask |= geo.mask(inst)
            compute += geo.profiles[inst.profile].compute
        return mask, compute

    def free_capacity(self) -> Fraction:
        """The share of this GPU nobody holds (1 for an idle one)."""
        if self.mode is CellMode.IDLE:
            return Fraction(1)
        if self.mode is CellMode.WHOLE:
            return Fraction(0)
        if self.mode is CellMode.SHARED:
            assert self.share is not None
            return Fraction(self.share.free_share).limit_denominator(1_000_000)
        geo = self.geometry
        assert geo is not None
        taken = sum(geo.profiles[self.instances[s].profile].compute for s, h in self.held.items() if h)
        if self.fixed:
            return Fraction(
                sum(geo.profiles[i.profile].compute for i in self.instances.values()) - taken,
                geo.compute_slices,
            )
        return Fraction(geo.compute_slices - taken, geo.compute_slices)


@dataclass(frozen=True, slots=True)
class Piece:
    """One part of a grant: on (``node``, ``gpu``), the whole GPU, a MIG instance, or a share."""

    node: int
    gpu: int
    instance: MigInstance | None = None
    share: ShareNeed | None = None
    #: the instance was created for this grant (dynamic MIG): destroyed when released
    created: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    """What a job holds, and the share of an accelerator-hour it is charged per hour."""

    job: str
    pieces: tuple[Piece, ...]
    charged: float


@dataclass(frozen=True, slots=True)
class _Option:
    """One way to place one unit of a request: a cell, and a start for MIG."""

    node: int
    gpu: int
    start: int = -1


#: a target workload for the fragmentation measure: (request, popularity), popularity > 0
Workload = Sequence[tuple[FractionRequest, float]]


class FractionState:
    """Every accelerator of a fleet as a cell; grants placed by a placer, and released."""

    def __init__(
        self,
        fleet: Fleet,
        rules: Mapping[int, NodeFractions] | None = None,
        workload: Workload = (),
        opens: Callable[[int, int], bool] | None = None,
    ) -> None:
        self.fleet = fleet
        #: may an idle cell (node, gpu) be opened? (the live scheduler: only while its
        #: ``Capacity`` says the GPU is free, so a GPU a whole-GPU job holds is never shared)
        self.opens = opens
        #: the nodes the placement in progress may use (None: every node)
        self._scope: Sequence[int] | None = None
        rules = rules if rules is not None else fleet.fractions
        self.cells: list[list[GpuCell]] = []
        for nd in fleet.nodes:
            model = fleet.catalogue[nd.model]
            rule = rules.get(nd.index, WHOLE_ONLY)
            self.cells.append(
                [GpuCell(nd.index, g, float(model.memory_gib), rule, model.mig) for g in range(nd.gpus)]
            )
        self.grants: dict[str, Grant] = {}
        total = sum(w for _, w in workload)
        self.workload = [(r, w / total) for r, w in workload] if total > 0 else []

    # -- totals and measures -------------------------------------------------------------

    @property
    def total_gpus(self) -> int:
        return sum(len(c) for c in self.cells)

    def allocated(self) -> float:
        """Accelerators held, counting each grant by the share it is charged."""
        return sum(g.charged for g in self.grants.values())

    def idle_gpus(self, node: int) -> int:
        return sum(1 for c in self.cells[node] if self._is_idle(c))

    def _is_idle(self, c: GpuCell) -> bool:
        """Idle and free to open (not a fixed layout, not held outside this state)."""
        if c.mode is not CellMode.IDLE or c.fixed:
            return False
        return self.opens is None or self.opens(c.node, c.index)

    def stranded(self) -> float:
        """GPUs stranded by fragmentation: free capacity that lies on GPUs a job already
        holds part of (a share or an instance), so no whole-GPU job can use it."""
        return float(
            sum(
                c.free_capacity()
                for cells in self.cells
                for c in cells
                if c.mode in (CellMode.SHARED, CellMode.MIG)
            )
        )

    def fragmentation(self) -> float:
        """The fleet's fragmentation against the target workload (sum over nodes)."""
        return sum(self._node_frag(n) for n in range(len(self.cells)))

    # -- placing -------------------------------------------------------------------------

    def place(
        self, job: str, req: FractionRequest, placer: Placer, nodes: Sequence[int] | None = None
    ) -> Grant | None:
        """Place ``req`` for ``job`` with ``placer`` (on ``nodes`` only, when given); None
        (and no change) when it fits nowhere."""
        if job in self.grants:
            raise ValueError(f"{job} already holds a grant")
        self._scope = nodes
        try:
            return self._place(job, req, placer)
        finally:
            self._scope = None

    def _place(self, job: str, req: FractionRequest, placer: Placer) -> Grant | None:
        if req.kind is RequestKind.WHOLE:
            return self._place_whole(job, req, placer)
        units = req.count if req.kind is RequestKind.MIG else 1
        tried: set[int] = set()
        while True:
            opts = [o for o in self._options(req) if o.node not in tried]
            if not opts:
                return None
            first = self._choose(req, opts, placer)
            pieces = [self._apply(job, req, first)]
            ok = True
            for _ in range(units - 1):
                more = [o for o in self._options(req) if o.node == first.node]
                if not more:
                    ok = False
                    break
                pieces.append(self._apply(job, req, self._choose(req, more, placer)))
            if ok:
                grant = Grant(job, tuple(pieces), self._charge(req, pieces))
                self.grants[job] = grant
                return grant
            for p in reversed(pieces):
                self._undo(job, p)
            tried.add(first.node)

    def release(self, job: str) -> Grant:
        """Give back everything ``job`` holds (KeyError if it holds nothing)."""
        grant = self.grants.pop(job)
        for p in reversed(grant.pieces):
            self._undo(job, p)
        return grant

    # -- whole GPUs ----------------------------------------------------------------------

    def _place_whole(self, job: str, req: FractionRequest, placer: Placer) -> Grant | None:
        best: tuple[tuple[float, ...], int] | None = None
        for n, cells in enumerate(self.cells):
            idle = self.idle_gpus(n)
            if idle < req.gpus:
                continue
            free = float(sum(c.free_capacity() for c in cells))
            if placer is Placer.WORST_FIT:
                key: tuple[float, ...] = (-idle, -free)
            elif placer is Placer.FRAG_AWARE:
                key = (self._whole_delta(n, req.gpus), idle, free)
            else:  # best fit and packing: the node with the fewest idle GPUs that holds it
                key = (idle, free)
            if best is None or key < best[0]:
                best = (key, n)
        if best is None:
            return None
        n = best[1]
        pieces: list[Piece] = []
        for c in self.cells[n]:
            if len(pieces) == req.gpus:
                break
            if self._is_idle(c):
                c.mode, c.holder = CellMode.WHOLE, job
                pieces.append(Piece(n, c.index))
        grant = Grant(job, tuple(pieces), float(req.gpus))
        self.grants[job] = grant
        return grant

    def _whole_delta(self, n: int, gpus: int) -> float:
        before = self._node_frag(n)
        taken: list[GpuCell] = []
        for c in self.cells[n]:
            if len(taken) == gpus:
                break
            if self._is_idle(c):
                c.mode = CellMode.WHOLE
                taken.append(c)
        after = self._node_frag(n)
        for c in taken:
            c.mode = CellMode.IDLE
        return after - before

    # -- options -------------------------------------------------------------------------

    def _options(self, req: FractionRequest) -> Iterable[_Option]:
        """Every distinct way to place one unit: idle GPUs of a node are alike, so only the
        first idle one of each node is offered."""
        scope = range(len(self.cells)) if self._scope is None else self._scope
        for n in scope:
            cells = self.cells[n]
            idle_seen = False
            for c in cells:
                if c.mode is CellMode.IDLE and (idle_seen or not self._open_ok(c)):
                    continue
                if req.kind is RequestKind.SHARE:
                    if not c.rule.shared or c.mode not in (CellMode.IDLE, CellMode.SHARED):
                        continue
                    need = self._need(c, req)
                    if need is None:
                        continue
                    if c.mode is CellMode.SHARED:
                        assert c.share is not None
                        if not c.share.fits(need):
                            continue
                    else:
                        idle_seen = True
                    yield _Option(n, c.index)
                else:
                    for s in self._mig_starts(c, req.profile):
                        if c.mode is CellMode.IDLE:
                            idle_seen = True
                        yield _Option(n, c.index, s)

    def _open_ok(self, c: GpuCell) -> bool:
        """An idle cell (not of a fixed layout) may be opened only where ``opens`` allows."""
        return c.mode is not CellMode.IDLE or c.fixed or self.opens is None or self.opens(c.node, c.index)

    @staticmethod
    def _need(c: GpuCell, req: FractionRequest) -> ShareNeed | None:
        try:
            return req.share.need(c.memory_gib)
        except ValueError:
            return None

    @staticmethod
    def _mig_starts(c: GpuCell, profile: str) -> list[int]:
        geo = c.geometry
        if geo is None or profile not in geo.profiles or c.rule.mig is MigMode.NONE:
            return []
        if c.fixed:
            return [s for s, i in c.instances.items() if i.profile == profile and not c.held[s]]
        if c.mode is CellMode.IDLE:
            return geo.free_starts(profile, 0, 0)
        if c.mode is not CellMode.MIG:
            return []
        mask, compute = c.used_mask()
        return geo.free_starts(profile, mask, compute)

    # -- choosing ------------------------------------------------------------------------

    def _choose(self, req: FractionRequest, opts: Sequence[_Option], placer: Placer) -> _Option:
        node_free = {o.node: float(sum(c.free_capacity() for c in self.cells[o.node])) for o in opts}
        key: Callable[[_Option], tuple[float, ...]]
        if placer is Placer.BEST_FIT:

            def key(o: _Option) -> tuple[float, ...]:
                return (
                    node_free[o.node],
                    float(self.cells[o.node][o.gpu].free_capacity()),
                    o.node,
                    o.gpu,
                    o.start,
                )

        elif placer is Placer.WORST_FIT:

            def key(o: _Option) -> tuple[float, ...]:
                return (
                    -node_free[o.node],
                    -float(self.cells[o.node][o.gpu].free_capacity()),
                    o.node,
                    o.gpu,
                    o.start,
                )

        elif placer is Placer.PACKING:

            def key(o: _Option) -> tuple[float, ...]:
                c = self.cells[o.node][o.gpu]
                return (
                    c.mode is CellMode.IDLE,
                    float(c.free_capacity()),
                    node_free[o.node],
                    o.node,
                    o.gpu,
                    o.start,
                )

        else:

            def key(o: _Option) -> tuple[float, ...]:
                c = self.cells[o.node][o.gpu]
                delta = self._trial_delta(req, o)
                return (
                    round(delta, 9),
                    c.mode is CellMode.IDLE,
                    float(c.free_capacity()),
                    node_free[o.node],
                    o.node,
                    o.gpu,
                    o.start,
                )

        return min(opts, key=key)

    def _trial_delta(self, req: FractionRequest, o: _Option) -> float:
        """How much node ``o.node``'s fragmentation grows if one unit of ``req`` goes to ``o``.

        Only the chosen GPU changes, and the node's idle count when that GPU was idle: the
        other idle GPUs then become lost to whole-GPU tasks of more than the new count."""
        c = self.cells[o.node][o.gpu]
        idle = self.idle_gpus(o.node)
        was_idle = self._is_idle(c)
        before = self._gpu_term(c, float(c.free_capacity()), idle)
        piece = self._apply("\x00trial", req, o)
        try:
            after_idle = idle - 1 if was_idle else idle
            after = self._gpu_term(c, float(c.free_capacity()), after_idle)
        finally:
            self._undo("\x00trial", piece)
        delta = after - before
        if was_idle:
            # the other idle GPUs of the node: lost to whole tasks of k in (idle - 1, idle]
            for r, p in self.workload:
                if r.kind is RequestKind.WHOLE and after_idle < r.gpus <= idle:
                    delta += p * (idle - 1)
        return delta

    # -- the fragmentation measure -------------------------------------------------------

    def _node_frag(self, n: int) -> float:
        """Expected free capacity on node ``n`` that a task of the target workload cannot use."""
        if not self.workload:
            return 0.0
        idle = self.idle_gpus(n)
        return sum(
            self._gpu_term(c, float(c.free_capacity()) if self._open_ok(c) else 0.0, idle)
            for c in self.cells[n]
        )

    def _gpu_term(self, c: GpuCell, free: float, idle: int) -> float:
        """One GPU's part of its node's fragmentation, the node having ``idle`` idle GPUs."""
        if free <= 0:
            return 0.0
        out = 0.0
        for req, p in self.workload:
            if req.kind is RequestKind.WHOLE:
                lost = not self._is_idle(c) or idle < req.gpus
            elif req.kind is RequestKind.MIG:
                lost = not self._mig_starts(c, req.profile)
            else:
                usable = c.rule.shared and c.mode in (CellMode.IDLE, CellMode.SHARED)
                if usable:
                    need = self._need(c, req)
                    usable = need is not None and (c.share is None or c.share.fits(need))
                lost = not usable
            if lost:
                out += p * free
        return out

    # -- applying ------------------------------------------------------------------------

    def _apply(self, job: str, req: FractionRequest, o: _Option) -> Piece:
        c = self.cells[o.node][o.gpu]
        if req.kind is RequestKind.SHARE:
            need = self._need(c, req)
            assert need is not None
            if c.mode is CellMode.IDLE:
                c.mode, c.share = CellMode.SHARED, SharedGpu(round(c.memory_gib * 1024))
            assert c.share is not None
            c.share.take(job, need)
            return Piece(o.node, o.gpu, share=need)
        geo = c.geometry
        assert geo is not None
        if c.fixed:
            inst = c.instances[o.start]
            if c.held[o.start]:
                raise ValueError(f"instance {inst.profile}@{o.start} is held")
            c.held[o.start] = job
            return Piece(o.node, o.gpu, instance=inst)
        inst = MigInstance(req.profile, o.start)
        geo.check([*c.instances.values(), inst])  # never a layout the hardware refuses
        c.mode = CellMode.MIG
        c.instances[o.start] = inst
        c.held[o.start] = job
        return Piece(o.node, o.gpu, instance=inst, created=True)

    def _undo(self, job: str, p: Piece) -> None:
        c = self.cells[p.node][p.gpu]
        if p.share is not None:
            assert c.share is not None
            c.share.give_back(job)
            if c.share.idle:
                c.mode, c.share = CellMode.IDLE, None
        elif p.instance is not None:
            c.held[p.instance.start] = ""
            if p.created:
                del c.instances[p.instance.start]
                del c.held[p.instance.start]
                if not c.instances:
                    c.mode = CellMode.IDLE
        else:
            c.mode, c.holder = CellMode.IDLE, ""

    def _charge(self, req: FractionRequest, pieces: Sequence[Piece]) -> float:
        if req.kind is RequestKind.SHARE:
            return sum(p.share.charged for p in pieces if p.share is not None)
        total = 0.0
        for p in pieces:
            geo = self.cells[p.node][p.gpu].geometry
            assert geo is not None and p.instance is not None
            total += float(geo.fraction(p.instance.profile))
        return total

    # -- checking ------------------------------------------------------------------------

    def validate(self) -> None:
        """AssertionError unless no GPU is oversubscribed and the grants match the cells."""
        for cells in self.cells:
            for c in cells:
                if c.share is not None:
                    assert c.mode is CellMode.SHARED, "a share on a GPU that is not shared"
                    assert c.share.compute_used <= 1_000_000, (
                        f"GPU {c.node}/{c.index}: compute oversubscribed"
                    )
                    assert c.share.memory_used <= c.share.memory_mib, (
                        f"GPU {c.node}/{c.index}: memory oversubscribed"
                    )
                    assert sum(h.compute for h in c.share.holders.values()) == c.share.compute_used
                if c.mode is CellMode.MIG:
                    assert c.geometry is not None
                    c.geometry.check(list(c.instances.values()))
                    assert set(c.held) == set(c.instances)
        held: dict[tuple[int, int], int] = {}
        for g in self.grants.values():
            for p in g.pieces:
                c = self.cells[p.node][p.gpu]
                if p.share is not None:
                    assert c.share is not None and g.job in c.share.holders
                elif p.instance is not None:
                    assert c.held.get(p.instance.start) == g.job, "a grant's instance is not held by it"
                else:
                    assert c.mode is CellMode.WHOLE and c.holder == g.job
                    held[(p.node, p.gpu)] = held.get((p.node, p.gpu), 0) + 1
        assert all(v == 1 for v in held.values()), "a whole GPU granted twice"
