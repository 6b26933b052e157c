"""Trace readers: public GPU-cluster traces and our native workload files, as ``WorkloadJob`` lists.

This module owns parsing and validating every workload file format the simulator accepts
(``TRACE_FORMATS``), the native writer (``write_native``), the lookup of the trace files
shipped in ``gpupool/data/traces`` (``shipped_trace``) and Gavel's V100 throughput table
(``gavel_v100_throughputs``), which both the Gavel reader and the Gavel generator use.
It does not generate workloads (see ``gpupool.sim.generator``) nor schedule anything.

Every reader validates the whole file before returning: a malformed row raises
``TraceError(path, line, field, message)`` with the 1-based physical line of the row, and
nothing is half-loaded. Parsing is column-wise, for speed (the 82,247-row Philly table
reads in about 0.2 s, most of it constructing the dataclasses): lines are split into string
columns in Polars, keeping each row's physical line number (files with quoted fields go
through the ``csv`` module instead, which counts lines itself); numbers and timestamps are
then converted and checked with vectorised Polars/NumPy operations. Each check records its
first offending row, and the one on the earliest line is raised.

Formats (the shipped copies are described in ``gpupool/data/traces/README.md``):

``philly``
    Microsoft Philly per-job table ``timestamp,duration,num_gpus,gpu_time,cluster``.
    ``tenant`` = virtual cluster; ``id`` = ``philly-<0-based data row>``.
``itp-raw`` / ``itp-elasticflow``
    Microsoft ITP clusters (ElasticFlow release). ``tenant`` = ``itp-<file stem>``
    (the files have no tenant column); ElasticFlow's ``model_name`` -> ``workload_class``.
``gavel``
    Gavel ``.trace`` files (tab-separated, 7 or 10 fields). ``duration_ms`` =
    ``total_steps`` / V100 throughput at the job's scale factor; ``tenant`` = file stem.
``pollux``
    Pollux and Sia workloads ``name,time,application,num_replicas,batch_size``; durations
    are estimates from ``POLLUX_TYPICAL_GPU_HOURS`` (the files carry none).
``tiresias``
    Tiresias simulator inputs ``job_id,num_gpu,submit_time,iterations,model_name,duration,interval``
    (the shipped ``tiresias/60_job.csv``). ``model_name`` -> ``workload_class``; ``tenant`` = file stem.
``native``
    Our own format, ``.csv`` or ``.jsonl``, see ``NATIVE_COLUMNS`` and ``write_native``.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import itertools
import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from gpupool.sim.workload import TraceError, WorkloadJob

__all__ = [
    "NATIVE_COLUMNS",
    "POLLUX_TYPICAL_GPU_HOURS",
    "TRACE_FORMATS",
    "gavel_v100_throughputs",
    "read_trace",
    "shipped_trace",
    "write_native",
]

TRACE_FORMATS: Final[tuple[str, ...]] = (
    "philly",
    "itp-raw",
    "itp-elasticflow",
    "gavel",
    "pollux",
    "tiresias",
    "native",
)

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
)
_NATIVE_REQUIRED: Final = frozenset({"submit_s", "duration_s", "gpus", "tenant"})
# Native seconds column -> WorkloadJob millisecond field.
_NATIVE_SECONDS: Final[dict[str, str]] = {
    "submit_s": "submit_ms",
    "duration_s": "duration_ms",
    "walltime_s": "walltime_ms",
    "checkpoint_interval_s": "checkpoint_interval_ms",
}
# Integer columns with their minimum value.
_NATIVE_INTS: Final[dict[str, int]] = {"gpus": 1, "gpus_per_worker": 0, "min_memory_gib": 0}
_NATIVE_LISTS: Final = ("models", "stacks")
_NATIVE_STRINGS: Final = ("id", "tenant", "user", "topology", "workload_class", "priority_class", "kind")
# String fields whose empty value would read back as the (non-empty) default: the writer refuses them.
_NONEMPTY_STRINGS: Final = ("id", "tenant", "topology", "workload_class", "priority_class", "kind")

#: Typical GPU-hours per Pollux/Sia application. ESTIMATES: the workload files carry no
#: duration. Pollux (OSDI'21, Table 1) and Sia (SOSP'23, §6) assign each sampled Philly job
#: an application by the job's GPU-time: cifar10 (and ncf) < 1 GPU-h, deepspeech2 and bert
#: 1-10 GPU-h, yolov3 10-100 GPU-h, imagenet > 100 GPU-h. We take a representative value
#: per band (about its geometric middle; 0.5 for the open-ended "< 1 h" band and 300 for
#: ">100 h", i.e. the middle of Pollux's 100-1000 GPU-h XLarge band). A job's duration is
#: then GPU-hours / num_replicas (perfect scaling on the requested gang).
POLLUX_TYPICAL_GPU_HOURS: Final[Mapping[str, float]] = {
    "cifar10": 0.5,
    "ncf": 0.5,
    "deepspeech2": 3.0,
    "bert": 3.0,
    "yolov3": 30.0,
    "imagenet": 300.0,
}

_PHILLY_COLUMNS: Final = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
_ITP_RAW_COLUMNS: Final = ("job_id", "submission_time", "duration", "num_gpu")
_ITP_EF_COLUMNS: Final = (
    "job_id",
    "submission_time",
    "num_iteration",
    "model_name",
    "deadline",
    "batch_size",
    "num_gpu",
    "duration",
)
_POLLUX_COLUMNS: Final = ("name", "time", "application", "num_replicas", "batch_size")
_TIRESIAS_COLUMNS: Final = (
    "job_id",
    "num_gpu",
    "submit_time",
    "iterations",
    "model_name",
    "duration",
    "interval",
)
_GAVEL_MSR_FIELDS: Final = (
    "job_type",
    "command",
    "num_steps_arg",
    "needs_data_dir",
    "total_steps",
    "arrival_time",
    "scale_factor",
)
_GAVEL_PHYSICAL_FIELDS: Final = (
    "job_type",
    "command",
    "working_directory",
    "num_steps_arg",
    "needs_data_dir",
    "total_steps",
    "scale_factor",
    "priority_weight",
    "SLO",
    "arrival_time",
)
_TIMESTAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
_MS_PER_S: Final = 1000

_FloatArray = npt.NDArray[np.float64]
_IntArray = npt.NDArray[np.int64]
_BoolArray = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------- shipped data


def shipped_trace(name: str) -> Path:
    """Path of a trace file shipped in ``gpupool/data/traces``, e.g. ``"philly/philly_jobs.csv"``.

    Raises ``FileNotFoundError`` if there is no such file.
    """
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts or any(p == ".." for p in parts):
        raise FileNotFoundError(f"not a shipped trace name: {name!r}")
    resource = resources.files("gpupool").joinpath("data", "traces", *parts)
    # The package is installed as plain files (setuptools package-data), so the resource is
    # a real path; a zipped install would need importlib.resources.as_file instead.
    if not isinstance(resource, Path) or not resource.is_file():
        raise FileNotFoundError(f"no shipped trace {name!r} (looked for {resource})")
    return resource


@lru_cache(maxsize=1)
def gavel_v100_throughputs() -> Mapping[tuple[str, int], float]:
    """Gavel's isolated V100 throughputs (steps/s) by ``(job type, scale factor)``.

    From the shipped ``gavel-throughputs/simulation_throughputs.json`` (the table Gavel's
    paper simulations use): 26 job types, scale factors 1/2/4/8 for the 19 types that can
    run distributed, 83 keys in all.
    """
    with shipped_trace("gavel-throughputs/simulation_throughputs.json").open(encoding="utf-8") as f:
        table = json.load(f)
    out: dict[tuple[str, int], float] = {}
    for key, entry in table["v100"].items():
        # Keys are Python tuple reprs, "('ResNet-50 (batch size 64)', 1)": literal_eval is safe.
        job_type, scale_factor = ast.literal_eval(key)
        out[(str(job_type), int(scale_factor))] = float(entry["null"])
    # Read-only: the table is cached and shared by every caller.
    return MappingProxyType(out)


def _gavel_throughput(job_type: str, scale_factor: int) -> float | None:
    """V100 throughput of ``job_type`` at ``scale_factor``; None for an unknown job type.

    Gavel's table stops at scale factor 8 and has only scale factor 1 for the 7
    non-distributed types, yet the Philly-derived ``msr`` traces use Philly's GPU counts
    (2..64) for every type (1,548 of their 15,264 rows). For those we extrapolate linearly
    from the largest tabulated scale factor below (perfect data-parallel scaling): an
    estimate, documented in the data README, that keeps such rows readable.
    """
    table = gavel_v100_throughputs()
    exact = table.get((job_type, scale_factor))
    if exact is not None:
        return exact
    tabulated = [sf for (jt, sf) in table if jt == job_type and sf <= scale_factor]
    if not tabulated:
        return None
    base = max(tabulated)
    return table[(job_type, base)] * scale_factor / base


# --------------------------------------------------------------------------- row splitting


@dataclasses.dataclass(slots=True)
class _Table:
    """A delimited file as string columns, with the 1-based physical line of each row."""

    path: str
    columns: dict[str, pl.Series]
    lines: _IntArray

    def __len__(self) -> int:
        return int(self.lines.shape[0])


def _read_text(path: Path) -> str:
    shown = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TraceError(shown, 0, "", f"cannot read file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TraceError(shown, line, "", "not UTF-8 text") from exc
    if not text.strip():
        raise TraceError(shown, 0, "", "empty file")
    return text


def _check_header(
    path: str, header: list[str], line: int, required: Collection[str], allowed: Collection[str] | None
) -> list[str]:
    """Header names, stripped; every ``required`` column present, none outside ``allowed``."""
    names = [h.strip() for h in header]
    permitted = required if allowed is None else allowed
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TraceError(path, line, name, "duplicate column in header")
        if name not in permitted:
            raise TraceError(path, line, name, "unknown column in header")
        seen.add(name)
    for name in required:
        if name not in seen:
            raise TraceError(path, line, name, "missing column in header")
    return names


def _wrong_width(path: str, line: int, found: int, names: Sequence[str]) -> TraceError:
    width = len(names)
    if found < width:
        return TraceError(path, line, names[found], f"missing field (row has {found} of {width} fields)")
    return TraceError(path, line, "", f"wrong column count: {found} fields, expected {width}")


def _read_table(
    path: str,
    text: str,
    delimiter: str,
    *,
    quoted: bool,
    names: Sequence[str] | None = None,
    required: Collection[str] = (),
    allowed: Collection[str] | None = None,
) -> _Table:
    """Split ``text`` into string columns; blank lines are skipped.

    ``names`` None: the first non-blank row is a header, checked by ``_check_header``.
    ``quoted``: CSV quoting applies (``"a,b"`` is one field); Gavel's tab-separated commands
    contain quote characters that are not quoting, so they are read with ``quoted=False``.
    """
    if quoted and '"' in text:
        return _read_table_csv(path, text, delimiter, names=names, required=required, allowed=allowed)
    # Fast path, exact whenever no field is quoted (all public traces): split in Polars.
    lines = pl.Series("line", text.split("\n"), dtype=pl.String).str.strip_suffix("\r")
    keep = (lines.str.strip_chars().str.len_chars() > 0).to_numpy()
    numbers = (np.flatnonzero(keep) + 1).astype(np.int64)
    rows = lines.filter(pl.Series(keep))
    if names is None:
        names = _check_header(path, str(rows[0]).split(delimiter), int(numbers[0]), required, allowed)
        rows, numbers = rows.slice(1), numbers[1:]
    if rows.len() == 0:
        raise TraceError(path, 0, "", "no data rows")
    width = len(names)
    counts = (rows.str.count_matches(delimiter, literal=True) + 1).to_numpy()
    bad = np.flatnonzero(counts != width)
    if bad.size:
        i = int(bad[0])
        raise _wrong_width(path, int(numbers[i]), int(counts[i]), names)
    if width == 1:
        columns = {names[0]: rows.alias(names[0])}
    else:
        frame = rows.str.split_exact(delimiter, width - 1).struct.unnest()
        columns = {name: frame.to_series(k).alias(name) for k, name in enumerate(names)}
    return _Table(path, columns, numbers)


def _read_table_csv(
    path: str,
    text: str,
    delimiter: str,
    *,
    names: Sequence[str] | None,
    required: Collection[str],
    allowed: Collection[str] | None,
) -> _Table:
    """``_read_table`` for text with quoted fields, via the ``csv`` module (which counts lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    previous_end = 0
    try:
        for row in reader:
            # A record starts on the line after the previous one ended (csv.reader counts lines
            # consumed, so a quoted field spanning lines still gets its first line).
            start = previous_end + 1
            previous_end = reader.line_num
            if row and (len(row) > 1 or row[0].strip()):
                rows.append(row)
                lines.append(start)
    except csv.Error as exc:
        raise TraceError(path, previous_end + 1, "", f"malformed CSV: {exc}") from exc
    if names is None:
        names = _check_header(path, rows[0], lines[0], required, allowed)
        rows, lines = rows[1:], lines[1:]
    if not rows:
        raise TraceError(path, 0, "", "no data rows")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(names):
            raise _wrong_width(path, line, len(row), names)
    transposed = zip(*rows, strict=True)
    columns = {n: pl.Series(n, list(col), dtype=pl.String) for n, col in zip(names, transposed, strict=True)}
    return _Table(path, columns, np.asarray(lines, dtype=np.int64))


# --------------------------------------------------------------------------- vectorised checks


class _Checks:
    """Collects the first failure of each vectorised check; raises the one on the earliest line."""

    def __init__(self, table: _Table) -> None:
        self.table = table
        self.errors: list[TraceError] = []

    def fail(self, i: int, field: str, message: str) -> None:
        self.errors.append(TraceError(self.table.path, int(self.table.lines[i]), field, message))

    def fail_first(self, mask: _BoolArray | pl.Series, field: str, message: Callable[[int], str]) -> None:
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
    ) -> tuple[_FloatArray, _BoolArray]:
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


def _seconds_to_ms(seconds: _FloatArray) -> _IntArray:
    # np.rint, not truncation: "66.0" s is 66000 ms and float noise such as 0.0009999 s must not lose 1 ms.
    return np.rint(seconds * _MS_PER_S).astype(np.int64)


# --------------------------------------------------------------------------- parsed form

# A column of a parsed file: Polars strings, a NumPy array, or a plain Python list.
_Column = pl.Series | npt.NDArray[Any] | list[Any]


@dataclasses.dataclass(slots=True)
class _Parsed:
    """A whole file, validated, as columns in file order (before filtering and sorting)."""

    submit_ms: _IntArray
    fields: dict[str, _Column]  # WorkloadJob field name -> column (submit_ms excluded)
    origin_is_wallclock: bool = False  # submit_ms counts ms since 1970 of a naive wall clock


_JOB_FIELDS: Final = tuple(dataclasses.fields(WorkloadJob))


def _gather(column: _Column, order: _IntArray) -> list[Any]:
    if isinstance(column, pl.Series):
        return column.gather(order).to_list()
    if isinstance(column, np.ndarray):
        return column[order].tolist()  # type: ignore[no-any-return]
    return [column[i] for i in order.tolist()]


def _build_jobs(parsed: _Parsed, order: _IntArray, submit_ms: _IntArray) -> list[WorkloadJob]:
    """Construct the selected rows; positional ``map`` is the fastest way to build dataclasses."""
    columns: list[Iterable[Any]] = []
    for f in _JOB_FIELDS:
        if f.name == "submit_ms":
            columns.append(submit_ms.tolist())
        elif f.name in parsed.fields:
            columns.append(_gather(parsed.fields[f.name], order))
        else:
            columns.append(itertools.repeat(f.default))
    return list(map(WorkloadJob, *columns))


def _constant(value: str, n: int) -> pl.Series:
    return pl.Series([value], dtype=pl.String).extend_constant(value, n - 1)


def _numbered(prefix: str, n: int) -> pl.Series:
    """``prefix0``, ``prefix1``, ... built in Polars (82k f-strings cost more than the parse)."""
    return pl.select(pl.format(prefix + "{}", pl.int_range(n, eager=False))).to_series()


# --------------------------------------------------------------------------- formats


def _parse_philly(path: Path, text: str) -> _Parsed:
    table = _read_table(str(path), text, ",", quoted=True, required=_PHILLY_COLUMNS)
    checks = _Checks(table)
    raw_ts = table.columns["timestamp"]
    stamps = (
        raw_ts.str.strip_chars()
        .str.strptime(pl.Datetime("ms"), _TIMESTAMP_FORMAT, strict=False)
        .dt.epoch("ms")
    )
    checks.fail_first(
        stamps.is_null(), "timestamp", lambda i: f"not a 'YYYY-MM-DD HH:MM:SS' timestamp: {raw_ts[i]!r}"
    )
    duration, _ = checks.numbers("duration", minimum=0, what="negative duration")
    gpus, _ = checks.numbers("num_gpus", integral=True, minimum=1, what="num_gpus must be >= 1")
    tenants = checks.nonempty("cluster")
    checks.raise_first()
    return _Parsed(
        submit_ms=stamps.fill_null(0).to_numpy().astype(np.int64),
        fields={
            "id": _numbered("philly-", len(table)),
            "duration_ms": _seconds_to_ms(duration),
            "gpus": gpus.astype(np.int64),
            "tenant": tenants,
            "source_line": table.lines,
        },
        origin_is_wallclock=True,
    )


def _parse_itp(path: Path, text: str, *, elasticflow: bool) -> _Parsed:
    columns = _ITP_EF_COLUMNS if elasticflow else _ITP_RAW_COLUMNS
    table = _read_table(str(path), text, ",", quoted=True, required=columns)
    checks = _Checks(table)
    ids = checks.nonempty("job_id")
    checks.unique(ids, "job_id")
    submit, _ = checks.numbers("submission_time", minimum=0, what="negative submission_time")
    duration, _ = checks.numbers("duration", minimum=0, what="negative duration")
    gpus, _ = checks.numbers("num_gpu", integral=True, minimum=1, what="num_gpu must be >= 1")
    fields: dict[str, _Column] = {}
    if elasticflow:
        fields["workload_class"] = checks.nonempty("model_name")
        # num_iteration, deadline and batch_size were generated by the ElasticFlow authors and
        # have no WorkloadJob field; they are only checked to be numbers.
        for name in ("num_iteration", "deadline", "batch_size"):
            checks.numbers(name, minimum=0)
    checks.raise_first()
    fields |= {
        "id": ids,
        "duration_ms": _seconds_to_ms(duration),
        "gpus": gpus.astype(np.int64),
        "tenant": _constant(f"itp-{path.stem}", len(table)),
        "source_line": table.lines,
    }
    return _Parsed(submit_ms=_seconds_to_ms(submit), fields=fields)


def _parse_gavel(path: Path, text: str) -> _Parsed:
    shown = str(path)
    first_row = next(line for line in text.split("\n") if line.strip())
    width = first_row.rstrip("\r").count("\t") + 1
    if width == len(_GAVEL_MSR_FIELDS):
        names: Sequence[str] = _GAVEL_MSR_FIELDS
    elif width == len(_GAVEL_PHYSICAL_FIELDS):
        names = _GAVEL_PHYSICAL_FIELDS
    else:
        line = text.split("\n").index(first_row) + 1
        raise TraceError(shown, line, "", f"wrong column count: {width} fields, a Gavel trace has 7 or 10")
    table = _read_table(shown, text, "\t", quoted=False, names=names)
    checks = _Checks(table)
    steps, _ = checks.numbers("total_steps", minimum=0, what="negative total_steps")
    arrival, _ = checks.numbers("arrival_time", minimum=0, what="negative arrival_time")
    scale, _ = checks.numbers("scale_factor", integral=True, minimum=1, what="scale_factor must be >= 1")
    job_types = table.columns["job_type"].str.strip_chars()
    scale_factors = scale.astype(np.int64)
    throughput = np.ones(len(table), dtype=np.float64)
    for i, (job_type, sf) in enumerate(zip(job_types.to_list(), scale_factors.tolist(), strict=True)):
        tput = _gavel_throughput(job_type, sf)
        if tput is None:
            checks.fail(i, "job_type", f"unknown Gavel job type {job_type!r}")
            break
        throughput[i] = tput
    checks.raise_first()
    return _Parsed(
        submit_ms=_seconds_to_ms(arrival),
        fields={
            "id": _numbered(f"{path.stem}-", len(table)),
            "duration_ms": _seconds_to_ms(steps / throughput),
            "gpus": scale_factors,
            "tenant": _constant(path.stem, len(table)),
            "workload_class": job_types,
            "source_line": table.lines,
        },
    )


def _parse_pollux(path: Path, text: str) -> _Parsed:
    table = _read_table(str(path), text, ",", quoted=True, required=_POLLUX_COLUMNS)
    checks = _Checks(table)
    names = checks.nonempty("name")
    checks.unique(names, "name")
    submit, _ = checks.numbers("time", minimum=0, what="negative time")
    replicas, _ = checks.numbers("num_replicas", integral=True, minimum=1, what="num_replicas must be >= 1")
    checks.numbers("batch_size", integral=True, minimum=1)
    applications = table.columns["application"].str.strip_chars()
    gpu_hours = applications.replace_strict(
        dict(POLLUX_TYPICAL_GPU_HOURS), default=None, return_dtype=pl.Float64
    )
    checks.fail_first(
        gpu_hours.is_null(),
        "application",
        lambda i: f"unknown application {applications[i]!r} (no typical duration known)",
    )
    checks.raise_first()
    hours = gpu_hours.fill_null(0.0).to_numpy()
    return _Parsed(
        submit_ms=_seconds_to_ms(submit),
        fields={
            "id": names,
            "duration_ms": _seconds_to_ms(hours * 3600.0 / replicas),
            "gpus": replicas.astype(np.int64),
            "tenant": _constant(path.stem, len(table)),
            "workload_class": applications,
            "source_line": table.lines,
        },
    )


def _parse_tiresias(path: Path, text: str) -> _Parsed:
    table = _read_table(str(path), text, ",", quoted=True, required=_TIRESIAS_COLUMNS)
    checks = _Checks(table)
    ids = checks.nonempty("job_id")
    checks.unique(ids, "job_id")
    gpus, _ = checks.numbers("num_gpu", integral=True, minimum=1, what="num_gpu must be >= 1")
    submit, _ = checks.numbers("submit_time", minimum=0, what="negative submit_time")
    duration, _ = checks.numbers("duration", minimum=0, what="negative duration")
    for name in ("iterations", "interval"):
        checks.numbers(name, minimum=0)
    classes = checks.nonempty("model_name")
    checks.raise_first()
    return _Parsed(
        submit_ms=_seconds_to_ms(submit),
        fields={
            "id": f"{path.stem}-" + ids,
            "duration_ms": _seconds_to_ms(duration),
            "gpus": gpus.astype(np.int64),
            "tenant": _constant(path.stem, len(table)),
            "workload_class": classes,
            "source_line": table.lines,
        },
    )


# --- native ------------------------------------------------------------------------------


def _native_defaults() -> dict[str, Any]:
    """Defaults of the optional native columns; an absent id is "" (numbered by ``_finish_native``)."""
    defaults = {f.name: f.default for f in _JOB_FIELDS if f.default is not dataclasses.MISSING}
    return defaults | {"id": ""}


def _parse_native_csv(path: Path, text: str) -> _Parsed:
    shown = str(path)
    table = _read_table(shown, text, ",", quoted=True, required=_NATIVE_REQUIRED, allowed=NATIVE_COLUMNS)
    checks = _Checks(table)
    defaults = _native_defaults()
    fields: dict[str, _Column] = {}
    submit_ms: _IntArray = np.zeros(len(table), dtype=np.int64)
    for column, field in _NATIVE_SECONDS.items():
        if column not in table.columns:
            continue
        optional = column not in _NATIVE_REQUIRED
        seconds, empty = checks.numbers(column, minimum=0, optional=optional)
        ms = _seconds_to_ms(seconds)
        if optional:  # required columns have no default; their empty cells are errors already
            ms[empty] = defaults[field]
        if field == "submit_ms":
            submit_ms = ms
        else:
            fields[field] = ms
    for column, minimum in _NATIVE_INTS.items():
        if column not in table.columns:
            continue
        optional = column not in _NATIVE_REQUIRED
        values, empty = checks.numbers(column, integral=True, minimum=minimum, optional=optional)
        ints = values.astype(np.int64)
        if optional:
            ints[empty] = defaults[column]
        fields[column] = ints
    for column in _NATIVE_STRINGS:
        if column not in table.columns:
            continue
        if column in _NATIVE_REQUIRED:
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


def _parse_native_jsonl(path: Path, text: str) -> _Parsed:
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
            if value is None and name in _NATIVE_REQUIRED:
                raise TraceError(shown, line_no, name, "missing value")
            columns[name].append(_check_json_value(shown, line_no, name, value))
        lines.append(line_no)
    submit_ms: _IntArray = np.zeros(len(lines), dtype=np.int64)
    fields: dict[str, _Column] = {}
    for column, field in _NATIVE_SECONDS.items():
        ms = [defaults[field] if v is None else round(v * _MS_PER_S) for v in columns[column]]
        if field == "submit_ms":
            submit_ms = np.asarray(ms, dtype=np.int64)
        else:
            fields[field] = ms
    for column in (*_NATIVE_INTS, *_NATIVE_STRINGS):
        fields[column] = [defaults[column] if v is None else v for v in columns[column]]
    for column in _NATIVE_LISTS:
        fields[column] = [() if v is None else tuple(v) for v in columns[column]]
    table = _Table(shown, {}, np.asarray(lines, dtype=np.int64))
    return _finish_native(table, path, submit_ms, fields)


def _check_json_value(path: str, line: int, name: str, value: Any) -> Any:
    """Validate one JSONL value against its column's type and range; None = not given."""
    if value is None:
        return None
    if name in _NATIVE_SECONDS or name in _NATIVE_INTS:
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
    if name in _NATIVE_REQUIRED and not value.strip():
        raise TraceError(path, line, name, "missing value")
    return value or None


def _finish_native(table: _Table, path: Path, submit_ms: _IntArray, fields: dict[str, _Column]) -> _Parsed:
    # Rows without an id are numbered by data row, like the Philly reader's ids.
    auto_ids = _numbered(f"{path.stem}-", len(table))
    given = fields.get("id")
    if given is None:
        ids = auto_ids
    else:
        given_ids = pl.Series("id", given, dtype=pl.String) if not isinstance(given, pl.Series) else given
        ids = given_ids.zip_with(given_ids.str.len_chars() > 0, auto_ids)
    checks = _Checks(table)
    checks.unique(ids, "id")
    checks.raise_first()
    fields["id"] = ids
    fields["source_line"] = table.lines
    return _Parsed(submit_ms=submit_ms, fields=fields)


def _parse_native(path: Path, text: str) -> _Parsed:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _parse_native_jsonl(path, text)
    if suffix == ".csv":
        return _parse_native_csv(path, text)
    raise TraceError(
        str(path), 0, "", f"native workloads are .csv or .jsonl, not {suffix or 'no extension'!r}"
    )


# --------------------------------------------------------------------------- detection & API


def _detect_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "native"
    if suffix == ".trace":
        return "gavel"
    first_line = next(line for line in text.splitlines() if line.strip())
    if "\t" in first_line:
        return "gavel"
    header = {h.strip() for h in next(csv.reader([first_line]))}
    if header == set(_PHILLY_COLUMNS):
        return "philly"
    if header == set(_ITP_RAW_COLUMNS):
        return "itp-raw"
    if header == set(_ITP_EF_COLUMNS):
        return "itp-elasticflow"
    if header == set(_POLLUX_COLUMNS):
        return "pollux"
    if header == set(_TIRESIAS_COLUMNS):
        return "tiresias"
    if header >= _NATIVE_REQUIRED:
        return "native"
    line = text[: text.find(first_line)].count("\n") + 1
    raise TraceError(str(path), line, "", "unrecognised trace header; pass fmt= explicitly")


_PARSERS: Final[dict[str, Callable[[Path, str], _Parsed]]] = {
    "philly": _parse_philly,
    "itp-raw": lambda p, t: _parse_itp(p, t, elasticflow=False),
    "itp-elasticflow": lambda p, t: _parse_itp(p, t, elasticflow=True),
    "gavel": _parse_gavel,
    "pollux": _parse_pollux,
    "tiresias": _parse_tiresias,
    "native": _parse_native,
}


def _wallclock_bound(value: str, *, is_end: bool) -> int:
    """A 'YYYY-MM-DD[ HH:MM:SS]' bound as naive ms since 1970; a bare date as ``end`` = whole day."""
    text = value.strip()
    for fmt in (_TIMESTAMP_FORMAT, "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if is_end and fmt == "%Y-%m-%d":
            moment += timedelta(days=1) - timedelta(milliseconds=1)
        return round((moment - datetime(1970, 1, 1)).total_seconds() * _MS_PER_S)
    raise ValueError(f"bound {value!r} is not 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'")


def _offset_bound(value: str, fmt: str) -> int:
    """A bound for a trace with relative times: seconds from the trace's own origin."""
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(
            f"format {fmt!r} has relative submit times: start/end are seconds from the trace origin, "
            f"not {value!r}"
        ) from None
    if not math.isfinite(seconds):
        raise ValueError(f"bound {value!r} is not a finite number of seconds")
    return round(seconds * _MS_PER_S)


def read_trace(
    path: str | Path,
    fmt: str = "auto",
    *,
    start: str | None = None,
    end: str | None = None,
    tenants: Collection[str] | None = None,
) -> list[WorkloadJob]:
    """Read a workload file as jobs sorted by ``(submit_ms, row order in the file)``.

    ``fmt``: one of ``TRACE_FORMATS`` or ``"auto"`` (by extension, header and field count).
    ``start``/``end``: inclusive submit-time window. For ``philly`` they are wall-clock
    ``"YYYY-MM-DD HH:MM:SS"`` or ``"YYYY-MM-DD"`` (a bare date as ``end`` includes that whole
    day); for the other formats, whose times are relative, seconds from the trace origin
    (e.g. ``"86400"``). ``tenants``: keep only these tenants.

    ``submit_ms`` is measured from ``start`` when it is given; otherwise from the trace's own
    origin, which for ``philly`` (absolute timestamps) is the earliest timestamp in the whole
    file, so the times of a job do not depend on ``end`` or ``tenants``.

    Raises ``TraceError`` (file, 1-based line, field) for any malformed row, an empty file or
    an unknown format, before returning anything; ``ValueError`` for a malformed bound.
    """
    path = Path(path)
    shown = str(path)
    if isinstance(tenants, str):
        # A str is a Collection[str] of its characters: almost certainly a mistake.
        raise TypeError(f"tenants must be a collection of tenant names, not the string {tenants!r}")
    if fmt != "auto" and fmt not in TRACE_FORMATS:
        raise TraceError(shown, 0, "fmt", f"unknown format {fmt!r}; expected one of {TRACE_FORMATS}")
    text = _read_text(path)
    chosen = _detect_format(path, text) if fmt == "auto" else fmt
    parsed = _PARSERS[chosen](path, text)
    submit = parsed.submit_ms

    if parsed.origin_is_wallclock:
        lo = _wallclock_bound(start, is_end=False) if start is not None else None
        hi = _wallclock_bound(end, is_end=True) if end is not None else None
        origin = lo if lo is not None else int(submit.min())
    else:
        lo = _offset_bound(start, chosen) if start is not None else None
        hi = _offset_bound(end, chosen) if end is not None else None
        origin = lo if lo is not None else 0

    keep = np.ones(submit.shape[0], dtype=np.bool_)
    if lo is not None:
        keep &= submit >= lo
    if hi is not None:
        keep &= submit <= hi
    if tenants is not None:
        tenant_column = parsed.fields["tenant"]
        tenant_series = (
            tenant_column if isinstance(tenant_column, pl.Series) else pl.Series(list(tenant_column))
        )
        keep &= tenant_series.is_in(list(set(tenants))).to_numpy()
    selected = np.flatnonzero(keep)
    # Stable sort: equal submit times keep the file's row order.
    order = selected[np.argsort(submit[selected], kind="stable")]
    return _build_jobs(parsed, order, submit[order] - origin)


# --------------------------------------------------------------------------- writer


def _ms_to_seconds_text(ms: int) -> str:
    """Exact decimal seconds for an integer ms count (no float rounding on the way out)."""
    whole, frac = divmod(ms, _MS_PER_S)
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
                row[column] = ms // _MS_PER_S if ms % _MS_PER_S == 0 else ms / _MS_PER_S
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
