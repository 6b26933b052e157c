"""Tenancy: the tree sector > organisation > project, with users as members of projects.

This module owns ``TenantNode`` and ``Tenancy`` (the validated tree) and the entitlement
figures derived from it. Each tree node may carry a fair-share weight, a guaranteed quota
per accelerator model ("*" = any model), a borrowing limit above its guarantee, a GPU-hour
budget for a period and a cluster affinity. Usage accounting lives in
``gpupool.core.fairshare``; file formats in ``gpupool.fleetfile``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

ANY_MODEL = "*"
KINDS = ("sector", "organisation", "project")
#: every priority class, most urgent first (the order of ``gpupool.core.job.PRIORITY_CLASSES``)
CLASSES = ("reserved", "high", "normal", "low", "preemptible")
#: the classes a tenant allows when nobody above it granted more: ``reserved`` and ``high``
#: preempt others, so they are a right granted from above (as Slurm's QOS per association)
DEFAULT_CLASSES = ("normal", "low", "preemptible")


class TenancyError(ValueError):
    """A tenant tree that contradicts itself; the message names the tenant and field."""


@dataclass(frozen=True, slots=True)
class TenantNode:
    """One node of the tenant tree. ``path`` is its unique key, e.g. ``academia/snu/vision``."""

    index: int
    path: str
    name: str
    kind: str
    parent: int
    weight: float = 1.0
    guaranteed: Mapping[str, int] = field(default_factory=dict)
    borrow_limit: Mapping[str, int] | None = None
    budget_gpu_hours: float | None = None
    over_budget: str = "preemptible"
    clusters: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    sector: str = ""
    #: priority classes its members may use; None: its parent's (``DEFAULT_CLASSES`` at the top)
    allowed_classes: tuple[str, ...] | None = None


class Tenancy:
    """A validated tenant tree. Leaves are projects; jobs belong to projects."""

    def __init__(self, name: str, nodes: Sequence[TenantNode]) -> None:
        self.name = name
        self.nodes = list(nodes)
        self.by_path = {n.path: n.index for n in self.nodes}
        children: dict[int, list[int]] = {}
        for n in self.nodes:
            children.setdefault(n.parent, []).append(n.index)
        self.children = children
        self.projects = [n.index for n in self.nodes if n.index not in children]
        by_leaf: dict[str, list[int]] = {}
        for i in self.projects:
            by_leaf.setdefault(self.nodes[i].path.rsplit("/", 1)[-1], []).append(i)
        self._by_leaf = by_leaf
        self._ancestors = [self._path_to_root(i) for i in range(len(self.nodes))]

    def _path_to_root(self, i: int) -> tuple[int, ...]:
        chain = []
        while i >= 0:
            chain.append(i)
            i = self.nodes[i].parent
        return tuple(reversed(chain))

    def ancestors(self, index: int) -> tuple[int, ...]:
        """Indices from the root down to ``index`` (inclusive)."""
        return self._ancestors[index]

    def resolve(self, name: str) -> int | None:
        """A project by full path or by unique leaf name; None if unknown or ambiguous."""
        idx = self.by_path.get(name)
        if idx is not None:
            return idx if idx in self.projects_set else None
        leaf = self._by_leaf.get(name, [])
        return leaf[0] if len(leaf) == 1 else None

    @property
    def projects_set(self) -> frozenset[int]:
        return frozenset(self.projects)

    def allowed_classes(self, index: int) -> frozenset[str]:
        """The priority classes members of this tenant may use (inherited down the tree)."""
        allowed = frozenset(DEFAULT_CLASSES)
        for i in self._ancestors[index]:
            own = self.nodes[i].allowed_classes
            if own is not None:
                allowed = frozenset(own)
        return allowed

    def sector_of(self, index: int) -> str:
        root = self._ancestors[index][0]
        return self.nodes[root].path

    def entitlement(self, total_gpus: int) -> dict[str, float]:
        """Each project's entitled share of the pool, in [0, 1].

        A project's share is its guaranteed GPUs over the pool where guarantees exist; the
        pool left unguaranteed is split by fair-share weight down the tree (how a fair-share
        scheduler would divide it under full contention).
        """
        shares: dict[str, float] = {}
        if total_gpus <= 0:
            return shares
        guaranteed_total = 0
        guar: dict[int, int] = {}
        for p in self.projects:
            g = sum(self.nodes[p].guaranteed.values())
            guar[p] = g
            guaranteed_total += g
        free_share = max(0.0, 1.0 - guaranteed_total / total_gpus)
        weight_share = self._weight_shares()
        for p in self.projects:
            shares[self.nodes[p].path] = guar[p] / total_gpus + free_share * weight_share[p]
        return shares

    def _weight_shares(self) -> dict[int, float]:
        out: dict[int, float] = {}

        def walk(parent: int, share: float) -> None:
            kids = self.children.get(parent, [])
            total = sum(self.nodes[k].weight for k in kids)
            for k in kids:
                s = share * (self.nodes[k].weight / total if total > 0 else 1.0 / len(kids))
                if k in self.children:
                    walk(k, s)
                else:
                    out[k] = s

        walk(-1, 1.0)
        return out


class TenancyBuilder:
    """Builds a ``Tenancy`` from nested definitions, rejecting contradictions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: list[TenantNode] = []
        self._paths: set[str] = set()

    def add(
        self,
        parent: int,
        key: str,
        *,
        name: str = "",
        kind: str = "",
        weight: float = 1.0,
        guaranteed: Mapping[str, int] | None = None,
        borrow_limit: Mapping[str, int] | None = None,
        budget_gpu_hours: float | None = None,
        over_budget: str = "preemptible",
        clusters: Sequence[str] = (),
        members: Sequence[str] = (),
        allowed_classes: Sequence[str] | None = None,
    ) -> int:
        if not key or "/" in key:
            raise TenancyError(f"tenant key {key!r} must be non-empty and contain no '/'")
        path = key if parent < 0 else f"{self._nodes[parent].path}/{key}"
        if path in self._paths:
            raise TenancyError(f"tenant {path!r} is defined twice")
        if not weight > 0:
            raise TenancyError(f"tenant {path!r}: weight must be > 0, got {weight}")
        for m, g in (guaranteed or {}).items():
            if g < 0:
                raise TenancyError(f"tenant {path!r}: guaranteed[{m!r}] must be >= 0, got {g}")
        for m, g in (borrow_limit or {}).items():
            if g < 0:
                raise TenancyError(f"tenant {path!r}: borrow_limit[{m!r}] must be >= 0, got {g}")
        if budget_gpu_hours is not None and budget_gpu_hours < 0:
            raise TenancyError(f"tenant {path!r}: budget_gpu_hours must be >= 0")
        if over_budget not in ("preemptible", "reject"):
            raise TenancyError(f"tenant {path!r}: over_budget must be 'preemptible' or 'reject'")
        if allowed_classes is not None:
            unknown = [c for c in allowed_classes if c not in CLASSES]
            if unknown:
                raise TenancyError(
                    f"tenant {path!r}: allowed_classes: unknown class {unknown[0]!r} "
                    f"(known: {', '.join(CLASSES)})"
                )
            # A child may narrow what its parent allows, never widen it.
            if parent >= 0:
                held = self._allowed(parent)
                wider = [c for c in allowed_classes if c not in held]
                if wider:
                    raise TenancyError(
                        f"tenant {path!r}: allowed_classes: {', '.join(wider)} not allowed to its parent "
                        f"{self._nodes[parent].path!r} (which allows {', '.join(sorted(held))})"
                    )
        depth = path.count("/")
        kind = kind or KINDS[min(depth, 2)]
        sector = path.split("/", 1)[0]
        self._paths.add(path)
        idx = len(self._nodes)
        self._nodes.append(
            TenantNode(
                idx,
                path,
                name or key,
                kind,
                parent,
                weight,
                dict(guaranteed or {}),
                None if borrow_limit is None else dict(borrow_limit),
                budget_gpu_hours,
                over_budget,
                tuple(clusters),
                tuple(members),
                sector,
                None if allowed_classes is None else tuple(dict.fromkeys(allowed_classes)),
            )
        )
        return idx

    def _allowed(self, index: int) -> frozenset[str]:
        """The classes a node added so far allows (its own list, else its parent's)."""
        while index >= 0:
            own = self._nodes[index].allowed_classes
            if own is not None:
                return frozenset(own)
            index = self._nodes[index].parent
        return frozenset(DEFAULT_CLASSES)

    def build(self, capacity_by_model: Mapping[str, int] | None = None) -> Tenancy:
        """Validate and build; with ``capacity_by_model`` also check guarantees fit the fleet."""
        if not self._nodes:
            raise TenancyError(f"tenants {self.name!r}: no tenants defined")
        t = Tenancy(self.name, _inherit_clusters(self._nodes))
        # Children's guarantees must fit inside their parent's (when the parent sets one).
        for parent, kids in t.children.items():
            if parent < 0:
                continue
            pg = t.nodes[parent].guaranteed
            for model, g in pg.items():
                s = sum(t.nodes[k].guaranteed.get(model, 0) for k in kids)
                if s > g:
                    raise TenancyError(
                        f"tenant {t.nodes[parent].path!r}: children guarantee {s} {model} "
                        f"but the parent guarantees only {g}"
                    )
        if capacity_by_model is not None:
            total_cap = sum(capacity_by_model.values())
            for model in {m for n in t.nodes for m in n.guaranteed}:
                roots = [t.nodes[r] for r in t.children.get(-1, [])]
                # Sum guarantees at the highest level that states them, per root subtree.
                s = sum(_top_guarantee(t, r.index, model) for r in roots)
                cap = total_cap if model == ANY_MODEL else capacity_by_model.get(model)
                if cap is None:
                    raise TenancyError(f"a guarantee names model {model!r}, which the fleet does not have")
                if s > cap:
                    raise TenancyError(
                        f"guaranteed {model} quotas add up to {s}, above the fleet's capacity of {cap}"
                    )
        return t


def _inherit_clusters(nodes: Sequence[TenantNode]) -> list[TenantNode]:
    """Each node's ``clusters`` made effective: a tenant keeps its parent's affinity.

    A sector confined to the government clusters confines its projects too; a project may
    narrow its parent's clusters, never leave them. Parents come before their children.
    """
    out = list(nodes)
    for i, n in enumerate(out):
        if n.parent < 0 or not out[n.parent].clusters:
            continue
        inherited = out[n.parent].clusters
        if not n.clusters:
            out[i] = replace(n, clusters=inherited)
            continue
        outside = [c for c in n.clusters if c not in inherited]
        if outside:
            raise TenancyError(
                f"tenant {n.path!r}: clusters {', '.join(outside)} are outside its parent "
                f"{out[n.parent].path!r}'s clusters ({', '.join(inherited)})"
            )
    return out


def _top_guarantee(t: Tenancy, i: int, model: str) -> int:
    g = t.nodes[i].guaranteed.get(model)
    if g is not None:
        return g
    return sum(_top_guarantee(t, k, model) for k in t.children.get(i, []))
