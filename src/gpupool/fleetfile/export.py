"""Fleet and tenants documents written from the core's objects (the inverse of the readers).

This module owns ``fleet_document`` (a ``Fleet`` as a fleet-file mapping: every site,
cluster, block and rack, every node by its own name, so ``load_fleet`` of it gives the same
nodes in the same order) and ``tenants_document`` (a ``Tenancy`` of three levels as a
tenants-file mapping). The twin's snapshot of a live service writes both, so the simulator
reads the live pool with the same validated readers as any other fleet or tenants file.
"""

from __future__ import annotations

from typing import Any

from gpupool.core.fleet import Fleet
from gpupool.core.tenancy import Tenancy, TenantNode

__all__ = ["fleet_document", "tenants_document"]


def fleet_document(fleet: Fleet) -> dict[str, Any]:
    """The fleet file of ``fleet`` (a mapping ready for YAML)."""
    racks: dict[int, list[dict[str, Any]]] = {}
    for n in fleet.nodes:
        racks.setdefault(n.rack, []).append({"name": n.name, "model": n.model, "gpus": n.gpus})
    blocks: dict[int, list[dict[str, Any]]] = {}
    for r in fleet.racks:
        if r.index in racks:
            entry: dict[str, Any] = {"name": r.name, "nodes": racks[r.index]}
            if r.nvlink:
                entry["nvlink"] = True
            blocks.setdefault(r.block, []).append(entry)
    clusters: dict[str, list[dict[str, Any]]] = {}
    for b in fleet.blocks:
        if b.index in blocks:
            c = fleet.clusters[b.cluster]
            clusters.setdefault(c.name, []).append({"name": b.name, "racks": blocks[b.index]})
    sites = []
    for s in fleet.sites:
        cl = []
        for c in fleet.clusters:
            if c.site == s.name and c.name in clusters:
                doc: dict[str, Any] = {"name": c.name, "backend": c.backend, "blocks": clusters[c.name]}
                if c.backend_options:
                    doc["options"] = dict(c.backend_options)
                cl.append(doc)
        if cl:
            sites.append({"name": s.name, "region": s.region, "clusters": cl})
    return {"name": fleet.name, "description": fleet.description, "sites": sites}


def _entry(n: TenantNode) -> dict[str, Any]:
    out: dict[str, Any] = {"name": n.name, "weight": n.weight}
    if n.guaranteed:
        out["guaranteed"] = dict(n.guaranteed)
    if n.borrow_limit is not None:
        out["borrow_limit"] = dict(n.borrow_limit)
    if n.budget_gpu_hours is not None:
        out["budget_gpu_hours"] = n.budget_gpu_hours
    if n.over_budget != "preemptible":
        out["over_budget"] = n.over_budget
    if n.clusters:
        out["clusters"] = list(n.clusters)
    if n.allowed_classes is not None:
        out["allowed_classes"] = list(n.allowed_classes)
    return out


def tenants_document(tenancy: Tenancy, description: str = "") -> dict[str, Any]:
    """The tenants file of a three-level ``tenancy`` (sector > organisation > project).

    A sector or organisation without projects is left out (a tenants file needs at least
    one under each; no job can run in one). Clusters are written where they were set, not
    where inherited: ``clusters`` of a child that equal its parent's are left to inherit.
    """
    children: dict[int, list[TenantNode]] = {}
    for n in tenancy.nodes:
        children.setdefault(n.parent, []).append(n)

    def node(n: TenantNode) -> dict[str, Any]:
        out = _entry(n)
        parent = tenancy.nodes[n.parent] if n.parent >= 0 else None
        if parent is not None and tuple(parent.clusters) == tuple(n.clusters):
            out.pop("clusters", None)
        return out

    sectors: dict[str, Any] = {}
    for sec in children.get(-1, []):
        orgs: dict[str, Any] = {}
        for org in children.get(sec.index, []):
            projects = {
                p.path.rsplit("/", 1)[-1]: node(p) | ({"members": list(p.members)} if p.members else {})
                for p in children.get(org.index, [])
            }
            if projects:
                orgs[org.path.rsplit("/", 1)[-1]] = node(org) | {"projects": projects}
        if orgs:
            sectors[sec.path] = node(sec) | {"organisations": orgs}
    return {"name": tenancy.name, "description": description, "sectors": sectors}
