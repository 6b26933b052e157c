"""Pollux and Sia workloads ``name,time,application,num_replicas,batch_size``.

This module owns reading them and the typical GPU-hours that stand in for their durations
(the files carry none): ``duration_ms`` = typical GPU-hours of the application /
``num_replicas``; ``application`` -> ``workload_class``; ``tenant`` = file stem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import polars as pl

from gpupool.sim.trace.checks import Checks
from gpupool.sim.trace.parsed import Parsed, one_tenant_file
from gpupool.sim.trace.table import read_table

POLLUX_COLUMNS: Final = ("name", "time", "application", "num_replicas", "batch_size")

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


def parse_pollux(path: Path, text: str) -> Parsed:
    table = read_table(str(path), text, ",", quoted=True, required=POLLUX_COLUMNS)
    checks = Checks(table)
    names = checks.unique_ids("name")
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
    return one_tenant_file(
        table,
        path.stem,
        ids=names,
        submit_s=submit,
        duration_s=hours * 3600.0 / replicas,
        gpus=replicas,
        workload_class=applications,
    )
