"""Trace format names and telling a file's format from its extension, header and field count.

This module owns ``TRACE_FORMATS`` and ``detect_format``, which ``read_trace`` uses for
``fmt="auto"``; the formats' own columns belong to their readers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

from gpupool.sim.trace.itp import ITP_EF_COLUMNS, ITP_RAW_COLUMNS
from gpupool.sim.trace.native import NATIVE_REQUIRED
from gpupool.sim.trace.philly import PHILLY_COLUMNS
from gpupool.sim.trace.pollux import POLLUX_COLUMNS
from gpupool.sim.trace.tiresias import TIRESIAS_COLUMNS
from gpupool.sim.workload import TraceError

TRACE_FORMATS: Final[tuple[str, ...]] = (
    "philly",
    "itp-raw",
    "itp-elasticflow",
    "gavel",
    "pollux",
    "tiresias",
    "native",
)


def detect_format(path: Path, text: str) -> str:
    """The format of ``text`` read from ``path``; ``TraceError`` on the header line if none fits."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "native"
    if suffix == ".trace":
        return "gavel"
    first_line = next(line for line in text.splitlines() if line.strip())
    if "\t" in first_line:
        return "gavel"
    header = {h.strip() for h in next(csv.reader([first_line]))}
    if header == set(PHILLY_COLUMNS):
        return "philly"
    if header == set(ITP_RAW_COLUMNS):
        return "itp-raw"
    if header == set(ITP_EF_COLUMNS):
        return "itp-elasticflow"
    if header == set(POLLUX_COLUMNS):
        return "pollux"
    if header == set(TIRESIAS_COLUMNS):
        return "tiresias"
    if header >= NATIVE_REQUIRED:
        return "native"
    line = text[: text.find(first_line)].count("\n") + 1
    raise TraceError(str(path), line, "", "unrecognised trace header; pass fmt= explicitly")
