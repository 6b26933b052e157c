"""Throughput of each workload class on each accelerator model, and effective GPU-hours.

This module owns ``ThroughputTable``: a validated matrix (workload class [x gang size]) x
accelerator model -> throughput, read *relative to a reference model*, so that

* heterogeneity-aware policies can compare "one hour of a K80" with "one hour of a V100"
  for the job at hand (Gavel's throughput matrix, Narayanan et al., OSDI'20);
* usage, budgets and fair share can be counted in *effective* GPU-hours (accelerator time
  scaled by how fast the job ran there, in reference-model hours) as well as raw;
* the twin's runtime model can stretch a job's reference duration on the model it got.

A row is a workload class, optionally for one gang size (Gavel measured each job type at 1,
2, 4 and 8 GPUs, and the ratios between models change with the size); a lookup falls back
from (class, size) to the class's any-size row, then to the ``default`` row. The table
refuses contradictions at construction with a ``ThroughputError`` naming the class and the
model: a missing pair, a zero, negative or non-finite figure, an unknown model.
It reads no files (``gpupool.sim.throughputs`` loads shipped tables into it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from gpupool.core.accelerator import DEFAULT_CLASS, Catalogue

#: A row key: a workload class (any gang size) or (class, gang size).
RowKey = str | tuple[str, int]


class ThroughputError(ValueError):
    """A throughput table that cannot be trusted; the message names the class and model."""


def _row_name(key: tuple[str, int]) -> str:
    cls, size = key
    return f"class {cls!r}" if size == 0 else f"class {cls!r} at {size} accelerators"


class ThroughputTable:
    """Validated throughputs per (workload class [, gang size], accelerator model).

    ``rows`` maps a class (or ``(class, gang size)``) to a throughput per model name, in any
    unit (steps/s, tokens/s, or already relative): only ratios between models are used.
    Every row must name every model of ``models`` with a finite figure > 0; a ``default``
    row (any size) is required, as the fallback for classes the table does not know.
    """

    __slots__ = ("_col", "_ref", "_rows", "models", "reference")

    def __init__(
        self,
        rows: Mapping[RowKey, Mapping[str, float]],
        *,
        models: Sequence[str],
        reference: str,
    ) -> None:
        if not models:
            raise ThroughputError("throughput table: no accelerator models")
        if len(set(models)) != len(models):
            dup = sorted({m for m in models if list(models).count(m) > 1})
            raise ThroughputError(f"throughput table: accelerator model {dup[0]!r} is listed twice")
        if reference not in models:
            raise ThroughputError(
                f"throughput table: reference model {reference!r} is not one of its models "
                f"({', '.join(models)})"
            )
        self.models: tuple[str, ...] = tuple(models)
        self.reference = reference
        self._col = {m: i for i, m in enumerate(self.models)}
        self._ref = self._col[reference]
        known = set(self.models)
        parsed: dict[tuple[str, int], tuple[float, ...]] = {}
        for raw_key, figures in rows.items():
            key = (raw_key, 0) if isinstance(raw_key, str) else (str(raw_key[0]), int(raw_key[1]))
            name = _row_name(key)
            if not key[0]:
                raise ThroughputError("throughput table: a row has an empty workload class")
            if key[1] < 0 or (not isinstance(raw_key, str) and key[1] == 0):
                raise ThroughputError(f"throughput table: {name}: gang size must be >= 1")
            if key in parsed:
                raise ThroughputError(f"throughput table: {name} is given twice")
            unknown = sorted(set(figures) - known)
            if unknown:
                raise ThroughputError(
                    f"throughput table: {name}: unknown accelerator model {unknown[0]!r} "
                    f"(the table's models: {', '.join(self.models)})"
                )
            missing = [m for m in self.models if m not in figures]
            if missing:
                raise ThroughputError(
                    f"throughput table: {name} has no throughput for model"
                    f"{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}"
                )
            values = []
            for m in self.models:
                v = figures[m]
                # bool is an int: a YAML "yes" must not pass for a throughput of 1
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                    raise ThroughputError(
                        f"throughput table: {name} on {m!r}: throughput must be a finite number > 0, "
                        f"got {v!r}"
                    )
                values.append(float(v))
            parsed[key] = tuple(values)
        if (DEFAULT_CLASS, 0) not in parsed:
            raise ThroughputError(
                f"throughput table: no {DEFAULT_CLASS!r} row (the fallback for classes it does not list)"
            )
        self._rows = parsed

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue, reference: str | None = None) -> ThroughputTable:
        """The catalogue's per-class figures as a table (a model without a class uses its default).

        ``reference`` None picks the model whose ``default`` throughput is 1.0 (the model the
        catalogue is normalised to), else the first model.
        """
        models = catalogue.names()
        if reference is None:
            ones = [m.name for m in catalogue if m.throughput.get(DEFAULT_CLASS) == 1.0]
            reference = ones[0] if ones else models[0]
        classes = sorted({c for m in catalogue for c in m.throughput})
        rows: dict[RowKey, Mapping[str, float]] = {
            c: {m.name: m.speed(c) for m in catalogue} for c in classes
        }
        return cls(rows, models=models, reference=reference)

    # -- lookups -----------------------------------------------------------------------------

    def _row(self, workload_class: str, gpus: int) -> tuple[float, ...]:
        rows = self._rows
        got = rows.get((workload_class, gpus))
        if got is None:
            got = rows.get((workload_class, 0))
            if got is None:
                got = rows[(DEFAULT_CLASS, 0)]
        return got

    def _index(self, model: str) -> int:
        i = self._col.get(model)
        if i is None:
            raise ThroughputError(
                f"throughput table: unknown accelerator model {model!r} (the table's models: "
                f"{', '.join(self.models)})"
            )
        return i

    def has_class(self, workload_class: str) -> bool:
        """Does the table list this class (at any size), rather than falling back to default?"""
        return (workload_class, 0) in self._rows or any(k[0] == workload_class for k in self._rows)

    def classes(self) -> list[str]:
        """The workload classes the table lists, sorted."""
        return sorted({k[0] for k in self._rows})

    def speed(self, workload_class: str, model: str, gpus: int = 1) -> float:
        """Throughput of a ``gpus``-accelerator job of this class on ``model`` / on the reference."""
        row = self._row(workload_class, gpus)
        return row[self._index(model)] / row[self._ref]

    def speeds(self, workload_class: str, models: Iterable[str], gpus: int = 1) -> list[float]:
        """``speed`` for several models at once (one row lookup)."""
        row = self._row(workload_class, gpus)
        ref = row[self._ref]
        return [row[self._index(m)] / ref for m in models]

    def effective_gpu_ms(self, gpu_ms: float, workload_class: str, model: str, gpus: int = 1) -> float:
        """Accelerator time on ``model`` in reference-model time: what the job got done."""
        return gpu_ms * self.speed(workload_class, model, gpus)

    def require_models(self, models: Iterable[str], what: str = "the fleet") -> None:
        """ThroughputError naming the first model of ``models`` the table has no column for."""
        for m in models:
            if m not in self._col:
                raise ThroughputError(
                    f"throughput table has no column for accelerator model {m!r} of {what} "
                    f"(the table's models: {', '.join(self.models)})"
                )

    def __repr__(self) -> str:
        return (
            f"ThroughputTable(models={list(self.models)}, reference={self.reference!r}, "
            f"rows={len(self._rows)})"
        )
