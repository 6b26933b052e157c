"""A validated trace file as columns of ``WorkloadJob`` fields, and building the jobs from it.

This module owns the form every format reader returns (``Parsed``: columns in file order,
times in ms), the column helpers the readers share (seconds to ms, constant and numbered
string columns, the one-tenant file of relative times most formats are) and constructing
the selected rows as ``WorkloadJob`` objects, which is most of a large trace's read time.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from gpupool.sim.trace.checks import FloatArray
from gpupool.sim.trace.table import IntArray, Table
from gpupool.sim.workload import WorkloadJob

MS_PER_S: Final = 1000

# A column of a parsed file: Polars strings, a NumPy array, or a plain Python list.
Column = pl.Series | npt.NDArray[Any] | list[Any]

JOB_FIELDS: Final = tuple(dataclasses.fields(WorkloadJob))


@dataclasses.dataclass(slots=True)
class Parsed:
    """A whole file, validated, as columns in file order (before filtering and sorting)."""

    submit_ms: IntArray
    fields: dict[str, Column]  # WorkloadJob field name -> column (submit_ms excluded)
    origin_is_wallclock: bool = False  # submit_ms counts ms since 1970 of a naive wall clock


def seconds_to_ms(seconds: FloatArray) -> IntArray:
    # np.rint, not truncation: "66.0" s is 66000 ms and float noise such as 0.0009999 s must not lose 1 ms.
    return np.rint(seconds * MS_PER_S).astype(np.int64)


def constant(value: str, n: int) -> pl.Series:
    return pl.Series([value], dtype=pl.String).extend_constant(value, n - 1)


def numbered(prefix: str, n: int) -> pl.Series:
    """``prefix0``, ``prefix1``, ... built in Polars (82k f-strings cost more than the parse)."""
    return pl.select(pl.format(prefix + "{}", pl.int_range(n, eager=False))).to_series()


def one_tenant_file(
    table: Table,
    tenant: str,
    *,
    ids: pl.Series,
    submit_s: FloatArray,
    duration_s: FloatArray,
    gpus: FloatArray | IntArray,
    workload_class: pl.Series | None,
) -> Parsed:
    """The jobs of a file whose times are seconds from its own origin and whose jobs share one tenant.

    Every public format but Philly is such a file (they carry no tenant column); ``None``
    ``workload_class`` leaves the field's default.
    """
    fields: dict[str, Column] = {
        "id": ids,
        "duration_ms": seconds_to_ms(duration_s),
        "gpus": gpus.astype(np.int64),
        "tenant": constant(tenant, len(table)),
        "source_line": table.lines,
    }
    if workload_class is not None:
        fields["workload_class"] = workload_class
    return Parsed(submit_ms=seconds_to_ms(submit_s), fields=fields)


def _gather(column: Column, order: IntArray) -> list[Any]:
    if isinstance(column, pl.Series):
        return column.gather(order).to_list()
    if isinstance(column, np.ndarray):
        return column[order].tolist()  # type: ignore[no-any-return]
    return [column[i] for i in order.tolist()]


def build_jobs(parsed: Parsed, order: IntArray, submit_ms: IntArray) -> list[WorkloadJob]:
    """Construct the selected rows; positional ``map`` is the fastest way to build dataclasses."""
    columns: list[Iterable[Any]] = []
    for f in JOB_FIELDS:
        if f.name == "submit_ms":
            columns.append(submit_ms.tolist())
        elif f.name in parsed.fields:
            columns.append(_gather(parsed.fields[f.name], order))
        else:
            columns.append(itertools.repeat(f.default))
    # trailing fields no column gives are left to their defaults: fewer arguments per job
    given = [i for i, f in enumerate(JOB_FIELDS) if f.name == "submit_ms" or f.name in parsed.fields]
    return list(map(WorkloadJob, *columns[: given[-1] + 1]))
