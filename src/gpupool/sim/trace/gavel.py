"""Gavel ``.trace`` files and Gavel's V100 throughput table.

This module owns reading the tab-separated traces (7 fields in the Philly-derived ``msr``
traces, 10 in the physical-cluster ones) and the throughput table (``gavel_v100_throughputs``),
which both this reader and the Gavel generator use. ``duration_ms`` = ``total_steps`` / V100
throughput at the job's scale factor; ``job_type`` -> ``workload_class``; ``tenant`` = file stem.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np

from gpupool.sim.trace.checks import Checks
from gpupool.sim.trace.parsed import Parsed, numbered, one_tenant_file
from gpupool.sim.trace.shipped import shipped_trace
from gpupool.sim.trace.table import read_table
from gpupool.sim.workload import TraceError

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


def parse_gavel(path: Path, text: str) -> Parsed:
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
    table = read_table(shown, text, "\t", quoted=False, names=names)
    checks = Checks(table)
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
    return one_tenant_file(
        table,
        path.stem,
        ids=numbered(f"{path.stem}-", len(table)),
        submit_s=arrival,
        duration_s=steps / throughput,
        gpus=scale_factors,
        workload_class=job_types,
    )
