"""A job request: what a client may ask for, checked against the fleet, and the core's spec of it.

This module owns ``JobRequest`` (the body of ``POST /v1/jobs``: strict, every field bounded),
``check_against`` (what only the fleet and policy can tell: known models, clusters, classes,
walltime limit, a gang no larger than the fleet), ``stored_spec`` (the request as stored, a
``StoredJobSpec``) and ``core_spec`` (the stored request as the core's ``JobSpec``). Nothing
here touches the database.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from gpupool.core.array_spec import ArrayError, parse_array
from gpupool.core.dependencies import DependencyError, parse_dependencies
from gpupool.core.fleet import Fleet, Level
from gpupool.core.job import KINDS, MAX_GANG_GPUS, PRIORITY_CLASSES, JobSpec
from gpupool.service.container_image import IMAGE_HELP, image_field
from gpupool.service.job_spec import StoredJobSpec
from gpupool.service.request_body import RequestBody
from gpupool.service.settings import ServiceSettings

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
Name = Annotated[str, Field(min_length=1, max_length=64)]


class Problem(ValueError):
    """A request that the fleet or policy refuses: ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class TaskGroupIn(RequestBody):
    workers: Annotated[int, Field(ge=1, le=MAX_GANG_GPUS)]
    gpus_per_worker: Annotated[int, Field(ge=1, le=1024)]


class JobRequest(RequestBody):
    """A job to run: a gang of ``gpus`` accelerators (optionally as task groups) and a command."""

    project: Annotated[str, Field(min_length=1, max_length=255, description="Project path or unique name")]
    command: Annotated[
        list[Annotated[str, Field(max_length=8192)]],
        Field(min_length=1, max_length=1024, description="argv of the job"),
    ]
    gpus: Annotated[int, Field(ge=1, le=MAX_GANG_GPUS)]
    name: Annotated[str, Field(max_length=255)] = ""
    groups: Annotated[list[TaskGroupIn], Field(max_length=64)] = Field(default_factory=list)
    models: Annotated[list[Name], Field(max_length=32)] = Field(default_factory=list)
    min_memory_gib: Annotated[int, Field(ge=0, le=1 << 20)] = 0
    stacks: Annotated[list[Name], Field(max_length=16)] = Field(default_factory=list)
    topology: Literal["node", "nvlink", "rack", "block", "any"] = "any"
    walltime_s: Annotated[int | None, Field(ge=1, description="Default: the service's default walltime")] = (
        None
    )
    priority_class: Literal["reserved", "high", "normal", "low", "preemptible"] = "normal"
    checkpoint_interval_s: Annotated[int, Field(ge=0, le=10**9)] = 0
    kind: Literal["training", "inference", "interactive"] = "training"
    workload_class: Annotated[str, Field(min_length=1, max_length=64)] = "default"
    clusters: Annotated[list[Name], Field(max_length=64)] = Field(default_factory=list)
    env: Annotated[dict[str, Annotated[str, Field(max_length=32768)]], Field(max_length=256)] = Field(
        default_factory=dict
    )
    cwd: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    image: Annotated[str | None, Field(min_length=1, max_length=1024, description=IMAGE_HELP)] = (
        None  # a container image (ADR 0013)
    )
    dependency: Annotated[
        str,
        Field(
            max_length=16384,
            description="Jobs to wait for, as Slurm's --dependency: afterok:j1:j2,afterany:j3 "
            "(after = started, afterany = ended, afterok = completed, afternotok = did not complete)",
        ),
    ] = ""

    array: Annotated[
        str,
        Field(
            max_length=4096,
            description="A job array, as Slurm's --array: 0-99, 0-99:2, 1,3,5-7, each with %N (the most "
            "tasks running at once); tasks are ID_INDEX and see GPUPOOL_ARRAY_TASK_ID",
        ),
    ] = ""

    @field_validator("array")
    @classmethod
    def _array(cls, v: str) -> str:
        if v:
            try:
                parse_array(v)
            except ArrayError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("dependency")
    @classmethod
    def _dependency(cls, v: str) -> str:
        try:
            parse_dependencies(v)
        except DependencyError as e:
            raise ValueError(str(e)) from None
        return v

    # fractions of one accelerator (gpupool.core.fraction_spec): mig_count x a MIG profile, or a share
    mig: Annotated[str | None, Field(pattern=r"^[1-8]g\.[0-9]+gb(\+me)?$")] = None
    mig_count: Annotated[int, Field(ge=1, le=7)] = 1
    gpu_fraction: Annotated[float | None, Field(gt=0, le=1)] = None
    gpu_memory_gib: Annotated[float | None, Field(gt=0, le=4096)] = None

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not ENV_NAME.match(k):
                raise ValueError(f"{k!r} is not an environment variable name")
            if k.startswith("GPUPOOL_") or k == "CUDA_VISIBLE_DEVICES":
                raise ValueError(f"{k} is set by gpupool")
        return v

    @field_validator("command")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        if not v[0]:
            raise ValueError("the program (command[0]) must be non-empty")
        return v  # NUL in any text is refused for every body by RequestBody

    _image = field_validator("image")(image_field)

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("must be an absolute path")
        return v

    @model_validator(mode="after")
    def _groups(self) -> JobRequest:
        if self.groups and sum(g.workers * g.gpus_per_worker for g in self.groups) != self.gpus:
            raise ValueError("groups must add up to gpus (workers x gpus_per_worker)")
        return self


assert set(PRIORITY_CLASSES) == {"reserved", "high", "normal", "low", "preemptible"}
assert set(KINDS) == {"training", "inference", "interactive"}


def check_against(req: JobRequest, fleet: Fleet, settings: ServiceSettings) -> None:
    """Raise ``Problem`` for what the schema cannot know: the fleet's models, clusters, size."""
    cat = fleet.catalogue
    present = fleet.gpus_by_model()
    for i, m in enumerate(req.models):
        if m not in cat:
            raise Problem(
                f"models[{i}]", f"unknown accelerator model {m!r} (known: {', '.join(cat.names())})"
            )
        if m not in present:
            raise Problem(f"models[{i}]", f"the fleet has no {m} accelerators (it has: {', '.join(present)})")
    for i, c in enumerate(req.clusters):
        if c not in fleet.cluster_by_name:
            known = ", ".join(fleet.cluster_by_name)
            raise Problem(f"clusters[{i}]", f"unknown cluster {c!r} (known: {known})")
    classes = {c for m in cat for c in m.throughput}
    if req.workload_class not in classes:
        raise Problem("workload_class", f"unknown workload class (known: {', '.join(sorted(classes))})")
    stacks = {m.stack for m in cat}
    for i, st in enumerate(req.stacks):
        if st not in stacks:
            raise Problem(
                f"stacks[{i}]", f"unknown software stack {st!r} (known: {', '.join(sorted(stacks))})"
            )
    if req.walltime_s is not None and req.walltime_s > settings.max_walltime_s:
        raise Problem("walltime_s", f"must be <= {settings.max_walltime_s} s (the pool's walltime limit)")
    if req.gpus > fleet.total_gpus:
        raise Problem("gpus", f"the whole fleet has {fleet.total_gpus} accelerators")
    if req.checkpoint_interval_s > settings.max_walltime_s:
        raise Problem("checkpoint_interval_s", f"must be <= {settings.max_walltime_s} s")
    _check_fraction(req, fleet)


def stored_spec(req: JobRequest, settings: ServiceSettings, project_path: str) -> StoredJobSpec:
    """The request as stored in the job row (the project's path, the walltime resolved)."""
    data = req.model_dump()
    data["project"] = project_path
    if data["walltime_s"] is None:
        data["walltime_s"] = settings.default_walltime_s
    return StoredJobSpec.from_json(data)


def core_spec(
    seq_id: str, project_path: str, user: str, spec: StoredJobSpec, priority: str, submit_ms: int
) -> JobSpec:
    """The core's ``JobSpec`` of a stored request (``priority`` may be forced by a budget)."""
    return JobSpec(
        id=seq_id,
        project=project_path,
        gpus=spec.gpus,
        submit_ms=submit_ms,
        user=user,
        groups=spec.groups,
        models=spec.models,
        min_memory_gib=spec.min_memory_gib,
        stacks=spec.stacks,
        topology=Level.parse(spec.topology),
        walltime_ms=spec.walltime_s * 1000,
        priority_class=priority,
        checkpoint_interval_ms=spec.checkpoint_interval_s * 1000,
        kind=spec.kind,
        workload_class=spec.workload_class,
        clusters=spec.clusters,
        dependencies=parse_dependencies(spec.dependency),
        array=parse_array(spec.array) if spec.array else None,
        mig=spec.mig or "",
        mig_count=spec.mig_count if spec.mig else 0,
        gpu_fraction=spec.gpu_fraction or 0.0,
        gpu_memory_gib=spec.gpu_memory_gib or 0.0,
    )


def _check_fraction(req: JobRequest, fleet: Fleet) -> None:
    """A fraction asked alone, of one GPU, of a model of this fleet that can give it."""
    if req.mig is None and req.gpu_fraction is None and req.gpu_memory_gib is None:
        return
    if req.mig is not None and (req.gpu_fraction is not None or req.gpu_memory_gib is not None):
        raise Problem(
            "mig", "cannot be combined with gpu_fraction or gpu_memory_gib (a GPU is partitioned or shared)"
        )
    if req.gpus != 1 or req.groups:
        raise Problem(
            "gpus", "must be 1 (without groups) for a job asking mig, gpu_fraction or gpu_memory_gib"
        )
    models = [fleet.catalogue[m] for m in fleet.gpus_by_model() if not req.models or m in req.models]
    if req.mig is not None and not any(m.mig and req.mig in m.mig.profiles for m in models):
        raise Problem("mig", f"no accelerator of the fleet offers MIG profile {req.mig}")
    shared = [m for m in models if m.sharing]
    if req.mig is None and not shared:
        raise Problem("gpu_fraction", "no accelerator of the fleet may be shared")
    if req.gpu_memory_gib is not None and not any(m.memory_gib >= req.gpu_memory_gib for m in shared):
        raise Problem(
            "gpu_memory_gib", f"no shareable accelerator of the fleet has {req.gpu_memory_gib:g} GiB"
        )
