"""Our native workload format, ``.csv`` or ``.jsonl``: every ``WorkloadJob`` field, round-trippable.

This module owns the format's columns (``NATIVE_COLUMNS``), reading both encodings and
writing them (``write_native``). Times are seconds; a column left out, or an empty cell,
takes the ``WorkloadJob`` default; rows without an id are numbered by data row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from gpupool.sim.trace.checks import Checks
from gpupool.sim.trace.dependency_checks import check_arrays, check_dependencies
from gpupool.sim.trace.parsed import JOB_FIELDS, MS_PER_S, Column, Parsed, numbered, seconds_to_ms
from gpupool.sim.trace.table import IntArray, Table, read_table
from gpupool.sim.workload import TraceError, WorkloadJob

#: Native columns in the order ``write_native`` writes them. Times are seconds (decimal,
#: millisecond precision); ``models`` and ``stacks`` are ";"-separated in CSV, lists in JSONL.
NATIVE_COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "submit_s",
    "duration_s",
    "gpus",
    "tenant",
    "user",
    "gpus_per_worker",
    "models",
    "min_memory_gib",
    "stacks",
    "topology",
    "workload_class",
    "walltime_s",
    "priority_class",
    "checkpoint_interval_s",
    "kind",
    "dependency",
    "array",
    "mig",
    "mig_count",
    "gpu_fraction",
    "gpu_memory_gib",
)
NATIVE_REQUIRED: Final = frozenset({"submit_s", "duration_s", "gpus", "tenant"})
# Native seconds column -> WorkloadJob millisecond field.
_NATIVE_SECONDS: Final[dict[str, str]] = {
    "submit_s": "submit_ms",
    "duration_s": "duration_ms",
    "walltime_s": "walltime_ms",
    "checkpoint_interval_s": "checkpoint_interval_ms",
}
# Integer columns with their minimum value.
_NATIVE_INTS: Final[dict[str, int]] = {"gpus": 1, "gpus_per_worker": 0, "min_memory_gib": 0, "mig_count": 0}
# Decimal columns (a fraction of one accelerator), >= 0.
_NATIVE_FLOATS: Final = ("gpu_fraction", "gpu_memory_gib")
_NATIVE_LISTS: Final = ("models", "stacks")
_NATIVE_STRINGS: Final = (
    "id",
    "tenant",
    "user",
    "topology",
    "workload_class",
    "priority_class",
    "kind",
    "dependency",
    "array",
    "mig",
)
# String fields whose empty value would read back as the (non-empty) default: the writer refuses them.
_NONEMPTY_STRINGS: Final = ("id", "tenant", "topology", "workload_class", "priority_class", "kind")


# --------------------------------------------------------------------------- reading


def _native_defaults() -> dict[str, Any]:
    """Defaults of the optional native columns; an absent id is "" (numbered by ``_finish_native``)."""
    defaults = {f.name: f.default for f in JOB_FIELDS if f.default is not dataclasses.MISSING}
    return defaults | {"id": ""}


def _parse_native_csv(path: Path, text: str) -> Parsed:
    shown = str(path)
    table = read_table(shown, text, ",", quoted=True, required=NATIVE_REQUIRED, allowed=NATIVE_COLUMNS)
    checks = Checks(table)
    defaults = _native_defaults()
    fields: dict[str, Column] = {}
    submit_ms: IntArray = np.zeros(len(table), dtype=np.int64)
    for column, field in _NATIVE_SECONDS.items():
        if column not in table.columns:
            continue
        optional = column not in NATIVE_REQUIRED
        seconds, empty = checks.numbers(column, minimum=0, optional=optional)
        ms = seconds_to_ms(seconds)
        if optional:  # required columns have no default; their empty cells are errors already
            ms[empty] = defaults[field]
        if field == "submit_ms":
            submit_ms = ms
        else:
            fields[field] = ms
    for column, minimum in _NATIVE_INTS.items():
        if column not in table.columns:
            continue
        optional = column not in NATIVE_REQUIRED
        values, empty = checks.numbers(column, integral=True, minimum=minimum, optional=optional)
        ints = values.astype(np.int64)
        if optional:
            ints[empty] = defaults[column]
        fields[column] = ints
    for column in _NATIVE_FLOATS:
        if column in table.columns:
            values, empty = checks.numbers(column, minimum=0, optional=True)
            values[empty] = 0.0
            fields[column] = values.tolist()
    for column in _NATIVE_STRINGS:
        if column not in table.columns:
            continue
        if column in NATIVE_REQUIRED:
            fields[column] = checks.nonempty(column)
            continue
        raw = table.columns[column]
        default: str = defaults[column]
        # An empty cell means "not given": the field's default (the writer never writes one).
        fields[column] = raw.replace("", default) if default else raw
    for column in _NATIVE_LISTS:
        if column not in table.columns:
            continue
        parsed_lists: list[tuple[str, ...]] = []
        for i, cell in enumerate(table.columns[column].to_list()):
            items = tuple(cell.split(";")) if cell else ()
            if not all(items):
                checks.fail(i, column, f"empty name in ';'-separated list {cell!r}")
                break
            parsed_lists.append(items)
        fields[column] = parsed_lists
    checks.raise_first()
    return _finish_native(table, path, submit_ms, fields)


def _parse_native_jsonl(path: Path, text: str) -> Parsed:
    shown = str(path)
    defaults = _native_defaults()
    columns: dict[str, list[Any]] = {name: [] for name in NATIVE_COLUMNS}
    lines: list[int] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(shown, line_no, "", f"invalid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise TraceError(shown, line_no, "", "a JSONL row must be a JSON object")
        for key in record:
            if key not in columns:
                raise TraceError(shown, line_no, str(key), "unknown key")
        for name in NATIVE_COLUMNS:
            value = record.get(name)
            if value is None and name in NATIVE_REQUIRED:
                raise TraceError(shown, line_no, name, "missing value")
            columns[name].append(_check_json_value(shown, line_no, name, value))
        lines.append(line_no)
    submit_ms: IntArray = np.zeros(len(lines), dtype=np.int64)
    fields: dict[str, Column] = {}
    for column, field in _NATIVE_SECONDS.items():
        ms = [defaults[field] if v is None else round(v * MS_PER_S) for v in columns[column]]
        if field == "submit_ms":
            submit_ms = np.asarray(ms, dtype=np.int64)
        else:
            fields[field] = ms
    for column in (*_NATIVE_INTS, *_NATIVE_STRINGS, *_NATIVE_FLOATS):
        fields[column] = [defaults[column] if v is None else v for v in columns[column]]
    for column in _NATIVE_LISTS:
        fields[column] = [() if v is None else tuple(v) for v in columns[column]]
    table = Table(shown, {}, np.asarray(lines, dtype=np.int64))
    return _finish_native(table, path, submit_ms, fields)


def _check_json_value(path: str, line: int, name: str, value: Any) -> Any:
    """Validate one JSONL value against its column's type and range; None = not given."""
    if value is None:
        return None
    if name in _NATIVE_SECONDS or name in _NATIVE_INTS or name in _NATIVE_FLOATS:
        # bool is an int subclass in Python but never a valid count or time.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TraceError(path, line, name, f"not a number: {value!r}")
        if name in _NATIVE_INTS:
            if value != int(value):
                raise TraceError(path, line, name, f"not an integer: {value!r}")
            if value < _NATIVE_INTS[name]:
                raise TraceError(path, line, name, f"must be >= {_NATIVE_INTS[name]}: {value!r}")
            return int(value)
        if value < 0:
            raise TraceError(path, line, name, f"negative {name}: {value!r}")
        return value
    if name in _NATIVE_LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise TraceError(path, line, name, "must be a list of non-empty strings")
        return value
    if not isinstance(value, str):
        raise TraceError(path, line, name, f"must be a string: {value!r}")
    if name in NATIVE_REQUIRED and not value.strip():
        raise TraceError(path, line, name, "missing value")
    return value or None


def _finish_native(table: Table, path: Path, submit_ms: IntArray, fields: dict[str, Column]) -> Parsed:
    # Rows without an id are numbered by data row, like the Philly reader's ids.
    auto_ids = numbered(f"{path.stem}-", len(table))
    given = fields.get("id")
    if given is None:
        ids = auto_ids
    else:
        given_ids = pl.Series("id", given, dtype=pl.String) if not isinstance(given, pl.Series) else given
        ids = given_ids.zip_with(given_ids.str.len_chars() > 0, auto_ids)
    checks = Checks(table)
    checks.unique(ids, "id")
    checks.raise_first()
    fields["id"] = ids
    fields["source_line"] = table.lines
    arrays = _texts(fields["array"]) if "array" in fields else None
    if arrays is not None:
        check_arrays(str(path), arrays, table.lines)
    if "dependency" in fields:
        deps = _texts(fields["dependency"])
        check_dependencies(str(path), _texts(ids), deps, submit_ms, table.lines, arrays)
    return Parsed(submit_ms=submit_ms, fields=fields)


def _texts(column: Column) -> list[str]:
    return [str(v) for v in (column.to_list() if isinstance(column, pl.Series) else list(column))]


def parse_native(path: Path, text: str) -> Parsed:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _parse_native_jsonl(path, text)
    if suffix == ".csv":
        return _parse_native_csv(path, text)
    raise TraceError(
        str(path), 0, "", f"native workloads are .csv or .jsonl, not {suffix or 'no extension'!r}"
    )


# --------------------------------------------------------------------------- writing


def _ms_to_seconds_text(ms: int) -> str:
    """Exact decimal seconds for an integer ms count (no float rounding on the way out)."""
    whole, frac = divmod(ms, MS_PER_S)
    return str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")


def _check_writable(job: WorkloadJob) -> None:
    for name in _NONEMPTY_STRINGS:
        # Whitespace-only counts as empty: the reader treats a blank required cell as missing.
        if not getattr(job, name).strip():
            raise ValueError(
                f"job {job.id!r}: empty {name} cannot be written (it would read back differently)"
            )
    for name in _NATIVE_STRINGS:
        value: str = getattr(job, name)
        if "\n" in value or "\r" in value:
            raise ValueError(f"job {job.id!r}: {name} contains a line break")
    for name in _NATIVE_LISTS:
        for item in getattr(job, name):
            if not item or ";" in item or "\n" in item or "\r" in item:
                raise ValueError(
                    f"job {job.id!r}: {name} entry {item!r} is empty or contains ';' or a line break"
                )
    for field in _NATIVE_SECONDS.values():
        if getattr(job, field) < 0:
            raise ValueError(f"job {job.id!r}: negative {field}")
    if job.gpus < 1 or job.gpus_per_worker < 0 or job.min_memory_gib < 0:
        raise ValueError(f"job {job.id!r}: gpus must be >= 1, gpus_per_worker and min_memory_gib >= 0")


def _native_row(job: WorkloadJob) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in NATIVE_COLUMNS:
        if column in _NATIVE_SECONDS:
            row[column] = getattr(job, _NATIVE_SECONDS[column])
        elif column in _NATIVE_LISTS:
            row[column] = list(getattr(job, column))
        else:
            row[column] = getattr(job, column)
    return row


def write_native(jobs: Iterable[WorkloadJob], path: str | Path) -> None:
    """Write ``jobs`` in the native format (``.csv`` or ``.jsonl``, by extension).

    Every column is written, so ``read_trace(path)`` gives the same jobs back (in submit
    order, with ``source_line`` set). Refuses (``ValueError``) values the format cannot
    round-trip: line breaks in text, ';' in model/stack names, empty ids/tenants, negatives.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ValueError(f"native workloads are .csv or .jsonl, not {path.name!r}")
    rows = []
    for job in jobs:
        _check_writable(job)
        rows.append(_native_row(job))
    buffer = io.StringIO(newline="")
    if suffix == ".jsonl":
        for row in rows:
            for column in _NATIVE_SECONDS:
                ms = row[column]
                # Whole seconds as JSON ints; otherwise the shortest float repr, which reads back exactly.
                row[column] = ms // MS_PER_S if ms % MS_PER_S == 0 else ms / MS_PER_S
            buffer.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            buffer.write("\n")
    else:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(NATIVE_COLUMNS)
        for row in rows:
            cells: list[str] = []
            for column in NATIVE_COLUMNS:
                value = row[column]
                if column in _NATIVE_SECONDS:
                    cells.append(_ms_to_seconds_text(value))
                elif column in _NATIVE_LISTS:
                    cells.append(";".join(value))
                else:
                    cells.append(str(value))
            writer.writerow(cells)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
