"""``read_trace``: a workload file of any format as ``WorkloadJob`` objects, windowed and sorted.

This module owns the entry point: choosing the reader (``fmt`` or detection), the
submit-time window (wall-clock bounds for Philly, seconds from the origin otherwise), the
tenant filter and the order of the jobs. Parsing is the format modules'.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from gpupool.sim.trace.detection import TRACE_FORMATS, detect_format
from gpupool.sim.trace.gavel import parse_gavel
from gpupool.sim.trace.itp import parse_itp
from gpupool.sim.trace.native import parse_native
from gpupool.sim.trace.parsed import MS_PER_S, Parsed, build_jobs
from gpupool.sim.trace.philly import TIMESTAMP_FORMAT, parse_philly
from gpupool.sim.trace.pollux import parse_pollux
from gpupool.sim.trace.table import read_text
from gpupool.sim.trace.tiresias import parse_tiresias
from gpupool.sim.workload import TraceError, WorkloadJob

_PARSERS: Final[dict[str, Callable[[Path, str], Parsed]]] = {
    "philly": parse_philly,
    "itp-raw": lambda p, t: parse_itp(p, t, elasticflow=False),
    "itp-elasticflow": lambda p, t: parse_itp(p, t, elasticflow=True),
    "gavel": parse_gavel,
    "pollux": parse_pollux,
    "tiresias": parse_tiresias,
    "native": parse_native,
}


def _wallclock_bound(value: str, *, is_end: bool) -> int:
    """A 'YYYY-MM-DD[ HH:MM:SS]' bound as naive ms since 1970; a bare date as ``end`` = whole day."""
    text = value.strip()
    for fmt in (TIMESTAMP_FORMAT, "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if is_end and fmt == "%Y-%m-%d":
            moment += timedelta(days=1) - timedelta(milliseconds=1)
        return round((moment - datetime(1970, 1, 1)).total_seconds() * MS_PER_S)
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
    return round(seconds * MS_PER_S)


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
    text = read_text(path)
    chosen = detect_format(path, text) if fmt == "auto" else fmt
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
    return build_jobs(parsed, order, submit[order] - origin)
