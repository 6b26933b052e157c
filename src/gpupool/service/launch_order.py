"""The launch order of an allocation: from its job row, into an outbox row, and back.

This module owns the one codec of ``Launch`` in the service: ``LaunchOrders.of_row`` (what a
started job row asks an executor to run: the journal writes it, reconcile relaunches it),
``LaunchOrders.of_task`` (a task of a job array, ``gpupool.service.array_tasks``), ``payload``
(the outbox row's JSON) and ``from_outbox`` (the order the dispatcher sends). A launch written
to the outbox and read back is the same ``Launch``, its container image included (ADR 0013).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpupool.service import store
from gpupool.service.db import JobRow, OutboxRow
from gpupool.service.executors.base import Launch


def placement_of(raw: list[list[Any]] | None) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A stored placement ([[node, [ids]], ...]) as the executor's tuples."""
    return tuple((str(n), tuple(int(i) for i in ids)) for n, ids in (raw or []))


class LaunchOrders:
    """Builds launch orders with the service's log folder and run-as accounts."""

    def __init__(self, log_dir: Path, run_as: Callable[[JobRow], str | None] | None = None) -> None:
        self.log_dir = log_dir
        #: the Unix account a job runs as (``service/identity.py``), for ``Launch.run_as``
        self.run_as = run_as

    def of_row(self, row: JobRow) -> Launch:
        """The launch of a job row's current allocation."""
        return self._launch(row, store.job_id(row.seq), row.allocation_id or "", row.placement, {})

    def of_task(
        self, array: JobRow, index: int, allocation_id: str, placement: list[list[Any]] | None
    ) -> Launch:
        """The launch of task ``index`` of a job array (ADR 0019): the array's request, the task's
        own id (``j7_3``) and log folder, and ``GPUPOOL_ARRAY_JOB_ID``/``GPUPOOL_ARRAY_TASK_ID``."""
        array_id = store.job_id(array.seq)
        env = {"GPUPOOL_ARRAY_JOB_ID": array_id, "GPUPOOL_ARRAY_TASK_ID": str(index)}
        return self._launch(array, f"{array_id}_{index}", allocation_id, placement, env)

    def _launch(
        self,
        row: JobRow,
        job: str,
        allocation_id: str,
        placement: list[list[Any]] | None,
        env: dict[str, str],
    ) -> Launch:
        spec = row.stored
        return Launch(
            allocation_id=allocation_id,
            job_id=job,
            argv=spec.command,
            placement=placement_of(placement),
            log_dir=self.log_dir / job,
            env={**spec.env, **env},
            cwd=Path(spec.cwd) if spec.cwd else None,
            walltime_s=float(spec.walltime_s),
            run_as=self.run_as(row) if self.run_as is not None else None,
            image=spec.image,
        )


def payload(launch: Launch) -> dict[str, Any]:
    """The outbox row's payload of a launch (its allocation id is the row's own column)."""
    return {
        "job_id": launch.job_id,
        "argv": list(launch.argv),
        "placement": [[n, list(ids)] for n, ids in launch.placement],
        "log_dir": str(launch.log_dir),
        "env": dict(launch.env),
        "cwd": str(launch.cwd) if launch.cwd else None,
        "walltime_s": launch.walltime_s,
        "run_as": launch.run_as,
        "image": launch.image,
    }


def from_outbox(r: OutboxRow) -> Launch:
    """The launch an outbox row of kind ``launch`` orders."""
    p = r.payload
    return Launch(
        allocation_id=r.allocation_id,
        job_id=str(p["job_id"]),
        argv=tuple(p["argv"]),
        placement=placement_of(p["placement"]),
        log_dir=Path(p["log_dir"]),
        env=dict(p.get("env") or {}),
        cwd=Path(p["cwd"]) if p.get("cwd") else None,
        walltime_s=float(p.get("walltime_s") or 0),
        run_as=str(p["run_as"]) if p.get("run_as") else None,
        image=str(p["image"]) if p.get("image") else None,
    )
