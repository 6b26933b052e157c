"""Jobs: gangs of task groups with constraints, topology, walltime and a priority class.

This module owns ``JobSpec`` (what was asked for, immutable), ``TaskGroup`` and the
validation of a spec against a fleet (``JobError`` for invalid input). The mutable life of
a job inside the scheduler (pending, running, attained service) lives in
``gpupool.core.scheduler``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.core import fraction_spec
from gpupool.core.array_spec import ArraySpec
from gpupool.core.dependencies import Dependency
from gpupool.core.fleet import Level

#: Priority classes, most important first. ``preemptible`` work may be evicted by anyone.
PRIORITY_CLASSES: dict[str, int] = {"reserved": 0, "high": 1, "normal": 2, "low": 3, "preemptible": 4}
KINDS = ("training", "inference", "interactive")
#: Refuse absurd requests early: nothing in a national pool spans more accelerators.
MAX_GANG_GPUS = 65_536


class JobError(ValueError):
    """An invalid job; the message names the field."""

    def __init__(self, job_id: str, field: str, message: str) -> None:
        self.job_id = job_id
        self.field = field
        super().__init__(f"job {job_id!r}: {field}: {message}")


@dataclass(frozen=True, slots=True)
class TaskGroup:
    """``workers`` workers needing ``gpus_per_worker`` accelerators each, on one node each."""

    workers: int
    gpus_per_worker: int

    @property
    def gpus(self) -> int:
        return self.workers * self.gpus_per_worker


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job asks for. All times in integer milliseconds.

    ``groups`` empty with ``gpus`` > 0 means "pack these accelerators onto as few nodes as
    possible" (what traces say); otherwise the gang is the task groups, all-or-nothing.
    ``duration_hint_ms`` is an estimate of the run time on the reference accelerator (the
    oracle in trace experiments); ``sjf``/``srtf`` read it, nothing else trusts it.
    """

    id: str
    project: str
    gpus: int
    submit_ms: int
    user: str = ""
    groups: tuple[TaskGroup, ...] = ()
    models: tuple[str, ...] = ()
    min_memory_gib: int = 0
    stacks: tuple[str, ...] = ()
    topology: Level = Level.CLUSTER
    walltime_ms: int = 0
    priority_class: str = "normal"
    checkpoint_interval_ms: int = 0
    kind: str = "training"
    workload_class: str = "default"
    duration_hint_ms: int = 0
    clusters: tuple[str, ...] = ()
    #: jobs it waits on before it is queued (``gpupool.core.dependencies``)
    dependencies: tuple[Dependency, ...] = ()
    #: an array of like tasks (``gpupool.core.job_arrays``): each task is this spec
    array: ArraySpec | None = None
    #: a fraction of one accelerator (``gpupool.core.fraction_spec``): ``mig_count`` x the
    #: MIG profile ``mig``, or a share of ``gpu_fraction`` and/or ``gpu_memory_gib``
    mig: str = ""
    mig_count: int = 0
    gpu_fraction: float = 0.0
    gpu_memory_gib: float = 0.0

    def validate(self) -> None:
        """Reject a spec that is invalid on its own (independent of any fleet)."""
        if not self.id:
            raise JobError(self.id, "id", "must be non-empty")
        if not self.project:
            raise JobError(self.id, "project", "must be non-empty")
        if self.gpus < 1:
            raise JobError(self.id, "gpus", f"must be >= 1, got {self.gpus}")
        if self.gpus > MAX_GANG_GPUS:
            raise JobError(self.id, "gpus", f"must be <= {MAX_GANG_GPUS}, got {self.gpus}")
        if self.groups:
            for i, g in enumerate(self.groups):
                if g.workers < 1 or g.gpus_per_worker < 1:
                    raise JobError(self.id, f"groups[{i}]", "workers and gpus_per_worker must be >= 1")
            if sum(g.gpus for g in self.groups) != self.gpus:
                raise JobError(self.id, "groups", "task groups must add up to gpus")
        if self.walltime_ms < 0:
            raise JobError(self.id, "walltime", "must be >= 0")
        if self.submit_ms < 0:
            raise JobError(self.id, "submit", "must be >= 0")
        if self.checkpoint_interval_ms < 0:
            raise JobError(self.id, "checkpoint_interval", "must be >= 0")
        if self.duration_hint_ms < 0:
            raise JobError(self.id, "duration_hint", "must be >= 0")
        if self.priority_class not in PRIORITY_CLASSES:
            raise JobError(
                self.id,
                "priority_class",
                f"unknown class {self.priority_class!r} (known: {', '.join(PRIORITY_CLASSES)})",
            )
        if self.kind not in KINDS:
            raise JobError(self.id, "kind", f"unknown kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.min_memory_gib < 0:
            raise JobError(self.id, "min_memory_gib", "must be >= 0")
        if any(d.job_id == self.id for d in self.dependencies):
            raise JobError(self.id, "dependency", "a job cannot depend on itself")
        if self.array is not None and not self.array.indices:
            raise JobError(self.id, "array", "names no task")
        wrong = fraction_spec.problem(self)
        if wrong is not None:
            raise JobError(self.id, *wrong)

    def shape(self, gpus_per_node: int) -> tuple[TaskGroup, ...]:
        """The gang as task groups on nodes of ``gpus_per_node``.

        Without explicit groups the job is consolidated: one worker if it fits a node, else
        whole nodes plus one remainder worker (how Philly-era trace jobs were placed).
        """
        if self.groups:
            return self.groups
        if self.gpus <= gpus_per_node:
            return (TaskGroup(1, self.gpus),)
        full, rem = divmod(self.gpus, gpus_per_node)
        if rem == 0:
            return (TaskGroup(full, gpus_per_node),)
        return (TaskGroup(full, gpus_per_node), TaskGroup(1, rem))

    @property
    def rank(self) -> int:
        return PRIORITY_CLASSES[self.priority_class]
