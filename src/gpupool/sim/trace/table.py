"""A trace file's text as string columns, with the 1-based physical line of every row.

This module owns reading a trace file's bytes as text, splitting delimited rows into
columns and the file-level errors met on the way (unreadable, not UTF-8, empty, no data
rows, a bad header, a row of the wrong width). Converting and checking the values of the
columns is ``gpupool.sim.trace.checks``'s.

Splitting is column-wise, for speed: lines are split into string columns in Polars, keeping
each row's physical line number; files with quoted fields go through the ``csv`` module
instead, which counts lines itself.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from gpupool.sim.workload import TraceError

IntArray = npt.NDArray[np.int64]


@dataclasses.dataclass(slots=True)
class Table:
    """A delimited file as string columns, with the 1-based physical line of each row."""

    path: str
    columns: dict[str, pl.Series]
    lines: IntArray

    def __len__(self) -> int:
        return int(self.lines.shape[0])


def read_text(path: Path) -> str:
    """The file's text (UTF-8, a BOM dropped); ``TraceError`` if unreadable, not UTF-8 or blank."""
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


def read_table(
    path: str,
    text: str,
    delimiter: str,
    *,
    quoted: bool,
    names: Sequence[str] | None = None,
    required: Collection[str] = (),
    allowed: Collection[str] | None = None,
) -> Table:
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
    return Table(path, columns, numbers)


def _read_table_csv(
    path: str,
    text: str,
    delimiter: str,
    *,
    names: Sequence[str] | None,
    required: Collection[str],
    allowed: Collection[str] | None,
) -> Table:
    """``read_table`` for text with quoted fields, via the ``csv`` module (which counts lines)."""
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
    return Table(path, columns, np.asarray(lines, dtype=np.int64))
