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
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field

from gpupool.core.accelerator import (
    DEFAULT_CLASS,
    KNOWN_STACKS,
    AcceleratorModel,
    Catalogue,
    CatalogueError,
)
from gpupool.fleetfile.document import FleetFileError, StrictSpec, error_at, read_document, validate

__all__ = ["load_catalogue", "shipped_catalogue_path"]


class FigureSpec(StrictSpec):
    """One throughput figure and where it comes from."""

    value: Annotated[float, Field(gt=0)]
    source: Annotated[str, Field(min_length=1)]
    estimate: bool = False


class ModelSpec(StrictSpec):
    vendor: Annotated[str, Field(min_length=1)]
    memory_gib: Annotated[int, Field(gt=0)]
    stack: str
    description: str = ""
    throughput: dict[str, FigureSpec]


class CatalogueSpec(StrictSpec):
    reference: str
    classes: Annotated[list[str], Field(min_length=1)]
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


def _load(path: Path) -> Catalogue:
    data = read_document(path)
    spec = validate(CatalogueSpec, data, path)
    if DEFAULT_CLASS not in spec.classes:
        raise error_at(path, data, ("classes",), f"the class list must include {DEFAULT_CLASS!r}")
    if spec.reference not in spec.models:
        raise error_at(path, data, ("reference",), f"reference model {spec.reference!r} is not in models")
    models: list[AcceleratorModel] = []
    for name, m in spec.models.items():
        if m.stack not in KNOWN_STACKS:
            raise error_at(
                path,
                data,
                ("models", name, "stack"),
                f"unknown software stack {m.stack!r} (known: {', '.join(sorted(KNOWN_STACKS))})",
            )
        missing = [c for c in spec.classes if c not in m.throughput]
        if missing:
            raise error_at(
                path, data, ("models", name, "throughput"), f"no figure for class(es) {', '.join(missing)}"
            )
        extra = [c for c in m.throughput if c not in spec.classes]
        if extra:
            raise error_at(
                path,
                data,
                ("models", name, "throughput", extra[0]),
                f"class {extra[0]!r} is not declared in 'classes' ({', '.join(spec.classes)})",
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
            )
        )
    ref = spec.models[spec.reference]
    off = [c for c, f in ref.throughput.items() if abs(f.value - 1.0) > 1e-9]
    if off:
        raise error_at(
            path,
            data,
            ("models", spec.reference, "throughput", off[0]),
            f"the reference model's figures must all be 1.0 (got {ref.throughput[off[0]].value})",
        )
    try:
        return Catalogue(models)
    except CatalogueError as e:  # the core re-checks; anything it still finds is a file error
        raise FleetFileError(str(path), "models", str(e)) from None
