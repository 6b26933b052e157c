"""Accelerator models: what a kind of accelerator is and how fast it runs each workload class.

This module owns ``AcceleratorModel`` and ``Catalogue`` (a validated set of models). It does
not read files: ``gpupool.fleetfile.catalogue`` loads the shipped catalogue into these types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from gpupool.core.mig import MigGeometry

#: Software stacks a job can declare. NPU vendors ship their own runtimes.
KNOWN_STACKS = frozenset({"cuda", "rocm", "rbln", "furiosa", "neuron"})

#: Workload classes with a throughput figure for every model. ``default`` is used when a
#: job's class has no figure of its own.
DEFAULT_CLASS = "default"


class CatalogueError(ValueError):
    """A catalogue that contradicts itself (duplicate model, unknown stack, bad figure)."""


@dataclass(frozen=True, slots=True)
class AcceleratorModel:
    """One accelerator model.

    ``throughput`` maps a workload class to the model's speed relative to the reference
    model (H100 = 1.0 for the modern classes); ``sources`` says where each figure comes from
    and ``estimated`` lists the classes whose figure is an estimate, not a measurement.
    """

    name: str
    vendor: str
    memory_gib: int
    stack: str
    throughput: Mapping[str, float]
    sources: Mapping[str, str] = field(default_factory=dict)
    estimated: frozenset[str] = frozenset()
    description: str = ""
    #: MIG profiles and placements (None: the model cannot be partitioned), and the ways it
    #: may be shared by several jobs (``time-slicing``, ``mps``; empty: never shared)
    mig: MigGeometry | None = None
    sharing: frozenset[str] = frozenset()

    def speed(self, workload_class: str) -> float:
        """Relative throughput for a workload class (falls back to ``default``)."""
        got = self.throughput.get(workload_class)
        if got is None:
            got = self.throughput[DEFAULT_CLASS]
        return got


class Catalogue:
    """A validated, immutable set of accelerator models keyed by name."""

    __slots__ = ("_models", "classes", "reference")

    def __init__(
        self, models: Iterable[AcceleratorModel], reference: str = "", classes: Iterable[str] = ()
    ) -> None:
        #: the model whose figures are 1.0 and the declared classes, as the file gave them
        #: (empty when built in code); ``extend_catalogue`` keeps them for a site's models
        self.reference = reference
        self.classes = tuple(classes)
        by_name: dict[str, AcceleratorModel] = {}
        for m in models:
            if m.name in by_name:
                raise CatalogueError(f"accelerator model {m.name!r} is defined twice")
            if m.stack not in KNOWN_STACKS:
                raise CatalogueError(
                    f"accelerator model {m.name!r}: unknown software stack {m.stack!r} "
                    f"(known: {', '.join(sorted(KNOWN_STACKS))})"
                )
            if m.memory_gib <= 0:
                raise CatalogueError(f"accelerator model {m.name!r}: memory_gib must be > 0")
            if DEFAULT_CLASS not in m.throughput:
                raise CatalogueError(f"accelerator model {m.name!r}: no {DEFAULT_CLASS!r} throughput")
            for cls, v in m.throughput.items():
                if not v > 0:
                    raise CatalogueError(
                        f"accelerator model {m.name!r}: throughput for {cls!r} must be > 0, got {v}"
                    )
            by_name[m.name] = m
        self._models = by_name

    def __getitem__(self, name: str) -> AcceleratorModel:
        try:
            return self._models[name]
        except KeyError:
            raise CatalogueError(
                f"unknown accelerator model {name!r} (known: {', '.join(sorted(self._models))})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[AcceleratorModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def names(self) -> list[str]:
        """Model names in catalogue order."""
        return list(self._models)
