"""The runtime model of the digital twin: how long a job's work takes where it is placed.

This module owns the translation from a job's work (its run time on a reference
accelerator) to wall time on the accelerator it was placed on, what a preemption throws
away, and what a restart costs. The scheduling core never sees these numbers except as the
estimates jobs declare.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.core.accelerator import Catalogue
from gpupool.core.throughput import ThroughputTable


@dataclass(frozen=True, slots=True)
class RuntimeModel:
    """Durations scaled by relative throughput; restarts cost a size-dependent overhead.

    ``reference_model`` None means a trace's durations are taken as they are on every model
    (the right reading of a single-model trace such as Philly's). The default restart
    overhead is the Helios simulator's checkpoint cost: 7 s for 1 accelerator, 30 s up to 8,
    60 s beyond. ``throughputs`` (e.g. Gavel's per-job-type table) replaces the catalogue's
    per-class figures, per gang size where it has them; durations are then on
    ``reference_model``, or on the table's reference model when that is None.
    """

    catalogue: Catalogue
    reference_model: str | None = None
    overhead_1_ms: int = 7_000
    overhead_node_ms: int = 30_000
    overhead_multi_ms: int = 60_000
    throughputs: ThroughputTable | None = None

    def speed(self, model: str, workload_class: str, gpus: int = 1) -> float:
        """Work (reference ms) done per wall ms on ``model`` by a ``gpus``-accelerator job."""
        t = self.throughputs
        if t is not None:
            on = self.reference_model or t.reference
            return t.speed(workload_class, model, gpus) / t.speed(workload_class, on, gpus)
        if self.reference_model is None:
            return 1.0
        ref = self.catalogue[self.reference_model].speed(workload_class)
        return self.catalogue[model].speed(workload_class) / ref

    def wall_ms(self, work_ms: float, model: str, workload_class: str, gpus: int = 1) -> int:
        """Wall time to do ``work_ms`` of reference work on ``model`` (at least 1 ms)."""
        return max(1, round(work_ms / self.speed(model, workload_class, gpus)))

    def restart_overhead_ms(self, gpus: int) -> int:
        if gpus <= 1:
            return self.overhead_1_ms
        if gpus <= 8:
            return self.overhead_node_ms
        return self.overhead_multi_ms

    @staticmethod
    def kept_work(done_ms: float, elapsed_ms: int, checkpoint_interval_ms: int) -> float:
        """Work kept after a preemption: what was done up to the last checkpoint.

        With no checkpoint interval nothing of the interrupted attempt survives.
        """
        if checkpoint_interval_ms <= 0 or elapsed_ms <= 0:
            return 0.0
        kept_wall = elapsed_ms - elapsed_ms % checkpoint_interval_ms
        return done_ms * kept_wall / elapsed_ms
