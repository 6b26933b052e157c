"""The accelerator catalogue file: what models exist and how fast each runs each workload class.

This module owns the catalogue file format and ``load_catalogue``, which turns a YAML/TOML
catalogue (the shipped ``gpupool/data/catalogue.yaml`` by default) into the core's
``Catalogue``. Every throughput figure in a file must name its source; figures marked
``estimate: true`` are listed in ``AcceleratorModel.estimated``.

Format::

    reference: H100                     # the model whose figures are all 1.0
    classes: [default, train-cnn, ...]  # every model must give every class
    models:
      H200:
        vendor: NVIDIA
        memory_gib: 141
        stack: cuda
        description: "..."
        throughput:
          train-cnn: {value: 1.127, source: "measured: ...", estimate: false}
        sharing: [time-slicing, mps]        # optional: how several jobs may share one
        mig:                                # optional: MIG profiles and valid placements
          source: "NVIDIA MIG User Guide, ..."
          profiles:
            1g.10gb: {compute: 1, memory_slices: 1, memory_gib: 10, placements: [0, 1, 2, 3, 4, 5, 6]}

``extend_catalogue`` reads a site's own file over a base catalogue (the shipped one by
default): its models are added, or replace a model of the same name; ``reference`` and
``classes`` may be left out (the base's are kept), and each model gives every class, as in a
full catalogue. The CLI's ``--catalogue FILE`` and the service's ``catalogue`` setting use it.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from gpupool.core.accelerator import (
    DEFAULT_CLASS,
    KNOWN_STACKS,
    AcceleratorModel,
    Catalogue,
    CatalogueError,
)
from gpupool.core.mig import MigError, MigGeometry, MigProfile
from gpupool.fleetfile.document import FleetFileError, StrictSpec, error_at, read_document, validate

__all__ = ["extend_catalogue", "load_catalogue", "shipped_catalogue_path", "site_catalogue"]

#: ways a model may be shared by several jobs at once
SHARING_MODES = frozenset({"time-slicing", "mps"})


class FigureSpec(StrictSpec):
    """One throughput figure and where it comes from."""

    value: Annotated[float, Field(gt=0)]
    source: Annotated[str, Field(min_length=1)]
    estimate: bool = False


class MigProfileSpec(StrictSpec):
    """One MIG profile: compute slices, memory slices spanned, memory, valid start slices."""

    compute: Annotated[int, Field(ge=1)]
    memory_slices: Annotated[int, Field(ge=1)]
    memory_gib: Annotated[float, Field(gt=0)]
    placements: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class MigSpec(StrictSpec):
    source: Annotated[str, Field(min_length=1)]
    compute_slices: Annotated[int, Field(ge=1)] = 7
    memory_slices: Annotated[int, Field(ge=1)] = 8
    profiles: Annotated[dict[str, MigProfileSpec], Field(min_length=1)]


class ModelSpec(StrictSpec):
    vendor: Annotated[str, Field(min_length=1)]
    memory_gib: Annotated[int, Field(gt=0)]
    stack: str
    description: str = ""
    throughput: dict[str, FigureSpec]
    sharing: list[str] = Field(default_factory=list)
    mig: MigSpec | None = None


class CatalogueSpec(StrictSpec):
    reference: str
    classes: Annotated[list[str], Field(min_length=1)]
    models: Annotated[dict[str, ModelSpec], Field(min_length=1)]


class ExtensionSpec(StrictSpec):
    """A site's catalogue over a base: ``reference`` and ``classes`` default to the base's."""

    reference: str | None = None
    classes: Annotated[list[str], Field(min_length=1)] | None = None
    models: Annotated[dict[str, ModelSpec], Field(min_length=1)]


def shipped_catalogue_path() -> Path:
    """The catalogue that ships with gpupool."""
    return Path(str(resources.files("gpupool") / "data" / "catalogue.yaml"))


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load a catalogue file; ``None`` loads the shipped one (cached: a ``Catalogue`` is immutable)."""
    if path is None:
        return _shipped()
    return _load(Path(path))


@functools.cache
def _shipped() -> Catalogue:
    return _load(shipped_catalogue_path())


def site_catalogue(path: str | Path | None) -> Catalogue | None:
    """The shipped catalogue extended by a site's file, or None (the shipped one) for none:
    what ``--catalogue FILE`` and the service's ``catalogue`` setting name."""
    return extend_catalogue(Path(path)) if path else None


def extend_catalogue(path: Path, base: Catalogue | None = None) -> Catalogue:
    """The ``base`` catalogue (the shipped one by default) with the models of ``path`` added
    or replacing those of the same name; FleetFileError with file, line and field."""
    base = base if base is not None else _shipped()
    path = Path(path)
    data = read_document(path)
    ext = validate(ExtensionSpec, data, path)
    ref = base.reference
    classes = list(base.classes)
    if ext.classes is not None and ext.classes != classes:
        if ext.reference is None or ext.reference not in ext.models:
            raise error_at(
                path,
                data,
                ("classes",),
                "changing the classes means every model changes: give a full catalogue "
                f"(reference and every model) or keep the base's classes ({', '.join(classes)})",
            )
        return _load(path)
    new = _models(path, data, ext.models, classes)
    by_name = {m.name: m for m in base}
    by_name.update({m.name: m for m in new})
    reference = ext.reference or ref
    if reference not in by_name:
        raise error_at(path, data, ("reference",), f"reference model {reference!r} is not in models")
    if (reference == ref and ref in ext.models) or ext.reference is not None:
        _check_reference(path, data, ext.models.get(reference), reference)
    try:
        return Catalogue(by_name.values(), reference=reference, classes=classes)
    except CatalogueError as e:
        raise FleetFileError(str(path), "models", str(e)) from None


def _load(path: Path) -> Catalogue:
    data = read_document(path)
    spec = validate(CatalogueSpec, data, path)
    if DEFAULT_CLASS not in spec.classes:
        raise error_at(path, data, ("classes",), f"the class list must include {DEFAULT_CLASS!r}")
    if spec.reference not in spec.models:
        raise error_at(path, data, ("reference",), f"reference model {spec.reference!r} is not in models")
    models = _models(path, data, spec.models, spec.classes)
    _check_reference(path, data, spec.models[spec.reference], spec.reference)
    try:
        return Catalogue(models, reference=spec.reference, classes=spec.classes)
    except CatalogueError as e:  # the core re-checks; anything it still finds is a file error
        raise FleetFileError(str(path), "models", str(e)) from None


def _check_reference(path: Path, data: dict[str, Any], ref: ModelSpec | None, name: str) -> None:
    if ref is None:
        return
    off = [c for c, f in ref.throughput.items() if abs(f.value - 1.0) > 1e-9]
    if off:
        raise error_at(
            path,
            data,
            ("models", name, "throughput", off[0]),
            f"the reference model's figures must all be 1.0 (got {ref.throughput[off[0]].value})",
        )


def _models(
    path: Path, data: dict[str, Any], specs: dict[str, ModelSpec], classes: list[str]
) -> list[AcceleratorModel]:
    models: list[AcceleratorModel] = []
    for name, m in specs.items():
        if m.stack not in KNOWN_STACKS:
            raise error_at(
                path,
                data,
                ("models", name, "stack"),
                f"unknown software stack {m.stack!r} (known: {', '.join(sorted(KNOWN_STACKS))})",
            )
        missing = [c for c in classes if c not in m.throughput]
        if missing:
            raise error_at(
                path, data, ("models", name, "throughput"), f"no figure for class(es) {', '.join(missing)}"
            )
        extra = [c for c in m.throughput if c not in classes]
        if extra:
            raise error_at(
                path,
                data,
                ("models", name, "throughput", extra[0]),
                f"class {extra[0]!r} is not declared in 'classes' ({', '.join(classes)})",
            )
        for i, mode in enumerate(m.sharing):
            if mode not in SHARING_MODES:
                raise error_at(
                    path,
                    data,
                    ("models", name, "sharing", i),
                    f"unknown sharing mode {mode!r} (known: {', '.join(sorted(SHARING_MODES))})",
                )
        models.append(
            AcceleratorModel(
                name=name,
                vendor=m.vendor,
                memory_gib=m.memory_gib,
                stack=m.stack,
                throughput={c: f.value for c, f in m.throughput.items()},
                sources={c: f.source for c, f in m.throughput.items()},
                estimated=frozenset(c for c, f in m.throughput.items() if f.estimate),
                description=m.description,
                mig=_geometry(path, data, name, m),
                sharing=frozenset(m.sharing),
            )
        )
    return models


def _geometry(path: Path, data: dict[str, Any], name: str, m: ModelSpec) -> MigGeometry | None:
    if m.mig is None:
        return None
    spec = m.mig
    for pname, p in spec.profiles.items():
        loc = ("models", name, "mig", "profiles", pname)
        if p.memory_gib > m.memory_gib:
            raise error_at(
                path,
                data,
                (*loc, "memory_gib"),
                f"{p.memory_gib:g} GiB is more than the model's {m.memory_gib}",
            )
        try:
            MigGeometry(
                [MigProfile(pname, p.compute, p.memory_slices, p.memory_gib, tuple(p.placements))],
                spec.compute_slices,
                spec.memory_slices,
            )
        except MigError as e:
            raise error_at(path, data, loc, str(e)) from None
    return MigGeometry(
        [
            MigProfile(pname, p.compute, p.memory_slices, p.memory_gib, tuple(p.placements))
            for pname, p in spec.profiles.items()
        ],
        spec.compute_slices,
        spec.memory_slices,
    )
