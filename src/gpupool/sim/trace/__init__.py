"""Trace readers: public GPU-cluster traces and our native workload files, as ``WorkloadJob`` lists.

This package owns parsing and validating every workload file format the simulator accepts
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

Modules: ``reader`` (``read_trace``: format choice, window, tenant filter, order),
``detection`` (format names, ``fmt="auto"``), ``table`` (text to string columns with line
numbers), ``checks`` (row errors), ``parsed`` (the readers' common result and building the
jobs), ``shipped`` (the shipped files), and one module per format family below.

Formats (the shipped copies are described in ``gpupool/data/traces/README.md``):

``philly`` (``philly``)
    Microsoft Philly per-job table ``timestamp,duration,num_gpus,gpu_time,cluster``.
    ``tenant`` = virtual cluster; ``id`` = ``philly-<0-based data row>``.
``itp-raw`` / ``itp-elasticflow`` (``itp``)
    Microsoft ITP clusters (ElasticFlow release). ``tenant`` = ``itp-<file stem>``
    (the files have no tenant column); ElasticFlow's ``model_name`` -> ``workload_class``.
``gavel`` (``gavel``)
    Gavel ``.trace`` files (tab-separated, 7 or 10 fields). ``duration_ms`` =
    ``total_steps`` / V100 throughput at the job's scale factor; ``tenant`` = file stem.
``pollux`` (``pollux``)
    Pollux and Sia workloads ``name,time,application,num_replicas,batch_size``; durations
    are estimates from ``POLLUX_TYPICAL_GPU_HOURS`` (the files carry none).
``tiresias`` (``tiresias``)
    Tiresias simulator inputs ``job_id,num_gpu,submit_time,iterations,model_name,duration,interval``
    (the shipped ``tiresias/60_job.csv``). ``model_name`` -> ``workload_class``; ``tenant`` = file stem.
``native`` (``native``)
    Our own format, ``.csv`` or ``.jsonl``, see ``NATIVE_COLUMNS`` and ``write_native``.
"""

from __future__ import annotations

from gpupool.sim.trace.detection import TRACE_FORMATS
from gpupool.sim.trace.gavel import gavel_v100_throughputs
from gpupool.sim.trace.native import NATIVE_COLUMNS, write_native
from gpupool.sim.trace.pollux import POLLUX_TYPICAL_GPU_HOURS
from gpupool.sim.trace.reader import read_trace
from gpupool.sim.trace.shipped import shipped_trace

__all__ = [
    "NATIVE_COLUMNS",
    "POLLUX_TYPICAL_GPU_HOURS",
    "TRACE_FORMATS",
    "gavel_v100_throughputs",
    "read_trace",
    "shipped_trace",
    "write_native",
]
