"""A workload: the jobs a simulation submits, as neutral records read from traces or generated.

This module owns ``WorkloadJob`` (one job of a workload, in the units of the core: integer
milliseconds) and ``TraceError`` (a malformed trace row, naming file, line and field).
It does not read files (see ``gpupool.sim.trace``) nor schedule anything.
"""

from __future__ import annotations

from dataclasses import dataclass


class TraceError(ValueError):
    """A trace or workload file that cannot be read; names the file, line and field."""

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: field {field!r}: {message}")


@dataclass(frozen=True, slots=True)
class WorkloadJob:
    """One job of a workload.

    ``duration_ms`` is the run time on the reference accelerator of ``workload_class``
    (the runtime model scales it by the placed model's relative throughput).
    ``gpus_per_worker`` 0 means the trace did not say how the gang is shaped: the job's
    ``gpus`` are then packed onto as few nodes as possible.
    ``walltime_ms`` 0 means unknown (the simulator then uses the true duration, i.e. a
    perfect user estimate, which is how EASY backfill is usually evaluated on traces).
    """

    id: str
    submit_ms: int
    duration_ms: int
    gpus: int
    tenant: str
    user: str = ""
    gpus_per_worker: int = 0
    models: tuple[str, ...] = ()
    min_memory_gib: int = 0
    stacks: tuple[str, ...] = ()
    topology: str = "any"
    workload_class: str = "default"
    walltime_ms: int = 0
    priority_class: str = "normal"
    checkpoint_interval_ms: int = 0
    kind: str = "training"
    source_line: int = 0
    #: jobs it waits for, as Slurm's ``--dependency`` (``afterok:a:b,afterany:c``; ids of
    #: this workload): pipelines in the twin (``gpupool.core.dependencies``)
    dependency: str = ""
    #: a job array of like tasks, as Slurm's ``--array`` (``0-99%10``): tasks ``ID_INDEX``
    array: str = ""
    # a fraction of one accelerator (gpupool.core.fraction_spec); the native format's columns
    mig: str = ""
    mig_count: int = 0
    gpu_fraction: float = 0.0
    gpu_memory_gib: float = 0.0
