"""``/v1/fleet``: the fleet with free and busy accelerators; node drains.

This module owns the fleet routes. Occupancy comes from the database (the placements of
running jobs), which is what the loop last committed; node states come from ``node_states``.
Draining and undraining write the node state, an inbox event and an audit row in one
transaction (``store.accept_node_change``); only a pool admin may.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep, require_pool_admin
from gpupool.service.api.paging import LimitQ, Page
from gpupool.service.api.problems import invalid, not_found, responses
from gpupool.service.request_body import RequestBody
from gpupool.service.runtime import Runtime

router = APIRouter(prefix="/v1/fleet", tags=["fleet"])
NodeState = Literal["up", "drained", "down"]


class PoolOut(BaseModel):
    cluster: str
    model: str
    total: int
    busy: int
    free: int
    unavailable: int = Field(description="free accelerators on drained or down nodes")


class FleetOut(BaseModel):
    name: str
    description: str
    nodes: int
    gpus: int
    busy: int
    sites: list[dict[str, object]]
    pools: list[PoolOut]


class NodeOut(BaseModel):
    name: str
    cluster: str
    model: str
    gpus: int
    state: NodeState
    reason: str
    free: int
    busy: list[int]


class DrainIn(RequestBody):
    reason: Annotated[str, Field(max_length=1024)] = ""


def _busy(s: Session) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for _, placement in store.running_placements(s):
        for node, ids in placement:
            out.setdefault(str(node), set()).update(int(i) for i in ids)
    return out


def _nodes(rt: Runtime, s: Session) -> list[NodeOut]:
    fleet = rt.fleet
    busy = _busy(s)
    states = store.node_states(s)
    out = []
    for n in fleet.nodes:
        held = sorted(busy.get(n.name, ()))
        st = states.get(n.name)
        out.append(
            NodeOut(
                name=n.name,
                cluster=fleet.clusters[n.cluster].name,
                model=n.model,
                gpus=n.gpus,
                state=st.state if st is not None else "up",  # type: ignore[arg-type]
                reason=st.reason if st is not None else "",
                free=n.gpus - len(held),
                busy=held,
            )
        )
    return out


@router.get("", response_model=FleetOut, responses=responses(401), summary="The fleet and its occupancy")
def fleet(caller: CallerDep, rt: RuntimeDep, s: SessionDep) -> FleetOut:
    f = rt.fleet
    pools: dict[tuple[str, str], PoolOut] = {}
    for n in _nodes(rt, s):
        p = pools.get((n.cluster, n.model))
        if p is None:
            p = PoolOut(cluster=n.cluster, model=n.model, total=0, busy=0, free=0, unavailable=0)
            pools[(n.cluster, n.model)] = p
        p.total += n.gpus
        p.busy += len(n.busy)
        if n.state == "up":
            p.free += n.free
        else:
            p.unavailable += n.free
    summary = f.summary()
    sites = summary["sites"]
    assert isinstance(sites, list)
    return FleetOut(
        name=f.name,
        description=f.description,
        nodes=len(f.nodes),
        gpus=f.total_gpus,
        busy=sum(p.busy for p in pools.values()),
        sites=sites,
        pools=[pools[k] for k in sorted(pools)],
    )


@router.get("/nodes", response_model=Page[NodeOut], responses=responses(401, 422), summary="Nodes")
def nodes(
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    cluster: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=64)] = None,
    state: NodeState | None = None,
    limit: LimitQ = 100,
    cursor: Annotated[
        str | None, Query(max_length=255, description="next_cursor of the previous page")
    ] = None,
) -> Page[NodeOut]:
    rows = [
        n
        for n in _nodes(rt, s)
        if (cluster is None or n.cluster == cluster)
        and (model is None or n.model == model)
        and (state is None or n.state == state)
    ]
    start = 0
    if cursor is not None:
        idx = rt.fleet.node_by_name.get(cursor)
        if idx is None:
            raise invalid("cursor", "not a cursor returned by this API")
        start = next((i for i, n in enumerate(rows) if rt.fleet.node_by_name[n.name] > idx), len(rows))
    page = rows[start : start + limit]
    more = start + limit < len(rows)
    return Page[NodeOut](items=page, next_cursor=page[-1].name if more and page else None)


def _change(
    name: str, state: str, body: DrainIn | None, caller: CallerDep, rt: Runtime, s: Session
) -> NodeOut:
    require_pool_admin(caller)
    if name not in rt.fleet.node_by_name:
        raise not_found(f"node {name!r}")
    store.accept_node_change(rt.factory, name, state, body.reason if body else "", caller.name, rt.clock())
    rt.wake_loop()
    s.expire_all()
    return next(n for n in _nodes(rt, s) if n.name == name)


@router.post(
    "/nodes/{name}/drain",
    response_model=NodeOut,
    responses=responses(401, 403, 404, 422),
    summary="Drain a node: running work finishes, nothing new starts",
)
def drain(
    name: str, caller: CallerDep, rt: RuntimeDep, s: SessionDep, body: DrainIn | None = None
) -> NodeOut:
    return _change(name, "drained", body, caller, rt, s)


@router.post(
    "/nodes/{name}/undrain",
    response_model=NodeOut,
    responses=responses(401, 403, 404, 422),
    summary="Return a drained node to service",
)
def undrain(
    name: str, caller: CallerDep, rt: RuntimeDep, s: SessionDep, body: DrainIn | None = None
) -> NodeOut:
    return _change(name, "up", body, caller, rt, s)
