"""Tiresias simulator inputs ``job_id,num_gpu,submit_time,iterations,model_name,duration,interval``.

This module owns reading them (the shipped ``tiresias/60_job.csv``): ``id`` =
``<file stem>-<job_id>``, ``model_name`` -> ``workload_class``, ``tenant`` = file stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np

from gpupool.sim.trace.checks import Checks
from gpupool.sim.trace.parsed import Parsed, constant, seconds_to_ms
from gpupool.sim.trace.table import read_table

TIRESIAS_COLUMNS: Final = (
    "job_id",
    "num_gpu",
    "submit_time",
    "iterations",
    "model_name",
    "duration",
    "interval",
)


def parse_tiresias(path: Path, text: str) -> Parsed:
    table = read_table(str(path), text, ",", quoted=True, required=TIRESIAS_COLUMNS)
    checks = Checks(table)
    ids = checks.nonempty("job_id")
    checks.unique(ids, "job_id")
    gpus, _ = checks.numbers("num_gpu", integral=True, minimum=1, what="num_gpu must be >= 1")
    submit, _ = checks.numbers("submit_time", minimum=0, what="negative submit_time")
    duration, _ = checks.numbers("duration", minimum=0, what="negative duration")
    for name in ("iterations", "interval"):
        checks.numbers(name, minimum=0)
    classes = checks.nonempty("model_name")
    checks.raise_first()
    return Parsed(
        submit_ms=seconds_to_ms(submit),
        fields={
            "id": f"{path.stem}-" + ids,
            "duration_ms": seconds_to_ms(duration),
            "gpus": gpus.astype(np.int64),
            "tenant": constant(path.stem, len(table)),
            "workload_class": classes,
            "source_line": table.lines,
        },
    )
