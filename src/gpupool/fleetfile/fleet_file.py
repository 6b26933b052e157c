"""The fleet file: sites > clusters > blocks > racks > nodes, written compactly.

This module owns the fleet file format, its compact naming notation and the fleet presets
(``gpupool/data/fleets/*.yaml``); ``load_fleet`` turns a file or a preset name into the core's
``Fleet`` through ``FleetBuilder``. It does not decide what a valid fleet is beyond the file
(the builder does) and it never returns a half-built fleet: the builder is private until
``build()`` succeeds.

Format (YAML shown; TOML has the same keys)::

    name: demo                       # optional, defaults to the file name
    description: "..."
    sites:
      - name: "KISTI Daejeon"
        region: Daejeon
        clusters:
          - name: kisti
            backend: slurm           # local | slurm | kubernetes
            options: {partition: gpu}
            blocks:                  # InfiniBand blocks
              - name: "ib{00..39}"   # 40 blocks, ib00 .. ib39
                racks:
                  - name: "r{00..15}"
                    nvlink: true     # the whole rack is one NVLink domain (GB200 NVL72)
                    nodes: {count: 18, model: GB200, gpus: 4, name: "{rack}-n{00..17}"}

Names are templates. ``{00..39}`` is a range (zero-padded like bash when an end is written
with a leading zero), ``{a,b,c}`` a list; several in one name multiply. ``{site}``,
``{cluster}``, ``{block}`` and ``{rack}`` insert the enclosing names. ``count`` (or
``repeat``) on a block, rack or node group gives that many copies: with a range in the name
the two must agree, without one the name gets a two-digit index (``gpu`` -> ``gpu00``...).
A block, rack or node group may be written as one mapping instead of a list of one.

Scopes: a block name is unique in its cluster, a rack name in its block (the fleet calls the
rack ``<block>-<rack>``, which is what ``{rack}`` inserts), a node name in the whole fleet.
Without a name, blocks are ``b00``..., racks ``r00``..., nodes ``<cluster>-<rack>-n00``...
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field

from gpupool.core.accelerator import Catalogue
from gpupool.core.fleet import Fleet, FleetBuilder, FleetError
from gpupool.core.mig import MigError, MigInstance
from gpupool.core.node_fractions import MigMode, NodeFractions
from gpupool.fleetfile.catalogue import load_catalogue
from gpupool.fleetfile.document import (
    FleetFileError,
    Loc,
    StrictSpec,
    document_loc,
    error_at,
    format_loc,
    read_document,
    resolve_path,
    validate,
)

__all__ = ["expand_names", "fleet_presets", "load_fleet", "resolve_fleet"]

#: A guard against a typo such as ``{0..99999999}`` eating the machine: 4x the national fleet.
MAX_NODES = 1_000_000
PLACEHOLDERS = ("site", "cluster", "block", "rack")


def _one_or_many(value: object) -> object:
    """Accept a single mapping where a list is expected (``nodes: {count: 4, ...}``)."""
    return [value] if isinstance(value, dict) else value


#: ``count`` copies of a block or rack; ``repeat`` reads better to some and means the same.
_Count = Annotated[int | None, Field(gt=0, validation_alias=AliasChoices("count", "repeat"))]
_Name = Annotated[str, Field(min_length=1)]


class FractionsSpec(StrictSpec):
    """How these nodes' GPUs may be cut (``gpupool.core.node_fractions``): ``shared`` by
    time-slicing/MPS; ``mig: dynamic`` (the scheduler partitions) or ``mig: fixed`` with
    ``mig_layout`` (every GPU carries these instances, ``profile`` or ``profile@start``)."""

    shared: bool = False
    mig: Literal["none", "fixed", "dynamic"] = "none"
    mig_layout: list[_Name] = Field(default_factory=list)


class NodeGroupSpec(StrictSpec):
    """``count`` identical nodes of ``gpus`` accelerators of ``model``."""

    count: Annotated[int, Field(gt=0)] | None = None
    model: _Name
    gpus: Annotated[int, Field(gt=0)]
    name: _Name | None = None
    fractions: FractionsSpec | None = None


class RackSpec(StrictSpec):
    name: _Name | None = None
    count: _Count = None
    nvlink: bool = False
    nodes: Annotated[list[NodeGroupSpec], BeforeValidator(_one_or_many), Field(min_length=1)]


class BlockSpec(StrictSpec):
    name: _Name | None = None
    count: _Count = None
    racks: Annotated[list[RackSpec], BeforeValidator(_one_or_many), Field(min_length=1)]


class ClusterSpec(StrictSpec):
    name: _Name
    backend: Literal["local", "slurm", "kubernetes"] = "local"
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    blocks: Annotated[list[BlockSpec], BeforeValidator(_one_or_many), Field(min_length=1)]


class SiteSpec(StrictSpec):
    name: _Name
    region: str = ""
    clusters: Annotated[list[ClusterSpec], Field(min_length=1)]


class FleetSpec(StrictSpec):
    name: _Name | None = None
    description: str = ""
    sites: Annotated[list[SiteSpec], Field(min_length=1)]


# --- the naming notation -------------------------------------------------------------------

_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")


class TemplateError(ValueError):
    """A name template that cannot be expanded."""


@dataclass(frozen=True, slots=True)
class _Placeholder:
    """``{cluster}`` and friends: filled in from the enclosing names when rendering."""

    key: str


@dataclass(frozen=True, slots=True)
class _Template:
    """A parsed name template: a sequence of choices (a literal is a choice of one) and
    placeholders; rendering takes the product of the choices, in order."""

    parts: tuple[tuple[str, ...] | _Placeholder, ...]
    size: int

    def render(self, values: Mapping[str, str]) -> list[str]:
        pools: list[tuple[str, ...]] = []
        for p in self.parts:
            if isinstance(p, _Placeholder):
                if p.key not in values:
                    raise TemplateError(
                        f"{{{p.key}}} cannot be used here (available: "
                        f"{', '.join('{' + k + '}' for k in values) or 'none'})"
                    )
                pools.append((values[p.key],))
            else:
                pools.append(p)
        return ["".join(combo) for combo in itertools.product(*pools)]


@functools.lru_cache(maxsize=4096)
def _parse(template: str) -> _Template:
    parts: list[tuple[str, ...] | _Placeholder] = []
    pos = 0
    size = 1
    for m in _BRACE.finditer(template):
        literal = template[pos : m.start()]
        if "{" in literal or "}" in literal:
            raise TemplateError(f"unbalanced brace in {template!r}")
        if literal:
            parts.append((literal,))
        body = m.group(1)
        rng = _RANGE.match(body)
        if rng:
            a, b = rng.group(1), rng.group(2)
            lo, hi = int(a), int(b)
            n = abs(hi - lo) + 1
            if size * n > MAX_NODES:
                raise TemplateError(f"{template!r} expands to more than {MAX_NODES:,} names")
            # bash pads to the wider end when either end is written with a leading zero
            pad = max(len(a), len(b)) if (len(a) > 1 and a[0] == "0") or (len(b) > 1 and b[0] == "0") else 0
            step = 1 if hi >= lo else -1
            parts.append(tuple(str(i).zfill(pad) for i in range(lo, hi + step, step)))
            size *= n
        elif body in PLACEHOLDERS:
            parts.append(_Placeholder(body))
        elif "," in body:
            choices = tuple(body.split(","))
            if any(c == "" for c in choices):
                raise TemplateError(f"empty choice in {{{body}}} of {template!r}")
            parts.append(choices)
            size *= len(choices)
        else:
            hint = difflib.get_close_matches(body, PLACEHOLDERS, n=1)
            raise TemplateError(
                f"unknown {{{body}}} in {template!r}"
                + (f" (did you mean {{{hint[0]}}}?)" if hint else "")
                + " - use a range like {00..15}, a list like {a,b}, or one of "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            )
        pos = m.end()
    tail = template[pos:]
    if "{" in tail or "}" in tail:
        raise TemplateError(f"unbalanced brace in {template!r}")
    if tail:
        parts.append((tail,))
    return _Template(tuple(parts), size)


def expand_names(template: str, values: Mapping[str, str] | None = None) -> list[str]:
    """Expand a name template: ``"r{00..02}"`` -> ``["r00", "r01", "r02"]``."""
    return _parse(template).render(values or {})


def _names(
    template: str | None,
    count: int | None,
    default_prefix: str,
    start: int,
    values: Mapping[str, str],
) -> list[str]:
    """The names of one entry: ``count`` copies of ``template`` (or of the default name)."""
    if template is None:
        n = count or 1
        width = max(2, len(str(start + n - 1)))
        return [f"{default_prefix}{i:0{width}d}" for i in range(start, start + n)]
    tpl = _parse(template)
    if tpl.size > 1:
        if count is not None and count != tpl.size:
            raise TemplateError(f"name {template!r} gives {tpl.size} names but count is {count}")
        return tpl.render(values)
    (single,) = tpl.render(values)
    n = count or 1
    if n == 1:
        return [single]
    width = max(2, len(str(n - 1)))
    return [f"{single}{i:0{width}d}" for i in range(n)]


# --- presets and resolution ----------------------------------------------------------------


def _preset_dir() -> Path:
    return Path(str(resources.files("gpupool") / "data" / "fleets"))


def fleet_presets() -> list[str]:
    """The names of the shipped fleet presets."""
    return sorted(p.stem for p in _preset_dir().glob("*.yaml"))


def resolve_fleet(path_or_preset: str) -> Path:
    """The file behind a path or a preset name."""
    return resolve_path(path_or_preset, _preset_dir(), fleet_presets(), "fleet")


# --- loading --------------------------------------------------------------------------------


def load_fleet(path_or_preset: str, catalogue: Catalogue | None = None) -> Fleet:
    """Load a fleet from a YAML/TOML file or a preset name (``demo``, ``korea-2025``, ...)."""
    path = resolve_fleet(str(path_or_preset))
    data = read_document(path)
    spec = validate(FleetSpec, data, path)
    cat = catalogue if catalogue is not None else load_catalogue()
    return _Build(path, data, cat).run(spec)


class _Build:
    """One pass over a validated fleet document, feeding a private ``FleetBuilder``."""

    def __init__(self, path: Path, data: dict[str, Any], catalogue: Catalogue) -> None:
        self.path = path
        self.data = data
        self.catalogue = catalogue
        self.nodes_seen: dict[str, Loc] = {}
        self.nodes_total = 0

    def fail(self, loc: Loc, message: str) -> FleetFileError:
        return error_at(self.path, self.data, loc, message)

    def where(self, loc: Loc) -> str:
        """A document place as the user wrote it, for "also at ..." in messages."""
        return format_loc(document_loc(self.data, loc))

    def run(self, spec: FleetSpec) -> Fleet:
        b = FleetBuilder(spec.name or self.path.stem, self.catalogue, spec.description)
        sites: dict[str, Loc] = {}
        clusters: dict[str, Loc] = {}
        for si, site in enumerate(spec.sites):
            loc: Loc = ("sites", si)
            if site.name in sites:
                raise self.fail(
                    (*loc, "name"),
                    f"site {site.name!r} is defined twice (also at {self.where(sites[site.name])})",
                )
            sites[site.name] = loc
            b.add_site(site.name, site.region)
            for ci, cl in enumerate(site.clusters):
                cloc: Loc = (*loc, "clusters", ci)
                if cl.name in clusters:
                    raise self.fail(
                        (*cloc, "name"),
                        f"cluster {cl.name!r} is defined twice (also at {self.where(clusters[cl.name])})",
                    )
                clusters[cl.name] = cloc
                options = {k: _option_text(v) for k, v in cl.options.items()}
                cidx = b.add_cluster(cl.name, site.name, cl.backend, options)
                self._blocks(b, cidx, cl, cloc, {"site": site.name, "cluster": cl.name})
        if self.nodes_total == 0:
            raise self.fail(("sites",), "the fleet has no nodes")
        try:
            return b.build()
        except FleetError as e:  # every check the builder makes is pre-empted above; belt and braces
            raise FleetFileError(str(self.path), "", str(e)) from None

    def _blocks(self, b: FleetBuilder, cidx: int, cl: ClusterSpec, cloc: Loc, values: dict[str, str]) -> None:
        seen: dict[str, Loc] = {}
        pos = 0
        for bi, blk in enumerate(cl.blocks):
            bloc: Loc = (*cloc, "blocks", bi)
            names = self._expand(blk.name, blk.count, "b", pos, values, bloc)
            pos += len(names)
            for bname in names:
                if bname in seen:
                    raise self.fail(
                        (*bloc, "name"),
                        f"block {bname!r} is defined twice in cluster {cl.name!r} "
                        f"(also at {self.where(seen[bname])})",
                    )
                seen[bname] = bloc
                bidx = b.add_block(cidx, bname)
                self._racks(b, bidx, blk, bloc, {**values, "block": bname})

    def _racks(self, b: FleetBuilder, bidx: int, blk: BlockSpec, bloc: Loc, values: dict[str, str]) -> None:
        seen: dict[str, Loc] = {}
        pos = 0
        for ri, rack in enumerate(blk.racks):
            rloc: Loc = (*bloc, "racks", ri)
            for gi, g in enumerate(rack.nodes):
                if g.model not in self.catalogue:
                    close = difflib.get_close_matches(g.model, self.catalogue.names(), n=1)
                    raise self.fail(
                        (*rloc, "nodes", gi, "model"),
                        f"unknown accelerator model {g.model!r}"
                        + (f" (did you mean {close[0]!r}?)" if close else "")
                        + f"; known: {', '.join(self.catalogue.names())}",
                    )
            models = sorted({g.model for g in rack.nodes})
            if rack.nvlink and len(models) > 1:
                raise self.fail(
                    (*rloc, "nodes"),
                    f"an NVLink rack is one domain of one model, but this one mixes {', '.join(models)}",
                )
            names = self._expand(rack.name, rack.count, "r", pos, values, rloc)
            pos += len(names)
            for rname in names:
                if rname in seen:
                    raise self.fail(
                        (*rloc, "name"),
                        f"rack {rname!r} is defined twice in block {values['block']!r} "
                        f"(also at {self.where(seen[rname])})",
                    )
                seen[rname] = rloc
                full = f"{values['block']}-{rname}"
                ridx = b.add_rack(bidx, full, rack.nvlink)
                self._nodes(b, ridx, rack, rloc, {**values, "rack": full})

    def _nodes(self, b: FleetBuilder, ridx: int, rack: RackSpec, rloc: Loc, values: dict[str, str]) -> None:
        pos = 0
        prefix = f"{values['cluster']}-{values['rack']}-n"
        for gi, g in enumerate(rack.nodes):
            gloc: Loc = (*rloc, "nodes", gi)
            names = self._expand(g.name, g.count, prefix, pos, values, gloc)
            pos += len(names)
            self.nodes_total += len(names)
            if self.nodes_total > MAX_NODES:
                raise self.fail(gloc, f"the fleet grows past {MAX_NODES:,} nodes here; is a count a typo?")
            seen = self.nodes_seen
            for nm in names:
                first = seen.setdefault(nm, gloc)
                if first is not gloc:
                    raise self.fail(
                        (*gloc, "name"),
                        f"node {nm!r} is defined twice (also at {self.where(first)}); "
                        "node names are fleet-wide: put {cluster} in the name",
                    )
            if len(set(names)) != len(names):
                dup = next(n for n in names if names.count(n) > 1)
                raise self.fail((*gloc, "name"), f"node {dup!r} is defined twice by this entry")
            try:
                b.add_nodes(ridx, len(names), g.model, g.gpus, names)
            except FleetError as e:
                raise self.fail(gloc, str(e)) from None
            if g.fractions is not None:
                self._fractions(b, g.model, g.fractions, names, (*gloc, "fractions"))

    def _fractions(self, b: FleetBuilder, model: str, f: FractionsSpec, names: list[str], loc: Loc) -> None:
        geo = self.catalogue[model].mig
        layout: tuple[MigInstance, ...] = ()
        if f.mig == "fixed":
            if not f.mig_layout:
                raise self.fail(
                    (*loc, "mig_layout"), "mig: fixed needs a mig_layout (the instances of every GPU)"
                )
            if geo is None:
                raise self.fail((*loc, "mig"), f"model {model!r} has no MIG profiles in the catalogue")
            try:
                layout = geo.layout(f.mig_layout)
            except MigError as e:
                raise self.fail((*loc, "mig_layout"), str(e)) from None
        elif f.mig_layout:
            raise self.fail((*loc, "mig_layout"), "a mig_layout is only read with mig: fixed")
        rule = NodeFractions(shared=f.shared, mig=MigMode(f.mig), layout=layout)
        try:
            b.set_fractions(names, rule)
        except FleetError as e:
            raise self.fail((*loc, "mig" if f.mig != "none" else "shared"), str(e)) from None

    def _expand(
        self,
        template: str | None,
        count: int | None,
        prefix: str,
        start: int,
        values: dict[str, str],
        loc: Loc,
    ) -> list[str]:
        try:
            return _names(template, count, prefix, start, values)
        except TemplateError as e:
            where = (*loc, "name") if template is not None else (*loc, "count")
            raise self.fail(where, str(e)) from None


def _option_text(v: str | int | float | bool) -> str:
    """Backend options are strings in the core; write booleans the way YAML/TOML do."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    return str(v)
