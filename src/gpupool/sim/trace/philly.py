"""The Microsoft Philly per-job table ``timestamp,duration,num_gpus,gpu_time,cluster``.

This module owns reading it: ``tenant`` = virtual cluster (``cluster``), ``id`` =
``philly-<0-based data row>``, and ``submit_ms`` wall-clock ms since 1970, the only
format with absolute times (``read_trace`` takes its origin from the file or ``start``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from gpupool.sim.trace.checks import Checks
from gpupool.sim.trace.parsed import Parsed, numbered, seconds_to_ms
from gpupool.sim.trace.table import read_table

PHILLY_COLUMNS: Final = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
TIMESTAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


def parse_philly(path: Path, text: str) -> Parsed:
    table = read_table(str(path), text, ",", quoted=True, required=PHILLY_COLUMNS)
    checks = Checks(table)
    raw_ts = table.columns["timestamp"]
    stamps = (
        raw_ts.str.strip_chars()
        .str.strptime(pl.Datetime("ms"), TIMESTAMP_FORMAT, strict=False)
        .dt.epoch("ms")
    )
    checks.fail_first(
        stamps.is_null(), "timestamp", lambda i: f"not a 'YYYY-MM-DD HH:MM:SS' timestamp: {raw_ts[i]!r}"
    )
    duration, _ = checks.numbers("duration", minimum=0, what="negative duration")
    gpus, _ = checks.numbers("num_gpus", integral=True, minimum=1, what="num_gpus must be >= 1")
    tenants = checks.nonempty("cluster")
    checks.raise_first()
    return Parsed(
        submit_ms=stamps.fill_null(0).to_numpy().astype(np.int64),
        fields={
            "id": numbered("philly-", len(table)),
            "duration_ms": seconds_to_ms(duration),
            "gpus": gpus.astype(np.int64),
            "tenant": tenants,
            "source_line": table.lines,
        },
        origin_is_wallclock=True,
    )
