"""The fleet: sites > clusters > network blocks > racks / NVLink domains > nodes > accelerators.

This module owns the immutable description of the hardware (``Fleet``) and its builder,
which checks that a description does not contradict itself. Occupancy (what is free) lives
in ``gpupool.core.capacity``; file formats live in ``gpupool.fleetfile``.

Every node, rack, block and cluster gets a dense integer index so that the capacity index
can keep flat arrays. An NVLink domain is a rack built as one (e.g. a GB200 NVL72 rack);
in an ordinary rack each node is its own NVLink domain (HGX: 8 GPUs on one NVSwitch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from gpupool.core.accelerator import Catalogue
from gpupool.core.mig import MigError
from gpupool.core.node_fractions import MigMode, NodeFractions


class FleetError(ValueError):
    """A fleet description that contradicts itself; the message names the offending item."""


class Level(IntEnum):
    """Topology levels, from tightest to loosest. A gang may require all its workers in one."""

    NODE = 0
    NVLINK = 1
    RACK = 2
    BLOCK = 3
    CLUSTER = 4

    @classmethod
    def parse(cls, text: str) -> Level:
        """Parse a topology requirement: node, nvlink, rack, block, or any (= cluster)."""
        key = text.strip().lower()
        if key in ("any", "cluster"):
            return cls.CLUSTER
        try:
            return cls[key.upper()]
        except KeyError:
            raise ValueError(
                f"unknown topology {text!r} (expected node, nvlink, rack, block or any)"
            ) from None


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    region: str = ""


@dataclass(frozen=True, slots=True)
class Cluster:
    """One scheduling domain, bound to one execution backend."""

    index: int
    name: str
    site: str
    backend: str = "local"
    backend_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Block:
    """A network block (an InfiniBand spine group) inside a cluster."""

    index: int
    name: str
    cluster: int


@dataclass(frozen=True, slots=True)
class Rack:
    """A rack inside a block; ``nvlink`` when the whole rack is one NVLink domain."""

    index: int
    name: str
    cluster: int
    block: int
    nvlink: bool = False


@dataclass(frozen=True, slots=True)
class Node:
    """A node with ``gpus`` accelerators of one ``model``; indexes locate it in the tree."""

    index: int
    name: str
    model: str
    gpus: int
    cluster: int
    block: int
    rack: int
    nvlink: int


class Fleet:
    """An immutable, validated fleet. Build one with ``FleetBuilder``."""

    def __init__(
        self,
        name: str,
        catalogue: Catalogue,
        sites: list[Site],
        clusters: list[Cluster],
        blocks: list[Block],
        racks: list[Rack],
        nodes: list[Node],
        description: str = "",
    ) -> None:
        self.name = name
        self.description = description
        self.catalogue = catalogue
        self.sites = sites
        self.clusters = clusters
        self.blocks = blocks
        self.racks = racks
        self.nodes = nodes
        self.node_by_name = {n.name: n.index for n in nodes}
        self.cluster_by_name = {c.name: c.index for c in clusters}
        self.nvlink_domains = max((n.nvlink for n in nodes), default=-1) + 1
        totals: dict[tuple[int, str], int] = {}
        for n in nodes:
            totals[(n.cluster, n.model)] = totals.get((n.cluster, n.model), 0) + n.gpus
        #: accelerators per (cluster index, model)
        self.gpus_by_pool = totals
        self.total_gpus = sum(totals.values())
        #: per node index, how its GPUs may be cut (``gpupool.core.node_fractions``); a node
        #: not listed is whole-GPU only
        self.fractions: dict[int, NodeFractions] = {}

    def unit_of(self, node: Node, level: Level) -> int:
        """The index of the topology unit at ``level`` that holds ``node``."""
        if level is Level.NODE:
            return node.index
        if level is Level.NVLINK:
            return node.nvlink
        if level is Level.RACK:
            return node.rack
        if level is Level.BLOCK:
            return node.block
        return node.cluster

    def gpus_by_model(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, model), g in self.gpus_by_pool.items():
            out[model] = out.get(model, 0) + g
        return out

    def summary(self) -> dict[str, object]:
        """A JSON-ready summary: totals per site, cluster and model."""
        clusters = []
        for c in self.clusters:
            models = {m: g for (ci, m), g in sorted(self.gpus_by_pool.items()) if ci == c.index}
            nodes = sum(1 for n in self.nodes if n.cluster == c.index)
            clusters.append(
                {
                    "name": c.name,
                    "site": c.site,
                    "backend": c.backend,
                    "nodes": nodes,
                    "blocks": sum(1 for b in self.blocks if b.cluster == c.index),
                    "racks": sum(1 for r in self.racks if r.cluster == c.index),
                    "nvlink_racks": sum(1 for r in self.racks if r.cluster == c.index and r.nvlink),
                    "gpus": sum(models.values()),
                    "models": models,
                }
            )
        sites = []
        for s in self.sites:
            gpus = sum(int(c["gpus"]) for c in clusters if c["site"] == s.name)  # type: ignore[call-overload]
            sites.append({"name": s.name, "region": s.region, "gpus": gpus})
        return {
            "name": self.name,
            "description": self.description,
            "sites": sites,
            "clusters": clusters,
            "nodes": len(self.nodes),
            "gpus": self.total_gpus,
            "models": dict(sorted(self.gpus_by_model().items())),
        }


class FleetBuilder:
    """Builds a ``Fleet`` step by step, rejecting contradictions as they appear."""

    def __init__(self, name: str, catalogue: Catalogue, description: str = "") -> None:
        self.name = name
        self.description = description
        self.catalogue = catalogue
        self._sites: list[Site] = []
        self._clusters: list[Cluster] = []
        self._blocks: list[Block] = []
        self._racks: list[Rack] = []
        self._nodes: list[Node] = []
        self._site_names: set[str] = set()
        self._cluster_names: dict[str, int] = {}
        self._block_names: set[tuple[int, str]] = set()
        self._rack_names: set[tuple[int, str]] = set()
        self._node_names: set[str] = set()
        self._nvlink_next = 0
        self._fractions: dict[int, NodeFractions] = {}

    def add_site(self, name: str, region: str = "") -> None:
        if not name:
            raise FleetError("a site needs a name")
        if name in self._site_names:
            raise FleetError(f"site {name!r} is defined twice")
        self._site_names.add(name)
        self._sites.append(Site(name, region))

    def add_cluster(
        self, name: str, site: str, backend: str = "local", options: Mapping[str, str] | None = None
    ) -> int:
        if site not in self._site_names:
            raise FleetError(f"cluster {name!r} names unknown site {site!r}")
        if name in self._cluster_names:
            raise FleetError(f"cluster {name!r} is defined twice")
        idx = len(self._clusters)
        self._cluster_names[name] = idx
        self._clusters.append(Cluster(idx, name, site, backend, dict(options or {})))
        return idx

    def add_block(self, cluster: int, name: str) -> int:
        if (cluster, name) in self._block_names:
            raise FleetError(f"block {name!r} is defined twice in cluster {self._clusters[cluster].name!r}")
        self._block_names.add((cluster, name))
        idx = len(self._blocks)
        self._blocks.append(Block(idx, name, cluster))
        return idx

    def add_rack(self, block: int, name: str, nvlink: bool = False) -> int:
        cluster = self._blocks[block].cluster
        if (cluster, name) in self._rack_names:
            raise FleetError(f"rack {name!r} is defined twice in cluster {self._clusters[cluster].name!r}")
        self._rack_names.add((cluster, name))
        idx = len(self._racks)
        self._racks.append(Rack(idx, name, cluster, block, nvlink))
        return idx

    def add_nodes(self, rack: int, count: int, model: str, gpus: int, names: list[str]) -> None:
        """Add ``count`` identical nodes to a rack, named by ``names``."""
        if count < 0:
            raise FleetError(f"rack {self._racks[rack].name!r}: node count must be >= 0, got {count}")
        if gpus <= 0:
            raise FleetError(f"rack {self._racks[rack].name!r}: gpus per node must be > 0, got {gpus}")
        if model not in self.catalogue:
            raise FleetError(
                f"rack {self._racks[rack].name!r}: unknown accelerator model {model!r} "
                f"(known: {', '.join(self.catalogue.names())})"
            )
        if len(names) != count:
            raise FleetError("internal: names must match count")
        r = self._racks[rack]
        shared_domain = self._nvlink_next if r.nvlink else -1
        if r.nvlink:
            self._nvlink_next += 1
        for nm in names:
            if nm in self._node_names:
                raise FleetError(f"node {nm!r} is defined twice")
            self._node_names.add(nm)
            if r.nvlink:
                domain = shared_domain
            else:
                domain = self._nvlink_next
                self._nvlink_next += 1
            self._nodes.append(Node(len(self._nodes), nm, model, gpus, r.cluster, r.block, rack, domain))

    def set_fractions(self, names: list[str], rule: NodeFractions) -> None:
        """Nodes ``names`` (already added) follow fraction ``rule``; FleetError if their model
        cannot (MIG on a model without profiles, sharing of a model the catalogue forbids)."""
        by_name = {n.name: n for n in self._nodes}
        for nm in names:
            nd = by_name[nm]
            model = self.catalogue[nd.model]
            if rule.mig is not MigMode.NONE and model.mig is None:
                raise FleetError(f"node {nm!r}: model {nd.model!r} has no MIG profiles in the catalogue")
            if rule.shared and not model.sharing:
                raise FleetError(f"node {nm!r}: the catalogue does not let model {nd.model!r} be shared")
            if rule.layout and model.mig is not None:
                try:
                    model.mig.check(rule.layout)
                except MigError as e:
                    raise FleetError(f"node {nm!r}: MIG layout: {e}") from None
            self._fractions[nd.index] = rule

    def build(self) -> Fleet:
        if not self._nodes:
            raise FleetError(f"fleet {self.name!r} has no nodes")
        # An NVLink rack must hold one model only: a domain mixing models is not a real product.
        models_in_domain: dict[int, str] = {}
        for n in self._nodes:
            got = models_in_domain.setdefault(n.nvlink, n.model)
            if got != n.model:
                raise FleetError(
                    f"rack {self._racks[n.rack].name!r} is one NVLink domain but mixes models "
                    f"{got!r} and {n.model!r}"
                )
        fleet = Fleet(
            self.name,
            self.catalogue,
            self._sites,
            self._clusters,
            self._blocks,
            self._racks,
            self._nodes,
            self.description,
        )
        fleet.fractions = dict(self._fractions)
        return fleet
