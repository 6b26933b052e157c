"""The names of the workloads that ship with gpupool (what ``--workload NAME`` accepts).

Kept apart from ``gpupool.sim.scenario`` so that the live service can list them (the
dashboard's what-if form) without importing the trace readers and their dependencies.
"""

from __future__ import annotations

#: The Microsoft ITP clusters whose traces ship with gpupool.
ITP_CLUSTERS = ("01", "02", "04", "05", "06", "08", "09")
NAMED_WORKLOADS = ("philly", "philly-helios", *(f"itp-{c}" for c in ITP_CLUSTERS), "synthetic")
