"""``/v1/dashboard/fleet``: the overview's utilisation bars and the heatmap.

This module owns fleet occupancy: busy, unavailable (free on drained or down nodes) and free
accelerators aggregated per site, cluster, accelerator model and network block, and, for one
chosen block, per rack and node. A national fleet has tens of thousands of nodes: the browser
gets the level it shows, and drained or down nodes are listed (at most
``MAX_UNAVAILABLE_LISTED``) while their counts stay complete.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.problems import invalid, not_found, responses

router = APIRouter(tags=["dashboard"])


class Occupancy(BaseModel):
    name: str
    total: int = Field(default=0, description="accelerators")
    busy: int = Field(default=0, description="accelerators held by running jobs")
    unavailable: int = Field(default=0, description="free accelerators on drained or down nodes")
    nodes: int = Field(default=0, description="nodes")
    drained: int = Field(default=0, description="nodes")
    down: int = Field(default=0, description="nodes")


class BlockOccupancy(Occupancy):
    racks: int = 0


class ClusterOccupancy(Occupancy):
    site: str
    models: list[Occupancy]
    blocks: list[BlockOccupancy]


class SiteOccupancy(Occupancy):
    region: str


class NodeCell(BaseModel):
    name: str
    model: str
    gpus: int
    busy: int
    state: str
    reason: str


class UnavailableNode(NodeCell):
    cluster: str


class RackOccupancy(Occupancy):
    nvlink: bool
    node_cells: list[NodeCell]


#: drained or down nodes listed by name in the fleet view (their counts are always complete)
MAX_UNAVAILABLE_LISTED = 500


class FleetView(BaseModel):
    name: str
    description: str
    total: int
    busy: int
    unavailable: int
    sites: list[SiteOccupancy]
    models: list[Occupancy]
    clusters: list[ClusterOccupancy]
    cluster: str | None = None
    block: str | None = None
    racks: list[RackOccupancy] = Field(default_factory=list, description="racks of the chosen block")
    unavailable_nodes: list[UnavailableNode] = Field(
        default_factory=list, description=f"nodes down, then drained (at most {MAX_UNAVAILABLE_LISTED})"
    )


class _Tally:
    """Counts for one unit of the fleet. Plain slots, not a model: a national fleet adds up
    35,000 nodes into five levels on every refresh, and model attribute writes cost ~10x."""

    __slots__ = ("busy", "down", "drained", "nodes", "total", "unavailable")

    def __init__(self) -> None:
        self.total = self.busy = self.unavailable = self.nodes = self.drained = self.down = 0

    def add(self, total: int, busy: int, state: str) -> None:
        self.total += total
        self.busy += busy
        self.nodes += 1
        if state != "up":
            self.unavailable += total - busy
            if state == "drained":
                self.drained += 1
            elif state == "down":
                self.down += 1

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def _busy_by_node(s: Session) -> dict[str, int]:
    """Accelerators held per node. A count, not a set of ids: the core never places two
    allocations on one accelerator, and a national fleet holds 200,000 of them."""
    out: dict[str, int] = {}
    for _, placement in store.running_placements(s):
        for node, ids in placement:
            out[str(node)] = out.get(str(node), 0) + len(ids)
    return out


@router.get(
    "/v1/dashboard/fleet",
    response_model=FleetView,
    responses=responses(401, 404, 422),
    summary="Occupancy per site, cluster, model and block; racks and nodes of one block",
)
def fleet_view(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    cluster: Annotated[str | None, Query(max_length=64)] = None,
    block: Annotated[str | None, Query(max_length=64)] = None,
) -> FleetView:
    f = rt.fleet
    if (cluster is None) != (block is None):
        raise invalid("block", "give both cluster and block, or neither")
    want_block = -1
    if cluster is not None:
        ci = f.cluster_by_name.get(cluster)
        found = [b.index for b in f.blocks if ci is not None and b.cluster == ci and b.name == block]
        if not found:
            raise not_found(f"block {block!r} of cluster {cluster!r}")
        want_block = found[0]
    busy = _busy_by_node(s)
    states = store.node_states(s)
    sites = {st.name: _Tally() for st in f.sites}
    clusters = [_Tally() for _ in f.clusters]
    blocks = [_Tally() for _ in f.blocks]
    models: defaultdict[str, _Tally] = defaultdict(_Tally)
    per_cluster_model: defaultdict[tuple[int, str], _Tally] = defaultdict(_Tally)
    racks: dict[int, tuple[_Tally, list[NodeCell]]] = {}
    unavailable: list[UnavailableNode] = []
    for n in f.nodes:
        st = states.get(n.name)
        state = st.state if st is not None else "up"
        held = min(busy.get(n.name, 0), n.gpus)
        clusters[n.cluster].add(n.gpus, held, state)
        sites[f.clusters[n.cluster].site].add(n.gpus, held, state)
        blocks[n.block].add(n.gpus, held, state)
        models[n.model].add(n.gpus, held, state)
        per_cluster_model[(n.cluster, n.model)].add(n.gpus, held, state)
        listed = st is not None and state != "up"
        if not listed and n.block != want_block:
            continue  # counted only: a national fleet's 35,000 nodes get no cell each
        reason = st.reason if st is not None else ""
        cell = NodeCell(name=n.name, model=n.model, gpus=n.gpus, busy=held, state=state, reason=reason)
        if listed:
            unavailable.append(UnavailableNode(**cell.model_dump(), cluster=f.clusters[n.cluster].name))
        if n.block == want_block:
            tally, cells = racks.setdefault(n.rack, (_Tally(), []))
            tally.add(n.gpus, held, state)
            cells.append(cell)
    racks_in_block = [0] * len(f.blocks)
    for r in f.racks:
        racks_in_block[r.block] += 1
    cluster_out = [
        ClusterOccupancy(name=c.name, site=c.site, models=[], blocks=[], **clusters[c.index].counts())
        for c in f.clusters
    ]
    for b in f.blocks:
        cluster_out[b.cluster].blocks.append(
            BlockOccupancy(name=b.name, racks=racks_in_block[b.index], **blocks[b.index].counts())
        )
    for (ci, model), tally in sorted(per_cluster_model.items()):
        cluster_out[ci].models.append(Occupancy(name=model, **tally.counts()))
    unavailable.sort(key=lambda u: (u.state != "down", u.cluster, u.name))
    return FleetView(
        name=f.name,
        description=f.description,
        total=sum(c.total for c in clusters),
        busy=sum(c.busy for c in clusters),
        unavailable=sum(c.unavailable for c in clusters),
        sites=[SiteOccupancy(name=st.name, region=st.region, **sites[st.name].counts()) for st in f.sites],
        models=[Occupancy(name=k, **models[k].counts()) for k in sorted(models)],
        clusters=cluster_out,
        cluster=cluster,
        block=block,
        racks=[
            RackOccupancy(name=f.racks[k].name, nvlink=f.racks[k].nvlink, node_cells=cells, **tally.counts())
            for k, (tally, cells) in sorted(racks.items())
        ],
        unavailable_nodes=unavailable[:MAX_UNAVAILABLE_LISTED],
    )
