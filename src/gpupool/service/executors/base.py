"""The executor protocol: how the live service enacts decisions on an execution engine.

This module owns the ``Executor`` protocol, the ``Launch`` order the loop hands to an
executor, and the ``ExecutorEvent`` types an executor reports back (ADR 0002). It holds no
engine code: ``local`` runs processes on this machine; Slurm and Kubernetes executors follow
the same protocol.

The contract every executor keeps:

- ``launch`` is idempotent by ``allocation_id``: a second launch of an id it has seen is a
  no-op, so the loop may re-dispatch an outbox row after a crash without running a job twice.
- No method blocks on the job: ``launch`` starts it and returns, ``terminate`` signals and
  returns, and what happened later is collected by ``poll``.
- ``allocations`` names what the executor runs now (terminating ones included), so that
  reconcile after a restart can compare it with the database.
- A launch that cannot start is an ``AllocationFailed`` event, never an exception: the loop
  turns events into ``JobFinished``; exceptions mean a broken executor.
- An engine that manages nodes itself (Slurm) reports their changes as ``NodeChanged``; the
  loop turns them into the core's node events (a ``down`` node's work is requeued).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

#: Why an allocation's process ended: on its own, killed at its walltime, or on ``terminate``.
ExitCause = Literal["exited", "walltime", "terminated"]


@dataclass(frozen=True, slots=True)
class Launch:
    """Run ``argv`` for ``job_id`` as allocation ``allocation_id`` on ``placement``.

    ``placement`` is the core's ``Start.placement``: (node name, accelerator ids) per node.
    ``env`` is added to the job's environment (the executor adds its own ``GPUPOOL_*`` and
    ``CUDA_VISIBLE_DEVICES`` on top). ``walltime_s`` of 0 means no limit. The job's stdout and
    stderr go to files under ``log_dir``.

    ``run_as`` is the Unix account the job runs as (``service/identity.py`` fills it from the
    site's map, or the project's own account when the service is root); ``None`` leaves it to
    the executor (the local executor never runs a job as root: see ADR 0005).
    """

    allocation_id: str
    job_id: str
    argv: tuple[str, ...]
    placement: tuple[tuple[str, tuple[int, ...]], ...]
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    walltime_s: float = 0.0
    run_as: str | None = None
    #: the container image the job runs in (``container_image.parse_image``); ``None``: the
    #: executor's own environment (ADR 0013)
    image: str | None = None


@dataclass(frozen=True, slots=True)
class AllocationStarted:
    """The allocation's process runs (``at_ms``: wall-clock milliseconds)."""

    allocation_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class AllocationExited:
    """The allocation's process ended.

    ``exit_code`` is the process's exit status, or ``None`` when a signal killed it (then
    ``signal`` is the signal number) or when the status is unknown (a process adopted after
    an executor restart). ``cause`` says whether it ended on its own, at its walltime, or
    because it was terminated.
    """

    allocation_id: str
    at_ms: int
    exit_code: int | None
    signal: int | None = None
    cause: ExitCause = "exited"

    @property
    def succeeded(self) -> bool:
        """True for a process that exited with status 0 on its own."""
        return self.exit_code == 0 and self.cause == "exited"


@dataclass(frozen=True, slots=True)
class AllocationFailed:
    """The allocation could not run at all (bad placement, missing program, ...)."""

    allocation_id: str
    at_ms: int
    reason: str


#: What an engine says about a node: ``down`` (its allocations are lost: the core requeues
#: them), ``drained`` (running work finishes, nothing new starts) or ``up`` again.
NodeState = Literal["down", "drained", "up"]


@dataclass(frozen=True, slots=True)
class NodeChanged:
    """The engine changed a node's state on its own (Slurm marked it DOWN or DRAIN, or back).

    Executors report this only for nodes of their own cluster; the loop turns it into the
    core's ``NodeDown`` / ``NodeDrained`` / ``NodeUp``.
    """

    node: str
    at_ms: int
    state: NodeState
    reason: str = ""


AllocationEvent = AllocationStarted | AllocationExited | AllocationFailed
ExecutorEvent = AllocationStarted | AllocationExited | AllocationFailed | NodeChanged


@runtime_checkable
class Executor(Protocol):
    """An execution engine as the live loop sees it (see the module docstring for the contract)."""

    backend: str  # "local", "slurm", "kubernetes"

    def launch(self, launch: Launch) -> None:
        """Start an allocation; idempotent by ``allocation_id``; never blocks."""
        ...

    def terminate(self, allocation_id: str, grace_s: float) -> None:
        """Ask an allocation to stop (SIGTERM or the engine's equivalent), kill it after ``grace_s``."""
        ...

    def poll(self) -> list[ExecutorEvent]:
        """What happened since the last poll, oldest first."""
        ...

    def allocations(self) -> set[str]:
        """The allocation ids the executor runs now, for reconcile."""
        ...
