"""A job as stored: the typed form of the ``jobs.spec`` JSON column.

This module owns ``StoredJobSpec``: the request as validated and resolved at submission (the
project's path, the walltime default applied, a budget note when it was accepted over budget),
with every default in one place. The loop, the rebuild and the API read a job through it,
never by ``spec[...]`` lookups. ``from_json`` reads every row ever written: fields missing in
an old row take their defaults, and keys this version does not know are kept (``extra``) and
written back unchanged by ``to_json``, so a row written by a newer version is not cut down.
Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from gpupool.core.job import TaskGroup

#: the empty mapping of a spec without environment or unknown keys (shared, read-only)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StoredJobSpec:
    """What a job asked for (the fields of ``JobRequest``, resolved)."""

    command: tuple[str, ...]
    gpus: int
    project: str = ""
    name: str = ""
    groups: tuple[TaskGroup, ...] = ()
    models: tuple[str, ...] = ()
    min_memory_gib: int = 0
    stacks: tuple[str, ...] = ()
    topology: str = "any"
    #: 0: no limit (a stored job always has one: the service's default is applied on submit)
    walltime_s: int = 0
    #: the class the user asked for (the row's ``priority_class`` is the one it runs with)
    priority_class: str = "normal"
    checkpoint_interval_s: int = 0
    kind: str = "training"
    workload_class: str = "default"
    clusters: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    cwd: str | None = None
    #: a container image reference or image file (None: the executor's own environment; ADR 0013)
    image: str | None = None
    #: jobs to wait for, as Slurm's --dependency ("" : none; ADR 0019)
    dependency: str = ""
    #: a job array's indices and limit, as Slurm's --array ("": a single job; ADR 0019)
    array: str = ""
    #: a fraction of one accelerator (ADR 0016): ``mig_count`` x a MIG profile (``1g.10gb``), or
    #: a share of one GPU's time and/or memory (None: whole accelerators)
    mig: str | None = None
    mig_count: int = 1
    gpu_fraction: float | None = None
    gpu_memory_gib: float | None = None
    #: why a job accepted over budget runs as preemptible ("" when it is within budget)
    budget_note: str = ""
    #: keys this version does not know, kept as they were
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredJobSpec:
        """The spec of a stored row (old rows included: absent fields take their defaults).

        The JSON was validated by ``JobRequest`` when the job was accepted: values are taken
        as stored (the loop reads one spec per submission and start).
        """
        get = data.get
        groups = get("groups")
        env = get("env")
        unknown = data.keys() - _FIELDS
        return cls(
            command=tuple(get("command") or ()),
            gpus=int(data["gpus"]),
            project=get("project") or "",
            name=get("name") or "",
            groups=tuple(TaskGroup(int(g["workers"]), int(g["gpus_per_worker"])) for g in groups)
            if groups
            else (),
            models=tuple(get("models") or ()),
            min_memory_gib=int(get("min_memory_gib") or 0),
            stacks=tuple(get("stacks") or ()),
            topology=get("topology") or "any",
            walltime_s=int(get("walltime_s") or 0),
            priority_class=get("priority_class") or "normal",
            checkpoint_interval_s=int(get("checkpoint_interval_s") or 0),
            kind=get("kind") or "training",
            workload_class=get("workload_class") or "default",
            clusters=tuple(get("clusters") or ()),
            env=dict(env) if env else _EMPTY,
            cwd=get("cwd") or None,
            image=get("image") or None,
            dependency=get("dependency") or "",
            array=get("array") or "",
            mig=get("mig") or None,
            mig_count=int(get("mig_count") or 1),
            gpu_fraction=_float(get("gpu_fraction")),
            gpu_memory_gib=_float(get("gpu_memory_gib")),
            budget_note=get("budget_note") or "",
            extra={k: data[k] for k in unknown} if unknown else _EMPTY,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON stored in ``jobs.spec`` (the keys ``JobRequest.model_dump`` writes)."""
        out: dict[str, Any] = {
            "project": self.project,
            "command": list(self.command),
            "gpus": self.gpus,
            "name": self.name,
            "groups": [{"workers": g.workers, "gpus_per_worker": g.gpus_per_worker} for g in self.groups],
            "models": list(self.models),
            "min_memory_gib": self.min_memory_gib,
            "stacks": list(self.stacks),
            "topology": self.topology,
            "walltime_s": self.walltime_s,
            "priority_class": self.priority_class,
            "checkpoint_interval_s": self.checkpoint_interval_s,
            "kind": self.kind,
            "workload_class": self.workload_class,
            "clusters": list(self.clusters),
            "env": dict(self.env),
            "cwd": self.cwd,
            "image": self.image,
            "dependency": self.dependency,
            "array": self.array,
            "mig": self.mig,
            "mig_count": self.mig_count,
            "gpu_fraction": self.gpu_fraction,
            "gpu_memory_gib": self.gpu_memory_gib,
        }
        if self.budget_note:
            out["budget_note"] = self.budget_note
        out.update(self.extra)
        return out

    def same_request(self, other: StoredJobSpec) -> bool:
        """Whether two specs ask for the same job (a budget note is the service's, not asked)."""
        return replace(self, budget_note="") == replace(other, budget_note="")


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


_FIELDS = frozenset(f.name for f in fields(StoredJobSpec)) - {"extra"}
