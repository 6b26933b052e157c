"""Vetting a workload against a fleet: the rows a trace reader accepts but the scheduler would refuse.

This module owns ``vet_workload``. A reader checks what a row says on its own terms (numbers,
times, required cells); whether a priority class, kind, topology or gang shape is one the
scheduler knows, and whether a named accelerator model or software stack exists in the
fleet's catalogue, is checked here, before the simulation, against the same rules the
scheduler's submission applies (``JobSpec.validate``). Without it such a row became an
"unschedulable" job and the run ended with exit code 0, the reason only in ``jobs.csv``.

A bad row is a ``TraceError`` naming the file, the row's line and the field. By default the
first one (on the earliest line) is raised; with ``skip`` every bad row is left out and
returned, so a caller can count and report them.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpupool.core.accelerator import KNOWN_STACKS, Catalogue
from gpupool.core.fleet import Level
from gpupool.core.job import JobError
from gpupool.sim.simulator import to_spec
from gpupool.sim.workload import TraceError, WorkloadJob

#: ``JobError`` field -> the workload column a user wrote it in.
_COLUMN_OF = {
    "groups": "gpus_per_worker",
    "duration_hint": "duration",
    "submit": "submit",
    "gpu_memory": "gpu_memory_gib",
}


def _problem(job: WorkloadJob, catalogue: Catalogue) -> tuple[str, str] | None:
    """(field, message) of what makes this row one the scheduler would refuse; None if none."""
    try:
        Level.parse(job.topology)
    except ValueError as e:
        return "topology", str(e)
    try:
        to_spec(job).validate()
    except JobError as e:
        message = str(e).partition(f"{e.field}: ")[2] or str(e)
        return _COLUMN_OF.get(e.field, e.field), message
    for m in job.models:
        if m not in catalogue:
            known = ", ".join(sorted(catalogue.names()))
            return "models", f"unknown accelerator model {m!r} (known: {known})"
    for s in job.stacks:
        if s not in KNOWN_STACKS:
            return "stacks", f"unknown software stack {s!r} (known: {', '.join(sorted(KNOWN_STACKS))})"
    if job.mig and not any(m.mig is not None and job.mig in m.mig.profiles for m in catalogue):
        return "mig", f"no accelerator model of the catalogue has MIG profile {job.mig!r}"
    return None


def vet_workload(
    jobs: Sequence[WorkloadJob], catalogue: Catalogue, source: str, *, skip: bool = False
) -> tuple[list[WorkloadJob], list[TraceError]]:
    """The jobs the scheduler would accept as valid, and a ``TraceError`` per bad row.

    ``source``: the file the rows came from (named in every error). Without ``skip`` the
    bad row on the earliest line is raised and nothing is returned; with it, bad rows are
    left out, returned in line order.
    """
    kept: list[WorkloadJob] = []
    bad: list[TraceError] = []
    # Rows alike in every checked field share a verdict: a trace has few distinct shapes.
    seen: dict[tuple[object, ...], tuple[str, str] | None] = {}
    for j in jobs:
        sig = (
            j.gpus, j.gpus_per_worker, j.models, j.min_memory_gib < 0, j.stacks, j.topology,
            j.walltime_ms < 0, j.priority_class, j.checkpoint_interval_ms < 0, j.kind,
            j.submit_ms < 0, j.duration_ms < 0, not j.id, not j.tenant,
            j.mig, j.mig_count, j.gpu_fraction, j.gpu_memory_gib,
        )  # fmt: skip
        if sig in seen:
            problem = seen[sig]
        else:
            problem = seen[sig] = _problem(j, catalogue)
        if problem is None:
            kept.append(j)
        else:
            bad.append(TraceError(source, j.source_line, problem[0], f"job {j.id!r}: {problem[1]}"))
    bad.sort(key=lambda e: e.line)
    if bad and not skip:
        raise bad[0]
    return kept, bad
