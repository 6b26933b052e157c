"""Tiresias simulator inputs ``job_id,num_gpu,submit_time,iterations,model_name,duration,interval``.

This module owns reading them (the shipped ``tiresias/60_job.csv``): ``id`` =
``<file stem>-<job_id>``, ``model_name`` -> ``workload_class``, ``tenant`` = file stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from gpupool.sim.trace.checks import Checks
from gpupool.sim.trace.parsed import Parsed, one_tenant_file
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
    ids = checks.unique_ids("job_id")
    gpus, _ = checks.numbers("num_gpu", integral=True, minimum=1, what="num_gpu must be >= 1")
    submit, _ = checks.numbers("submit_time", minimum=0, what="negative submit_time")
    duration, _ = checks.numbers("duration", minimum=0, what="negative duration")
    for name in ("iterations", "interval"):
        checks.numbers(name, minimum=0)
    classes = checks.nonempty("model_name")
    checks.raise_first()
    return one_tenant_file(
        table,
        path.stem,
        ids=f"{path.stem}-" + ids,
        submit_s=submit,
        duration_s=duration,
        gpus=gpus,
        workload_class=classes,
    )
