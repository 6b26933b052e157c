"""Row errors of a trace: vectorised checks of a ``Table``'s columns, earliest line first.

This module owns converting a column to numbers and checking it (missing, not a number, not
an integer, below a minimum, an empty cell, a repeated id), and choosing which error to
raise: each check records its first offending row, and the one on the earliest line is
raised as ``TraceError(path, line, field, message)``, so a file is never half-loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import polars as pl

from gpupool.sim.trace.table import Table
from gpupool.sim.workload import TraceError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class Checks:
    """Collects the first failure of each vectorised check; raises the one on the earliest line."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.errors: list[TraceError] = []

    def fail(self, i: int, field: str, message: str) -> None:
        self.errors.append(TraceError(self.table.path, int(self.table.lines[i]), field, message))

    def fail_first(self, mask: BoolArray | pl.Series, field: str, message: Callable[[int], str]) -> None:
        """Record a failure at the first row where ``mask`` is true, if any."""
        hits = np.flatnonzero(mask.to_numpy() if isinstance(mask, pl.Series) else mask)
        if hits.size:
            i = int(hits[0])
            self.fail(i, field, message(i))

    def raise_first(self) -> None:
        if self.errors:
            raise min(self.errors, key=lambda e: e.line)

    def numbers(
        self,
        field: str,
        *,
        integral: bool = False,
        minimum: float | None = None,
        what: str = "",
        optional: bool = False,
    ) -> tuple[FloatArray, BoolArray]:
        """Column ``field`` as float64 (bad entries 0) and a mask of its empty entries.

        ``optional``: an empty entry is allowed (the caller applies the default).
        """
        raw = self.table.columns[field]
        stripped = raw.str.strip_chars()
        empty = (stripped.str.len_chars() == 0).to_numpy()
        values = stripped.cast(pl.Float64, strict=False).fill_null(math.nan).to_numpy().copy()
        finite = np.isfinite(values)
        if not optional:
            self.fail_first(empty, field, lambda i: "missing value")
        self.fail_first(~finite & ~empty, field, lambda i: f"not a number: {raw[i]!r}")
        values[~finite] = 0.0
        if integral:
            self.fail_first(values != np.floor(values), field, lambda i: f"not an integer: {raw[i]!r}")
        if minimum is not None:
            label = what or f"must be >= {minimum:g}"
            self.fail_first(values < minimum, field, lambda i: f"{label}: {raw[i]!r}")
            values[values < minimum] = minimum
        return values, empty

    def nonempty(self, field: str) -> pl.Series:
        raw = self.table.columns[field]
        self.fail_first(raw.str.strip_chars().str.len_chars() == 0, field, lambda i: "missing value")
        return raw

    def unique(self, ids: pl.Series, field: str) -> None:
        repeated = ~ids.is_first_distinct()
        if repeated.any():
            i = int(np.flatnonzero(repeated.to_numpy())[0])
            first = int(np.flatnonzero((ids == ids[i]).to_numpy())[0])
            self.fail(i, field, f"duplicate id {ids[i]!r} (first on line {int(self.table.lines[first])})")

    def unique_ids(self, field: str) -> pl.Series:
        """Column ``field`` as job ids: none empty, none repeated."""
        ids = self.nonempty(field)
        self.unique(ids, field)
        return ids
