"""Job dependencies: what a job waits on before it may be queued, and when that is met.

This module owns the dependency vocabulary (Slurm's ``--dependency``): ``DependencyKind``
(``after``, ``afterany``, ``afterok``, ``afternotok``), ``Dependency`` (a kind and the job it
names), ``Milestone`` (how far a named job got: started, succeeded, failed), the rule that
says whether a dependency is met, can still be met or never will be (``verdict``), parsing
and writing the text form ``afterok:j1:j2,afterany:j3`` (``parse_dependencies``,
``format_dependencies``) and finding a cycle among jobs' dependencies (``find_cycle``).

The rules (as Slurm's, so that researchers' scripts mean the same here):

* ``after``: the named job has started (or ended without starting: cancelled, rejected);
* ``afterany``: the named job has ended, however;
* ``afterok``: the named job completed successfully; never met once it ended otherwise;
* ``afternotok``: the named job ended otherwise (failed, timed out, cancelled, rejected);
  never met once it completed.

Every dependency of a job must be met (Slurm's ``,``). Pure data and functions: the jobs
held on them live in ``gpupool.core.held_jobs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

#: the most dependencies one job may name (a pipeline fans in, but not without bound)
MAX_DEPENDENCIES = 1024
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class DependencyKind(StrEnum):
    AFTER = "after"
    AFTERANY = "afterany"
    AFTEROK = "afterok"
    AFTERNOTOK = "afternotok"


class Milestone(StrEnum):
    """How far a named job got, as far as dependencies care (None: not started yet)."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Verdict(Enum):
    MET = "met"
    WAIT = "wait"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Dependency:
    """Wait for job ``job_id`` to reach what ``kind`` asks."""

    kind: DependencyKind
    job_id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.job_id}"


class DependencyError(ValueError):
    """A dependency text that cannot be read; the message says what is wrong."""


def verdict(kind: DependencyKind, milestone: Milestone | None) -> Verdict:
    """Whether a dependency of ``kind`` on a job at ``milestone`` is met, may be, or never."""
    if milestone is None:
        return Verdict.WAIT
    if kind is DependencyKind.AFTER:
        return Verdict.MET
    if milestone is Milestone.STARTED:
        return Verdict.WAIT
    if kind is DependencyKind.AFTERANY:
        return Verdict.MET
    ok = milestone is Milestone.SUCCEEDED
    if kind is DependencyKind.AFTEROK:
        return Verdict.MET if ok else Verdict.NEVER
    return Verdict.NEVER if ok else Verdict.MET


def parse_dependencies(text: str) -> tuple[Dependency, ...]:
    """``afterok:j1:j2,afterany:j3`` as dependencies (in order, repeats dropped).

    DependencyError names the part that is wrong. An empty text is no dependency.
    """
    text = text.strip()
    if not text:
        return ()
    out: list[Dependency] = []
    seen: set[Dependency] = set()
    for part in text.split(","):
        kind_text, _, ids = part.strip().partition(":")
        try:
            kind = DependencyKind(kind_text.strip().lower())
        except ValueError:
            known = ", ".join(k.value for k in DependencyKind)
            raise DependencyError(f"unknown dependency type {kind_text!r} (known: {known})") from None
        if not ids:
            raise DependencyError(f"{kind.value} names no job (write {kind.value}:JOB[:JOB...])")
        for job_id in ids.split(":"):
            job_id = job_id.strip()
            if not _JOB_ID.match(job_id):
                raise DependencyError(f"{job_id!r} is not a job id")
            dep = Dependency(kind, job_id)
            if dep not in seen:
                seen.add(dep)
                out.append(dep)
    if len(out) > MAX_DEPENDENCIES:
        raise DependencyError(f"at most {MAX_DEPENDENCIES} dependencies, got {len(out)}")
    return tuple(out)


def format_dependencies(deps: Iterable[Dependency]) -> str:
    """The text form of ``deps``, jobs of a kind grouped (``parse_dependencies``' inverse)."""
    by_kind: dict[DependencyKind, list[str]] = {}
    for d in deps:
        by_kind.setdefault(d.kind, []).append(d.job_id)
    return ",".join(f"{k.value}:{':'.join(ids)}" for k, ids in by_kind.items())


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of ``edges`` (job -> the jobs it depends on) as [a, b, ..., a], else None.

    Iterative depth-first search (a pipeline of thousands of stages must not overflow the
    stack); nodes are visited in the mapping's order, so the cycle found is deterministic.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if root in state:
            continue
        path: list[str] = [root]
        stack = [iter(edges.get(root, ()))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            seen = state.get(nxt)
            if seen == 1:
                return [*path[path.index(nxt) :], nxt]
            if seen is None:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges.get(nxt, ())))
    return None
