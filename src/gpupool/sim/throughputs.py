"""Shipped throughput tables, loaded into the core's ``ThroughputTable``.

This module owns reading measured throughput data that ships with gpupool into the form
the scheduling core and the twin's runtime model use:

* ``gavel_throughputs``: Gavel's isolated throughputs (steps/s) of its 26 job types on
  V100, P100 and K80, per scale factor (``gavel-throughputs/simulation_throughputs.json``,
  the table Gavel's paper simulations use; see its SOURCE.md for origin and licence);
* ``gavel_throughput_table``: the same as a ``ThroughputTable`` over the catalogue's model
  names (``V100``, ``P100``, ``K80``) with V100 as the reference model, so that the
  durations of ``generate_gavel`` (on a V100) stretch to the placed model.

Gavel writes 0 where a job type does not fit a model's memory (ResNet-50 at batch size
128 on 2, 4 or 8 K80s). A ``ThroughputTable`` refuses zeros (a zero throughput is a job
that never ends), so those three gang-size rows are left out and such jobs fall back to
their 1-GPU ratios: slow on a K80, as their 1-GPU figure (0.14 of a V100) says. The
default row (for classes not in the table) is the geometric mean of the 1-GPU rows.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from gpupool.core.accelerator import DEFAULT_CLASS
from gpupool.core.throughput import RowKey, ThroughputTable
from gpupool.sim.trace import shipped_trace

#: Gavel's worker types and the catalogue's names for them.
GAVEL_MODELS: Mapping[str, str] = MappingProxyType({"v100": "V100", "p100": "P100", "k80": "K80"})


@lru_cache(maxsize=1)
def gavel_throughputs() -> Mapping[tuple[str, int], Mapping[str, float]]:
    """Gavel's isolated throughputs (steps/s): ``(job type, scale factor) -> {model: figure}``.

    Models are the catalogue's names (``V100``, ``P100``, ``K80``); 83 keys (26 job types at
    scale factor 1, the 19 distributed-capable ones also at 2, 4 and 8). Zeros are kept.
    """
    with shipped_trace("gavel-throughputs/simulation_throughputs.json").open(encoding="utf-8") as f:
        table = json.load(f)
    out: dict[tuple[str, int], dict[str, float]] = {}
    for worker, model in GAVEL_MODELS.items():
        for key, entry in table[worker].items():
            # Keys are Python tuple reprs, "('ResNet-50 (batch size 64)', 1)": literal_eval is safe.
            job_type, scale_factor = ast.literal_eval(key)
            out.setdefault((str(job_type), int(scale_factor)), {})[model] = float(entry["null"])
    return MappingProxyType({k: MappingProxyType(v) for k, v in out.items()})


@lru_cache(maxsize=1)
def gavel_throughput_table() -> ThroughputTable:
    """Gavel's table as a ``ThroughputTable`` (reference V100); see the module docstring."""
    raw = gavel_throughputs()
    models = list(GAVEL_MODELS.values())
    rows: dict[RowKey, Mapping[str, float]] = {}
    for (job_type, sf), figures in sorted(raw.items()):
        if any(v <= 0 for v in figures.values()):
            continue  # does not fit a model's memory at this size: see the module docstring
        rows[job_type if sf == 1 else (job_type, sf)] = figures
    singles = [raw[k] for k in raw if k[1] == 1]
    rows[DEFAULT_CLASS] = {
        m: math.exp(sum(math.log(r[m] / r["V100"]) for r in singles) / len(singles)) for m in models
    }
    return ThroughputTable(rows, models=models, reference="V100")
