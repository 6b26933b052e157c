"""The tenants file: sectors > organisations > projects, with quotas, budgets and members.

This module owns the tenants file format and the tenant presets
(``gpupool/data/tenants/*.yaml``); ``load_tenants`` turns a file or a preset name into the
core's ``Tenancy`` through ``TenancyBuilder``. Given a fleet it also checks the file against
it (models, cluster names, guarantees within capacity) and names the offending place.

Format (YAML shown; TOML has the same keys)::

    name: demo
    sectors:
      academia:                       # the key is the tenant's id; paths are academia/snu/vision
        name: "Academia"              # display name (Korean welcome: 서울대학교)
        weight: 2                     # fair-share weight among siblings
        organisations:
          snu:
            name: 서울대학교
            guaranteed: {H100: 16}    # per accelerator model, "*" = any model
            projects:
              vision:
                guaranteed: {H100: 8}
                borrow_limit: {"*": 16}   # or a number, meaning {"*": n}
                budget_gpu_hours: 20000
                over_budget: preemptible  # or reject
                clusters: [kisti]         # affinity
                allowed_classes: [normal, low, preemptible, high]  # priority classes
                members: [minjun.kim, seoyeon.lee]

Every level takes ``name``, ``weight``, ``guaranteed``, ``borrow_limit``, ``budget_gpu_hours``,
``over_budget``, ``clusters`` and ``allowed_classes``; projects also take ``members``.
``allowed_classes`` is inherited down the tree (default ``normal, low, preemptible``: the
classes that preempt, ``reserved`` and ``high``, must be granted); a tenant may narrow its
parent's list, never widen it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from gpupool.core.accelerator import Catalogue
from gpupool.core.fleet import Fleet
from gpupool.core.tenancy import ANY_MODEL, DEFAULT_CLASSES, Tenancy, TenancyBuilder, TenancyError
from gpupool.fleetfile.catalogue import load_catalogue
from gpupool.fleetfile.document import (
    FleetFileError,
    Loc,
    StrictSpec,
    error_at,
    read_document,
    resolve_path,
    validate,
)

__all__ = ["default_tenants_for", "load_tenants", "resolve_tenants", "tenant_presets"]

#: The tenant preset that goes with each fleet preset.
_DEFAULT_TENANTS = {"demo": "demo", "korea-2025": "korea-2025", "philly": "philly", "gavel-108": "gavel"}


def _any_model_shorthand(value: object) -> object:
    """``borrow_limit: 16`` means ``{"*": 16}``."""
    return {ANY_MODEL: value} if isinstance(value, int) and not isinstance(value, bool) else value


_Gpus = Annotated[int, Field(ge=0)]
_Class = Literal["reserved", "high", "normal", "low", "preemptible"]


class _TenantSpec(StrictSpec):
    name: Annotated[str, Field(min_length=1)] | None = None
    weight: Annotated[float, Field(gt=0)] = 1.0
    guaranteed: dict[str, _Gpus] = Field(default_factory=dict)
    borrow_limit: Annotated[dict[str, _Gpus] | None, BeforeValidator(_any_model_shorthand)] = None
    budget_gpu_hours: Annotated[float, Field(ge=0)] | None = None
    over_budget: Literal["preemptible", "reject"] = "preemptible"
    clusters: list[str] = Field(default_factory=list)
    allowed_classes: list[_Class] | None = None


class ProjectSpec(_TenantSpec):
    members: list[str] = Field(default_factory=list)


class OrganisationSpec(_TenantSpec):
    projects: Annotated[dict[str, ProjectSpec], Field(min_length=1)]


class SectorSpec(_TenantSpec):
    organisations: Annotated[dict[str, OrganisationSpec], Field(min_length=1)]


class TenantsSpec(StrictSpec):
    name: Annotated[str, Field(min_length=1)] | None = None
    description: str = ""
    sectors: Annotated[dict[str, SectorSpec], Field(min_length=1)]


def _preset_dir() -> Path:
    return Path(str(resources.files("gpupool") / "data" / "tenants"))


def tenant_presets() -> list[str]:
    """The names of the shipped tenant presets."""
    return sorted(p.stem for p in _preset_dir().glob("*.yaml"))


def resolve_tenants(path_or_preset: str) -> Path:
    """The file behind a path or a tenant preset name."""
    return resolve_path(path_or_preset, _preset_dir(), tenant_presets(), "tenants")


def default_tenants_for(fleet_name: str) -> str:
    """The tenant preset that goes with a fleet preset (``gavel-108`` -> ``gavel``)."""
    try:
        return _DEFAULT_TENANTS[fleet_name]
    except KeyError:
        raise FleetFileError(
            fleet_name,
            "",
            f"no default tenants for this fleet (known: {', '.join(sorted(_DEFAULT_TENANTS))}); "
            "give a tenants file",
        ) from None


def load_tenants(path_or_preset: str, fleet: Fleet | None = None) -> Tenancy:
    """Load a tenant tree from a YAML/TOML file or a preset name (``korea-2025``, ``demo``, ...).

    With ``fleet``, guarantees, borrow limits and cluster affinities are checked against it.
    """
    path = resolve_tenants(str(path_or_preset))
    data = read_document(path)
    spec = validate(TenantsSpec, data, path)
    return _Build(path, data, fleet).run(spec)


class _Build:
    """One pass over a validated tenants document, feeding a private ``TenancyBuilder``."""

    def __init__(self, path: Path, data: dict[str, Any], fleet: Fleet | None) -> None:
        self.path = path
        self.data = data
        self.fleet = fleet
        self.catalogue: Catalogue = fleet.catalogue if fleet is not None else load_catalogue()
        self.locs: list[Loc] = []  # tenant index -> its place in the document
        self.clusters: list[tuple[str, ...]] = []  # tenant index -> its effective clusters
        self.classes: list[frozenset[str]] = []  # tenant index -> its allowed priority classes
        self.specs: list[_TenantSpec] = []

    def fail(self, loc: Loc, message: str) -> FleetFileError:
        return error_at(self.path, self.data, loc, message)

    def run(self, spec: TenantsSpec) -> Tenancy:
        b = TenancyBuilder(spec.name or self.path.stem)
        for skey, sector in spec.sectors.items():
            sloc: Loc = ("sectors", skey)
            si = self._add(b, -1, skey, sector, sloc, [])
            for okey, org in sector.organisations.items():
                oloc: Loc = (*sloc, "organisations", okey)
                oi = self._add(b, si, okey, org, oloc, [])
                for pkey, proj in org.projects.items():
                    self._add(b, oi, pkey, proj, (*oloc, "projects", pkey), proj.members)
        self._check_children()
        capacity = self.fleet.gpus_by_model() if self.fleet is not None else None
        if capacity is not None:
            self._check_capacity(capacity)
        try:
            return b.build(capacity_by_model=capacity)
        except TenancyError as e:  # the checks above pre-empt the builder's; keep its word final
            raise FleetFileError(str(self.path), "", str(e)) from None

    def _add(
        self, b: TenancyBuilder, parent: int, key: str, t: _TenantSpec, loc: Loc, members: list[str]
    ) -> int:
        for field in ("guaranteed", "borrow_limit"):
            for model in getattr(t, field) or {}:
                self._check_model(model, (*loc, field, model))
        inherited = self.clusters[parent] if parent >= 0 else ()
        for i, cluster in enumerate(t.clusters):
            if self.fleet is not None and cluster not in self.fleet.cluster_by_name:
                raise self.fail(
                    (*loc, "clusters", i),
                    f"unknown cluster {cluster!r} (fleet {self.fleet.name!r} has: "
                    f"{', '.join(c.name for c in self.fleet.clusters)})",
                )
            if inherited and cluster not in inherited:
                raise self.fail(
                    (*loc, "clusters", i),
                    f"cluster {cluster!r} is outside its parent's clusters ({', '.join(inherited)}): "
                    "a tenant may narrow its parent's affinity, not leave it",
                )
        clusters = tuple(t.clusters) or inherited
        held = self.classes[parent] if parent >= 0 else frozenset(DEFAULT_CLASSES)
        if t.allowed_classes is not None and parent >= 0:
            for i, c in enumerate(t.allowed_classes):
                if c not in held:
                    raise self.fail(
                        (*loc, "allowed_classes", i),
                        f"class {c!r} is not allowed to its parent (which allows "
                        f"{', '.join(sorted(held))}): a tenant may narrow its parent's classes, "
                        "not widen them",
                    )
        classes = frozenset(t.allowed_classes) if t.allowed_classes is not None else held
        dup = sorted({m for m in members if members.count(m) > 1})
        if dup:
            raise self.fail((*loc, "members"), f"member {dup[0]!r} is listed twice")
        if self.fleet is not None and clusters:
            self._check_affinity(t, clusters, loc)
        try:
            idx = b.add(
                parent,
                key,
                name=t.name or "",
                weight=t.weight,
                guaranteed=t.guaranteed,
                borrow_limit=t.borrow_limit,
                budget_gpu_hours=t.budget_gpu_hours,
                over_budget=t.over_budget,
                clusters=t.clusters,
                members=members,
                allowed_classes=t.allowed_classes,
            )
        except TenancyError as e:
            raise self.fail(loc, str(e)) from None
        self.locs.append(loc)
        self.clusters.append(clusters)
        self.classes.append(classes)
        self.specs.append(t)
        return idx

    def _check_model(self, model: str, loc: Loc) -> None:
        if model == ANY_MODEL:
            return
        if model not in self.catalogue:
            raise self.fail(
                loc,
                f"unknown accelerator model {model!r} (known: {', '.join(self.catalogue.names())}, or '*')",
            )
        if self.fleet is not None and model not in self.fleet.gpus_by_model():
            raise self.fail(loc, f"fleet {self.fleet.name!r} has no {model} accelerators")

    def _check_affinity(self, t: _TenantSpec, clusters: tuple[str, ...], loc: Loc) -> None:
        """A guarantee tied to some clusters (its own, or its parent's) must fit in them."""
        assert self.fleet is not None
        wanted = {self.fleet.cluster_by_name[c] for c in clusters}
        for model, g in t.guaranteed.items():
            cap = sum(
                gpus
                for (ci, m), gpus in self.fleet.gpus_by_pool.items()
                if ci in wanted and (model == ANY_MODEL or m == model)
            )
            if g > cap:
                raise self.fail(
                    (*loc, "guaranteed", model),
                    f"guarantees {g} {model} but its clusters ({', '.join(clusters)}) hold only {cap}",
                )

    def _check_children(self) -> None:
        """What a tenant's descendants guarantee must fit inside its own guarantee, per model.

        A level that states no guarantee for a model is looked through: if a sector guarantees
        8 H100 and its organisation none, the organisation's projects share those 8.
        """
        kids: dict[int, list[int]] = {}
        for i, p in enumerate(_parents(self.locs)):
            kids.setdefault(p, []).append(i)

        def stated(i: int, model: str) -> list[tuple[int, int]]:
            """The highest guarantees for ``model`` at or below ``i``: (tenant, gpus)."""
            g = self.specs[i].guaranteed.get(model)
            if g is not None:
                return [(i, g)]
            return [part for k in kids.get(i, []) for part in stated(k, model)]

        # parents before children, so the first report is the highest place that is wrong
        for parent in range(len(self.specs)):
            for model, g in self.specs[parent].guaranteed.items():
                parts = [part for k in kids.get(parent, []) for part in stated(k, model)]
                total = sum(v for _, v in parts)
                if total > g:
                    detail = ", ".join(f"{self._path(c)} {v}" for c, v in parts if v)
                    raise self.fail(
                        (*self.locs[parent], "guaranteed", model),
                        f"the tenants below it guarantee {total} {model} ({detail}) "
                        f"but it guarantees only {g}",
                    )

    def _path(self, i: int) -> str:
        """A tenant's path (``academia/snu/vision``) from its document location."""
        return "/".join(str(p) for p in self.locs[i][1::2])

    def _check_capacity(self, capacity: dict[str, int]) -> None:
        """Guarantees, counted at the highest level that states them, must fit in the fleet."""
        parents = _parents(self.locs)
        total_cap = sum(capacity.values())
        models = sorted({m for s in self.specs for m in s.guaranteed})
        for model in models:
            cap = total_cap if model == ANY_MODEL else capacity.get(model, 0)
            contributions: list[tuple[int, int]] = []
            for i, spec in enumerate(self.specs):
                g = spec.guaranteed.get(model)
                if g is None:
                    continue
                # counted only if no ancestor already states a guarantee for this model
                a = parents[i]
                while a >= 0 and model not in self.specs[a].guaranteed:
                    a = parents[a]
                if a < 0:
                    contributions.append((i, g))
            total = sum(g for _, g in contributions)
            if total > cap:
                # point at the entry whose guarantee tips the sum over the capacity
                running = 0
                tip = contributions[-1][0]
                for i, g in contributions:
                    running += g
                    if running > cap:
                        tip = i
                        break
                biggest = sorted(contributions, key=lambda c: -c[1])[:5]
                detail = ", ".join(f"{self._path(i)} {g}" for i, g in biggest)
                raise self.fail(
                    (*self.locs[tip], "guaranteed", model),
                    f"guaranteed {model} quotas add up to {total}, above the fleet's capacity of {cap} "
                    f"(largest: {detail})",
                )


def _parents(locs: list[Loc]) -> list[int]:
    """Parent index of each tenant from document locations (a child's location extends its parent's)."""
    index = {loc: i for i, loc in enumerate(locs)}
    return [index.get(loc[:-2], -1) for loc in locs]
