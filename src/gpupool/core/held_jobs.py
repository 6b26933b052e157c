"""Jobs held on their dependencies: kept out of the queue until what they wait on happens.

This module owns ``HeldJobs``: the submitted jobs whose dependencies
(``gpupool.core.dependencies``) are not all met yet, indexed by the jobs they wait on. A
held job was admitted like any submission (a job that could never start is refused at
once, not after its dependencies), but it is in no sub-queue: no pass, estimate or wait
reason sees it, so held jobs cost the cycle nothing. The scheduler tells it each milestone of
a job someone waits on (a start, a finish, a cancellation, a rejection) and queues the jobs
it releases; a job whose dependency can never be met is rejected with that reason, and that
rejection is itself a failure its own dependants see (Slurm's ``kill_invalid_depend``).

What a held job is told: ``Explain(dependency, "waiting for dependency j7 (afterok)")``
naming the first dependency not yet met, again whenever that one changes.

Part of the pure core: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gpupool.core.decisions import Decision, Explain, Reason, Reject
from gpupool.core.dependencies import Dependency, Milestone, Verdict, verdict
from gpupool.core.job import JobSpec

#: what the scheduler knows of a named job: its milestone (None: not started), or
#: ``UNKNOWN`` when it holds no such job and the driver said nothing of it
Lookup = Callable[[str], "Milestone | Unknown | None"]


class Unknown:
    """The milestone of a job no one knows (the dependency can never be met)."""


UNKNOWN = Unknown()


@dataclass(slots=True)
class Held:
    """A held job: its spec, what its admission found, and the dependencies not met yet."""

    spec: JobSpec
    admitted: tuple[int, tuple[int, ...], int]
    waiting: list[Dependency]


class HeldJobs:
    """The jobs held on dependencies, and who waits on whom."""

    __slots__ = ("held", "recent", "waiters")

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        #: job id -> the held jobs that wait on it, in the order they were held
        self.waiters: dict[str, list[str]] = {}
        #: milestones of jobs that ended in the current batch of events (``handle``): a
        #: submission later in the same batch may name one the scheduler already forgot
        self.recent: dict[str, Milestone] = {}

    def __contains__(self, job_id: str) -> bool:
        return job_id in self.held

    def __len__(self) -> int:
        return len(self.held)

    def submit(
        self,
        spec: JobSpec,
        admitted: tuple[int, tuple[int, ...], int],
        lookup: Lookup,
        settled: Mapping[str, Milestone],
        out: list[Decision],
    ) -> Verdict:
        """Judge a new job's dependencies: MET (queue it now), WAIT (held here), or NEVER
        (a ``Reject`` is in ``out``; the caller tells its own dependants with ``ended``)."""
        waiting: list[Dependency] = []
        for dep in spec.dependencies:
            m = self._milestone(dep.job_id, lookup, settled)
            if isinstance(m, Unknown):
                detail = f"dependency {dep}: no job {dep.job_id}"
                out.append(Reject(spec.id, Reason.DEPENDENCY_NEVER_MET, detail))
                return Verdict.NEVER
            v = verdict(dep.kind, m)
            if v is Verdict.NEVER:
                out.append(Reject(spec.id, Reason.DEPENDENCY_NEVER_MET, _never(dep, m)))
                return Verdict.NEVER
            if v is Verdict.WAIT:
                waiting.append(dep)
        if not waiting:
            return Verdict.MET
        self.held[spec.id] = Held(spec, admitted, waiting)
        for target in dict.fromkeys(d.job_id for d in waiting):
            self.waiters.setdefault(target, []).append(spec.id)
        out.append(Explain(spec.id, Reason.DEPENDENCY, _waiting(waiting[0])))
        return Verdict.WAIT

    def reached(self, job_id: str, milestone: Milestone, out: list[Decision]) -> list[Held]:
        """Job ``job_id`` reached ``milestone``: the held jobs it releases, in the order they
        were held. Jobs it dooms are rejected (into ``out``), and so, in turn, are theirs."""
        if milestone is not Milestone.STARTED:
            self.recent[job_id] = milestone
        released: list[Held] = []
        work = [(job_id, milestone)]
        while work:
            target, m = work.pop()
            waiters = self.waiters.get(target)
            if not waiters:
                continue
            keep: list[str] = []
            for hid in tuple(waiters):
                h = self.held.get(hid)
                if h is None:
                    continue
                first = h.waiting[0]
                doomed: Dependency | None = None
                still: list[Dependency] = []
                for dep in h.waiting:
                    if dep.job_id != target:
                        still.append(dep)
                        continue
                    v = verdict(dep.kind, m)
                    if v is Verdict.NEVER and doomed is None:
                        doomed = dep
                    elif v is Verdict.WAIT:
                        still.append(dep)
                if doomed is not None:
                    self._drop(h)
                    out.append(Reject(hid, Reason.DEPENDENCY_NEVER_MET, _never(doomed, m)))
                    self.recent[hid] = Milestone.FAILED
                    work.append((hid, Milestone.FAILED))
                    continue
                h.waiting = still
                if any(d.job_id == target for d in still):
                    keep.append(hid)  # e.g. afterok after a start: still waits on it
                if not still:
                    del self.held[hid]
                    released.append(h)
                elif still[0] != first:
                    out.append(Explain(hid, Reason.DEPENDENCY, _waiting(still[0])))
            if keep:
                self.waiters[target] = keep
            else:
                self.waiters.pop(target, None)
        return released

    def cancel(self, job_id: str) -> bool:
        """A held job is cancelled: it leaves (its dependants are told by the caller)."""
        h = self.held.get(job_id)
        if h is None:
            return False
        self._drop(h)
        return True

    def _drop(self, h: Held) -> None:
        del self.held[h.spec.id]
        for target in dict.fromkeys(d.job_id for d in h.waiting):
            ws = self.waiters.get(target)
            if ws is not None and h.spec.id in ws:
                ws.remove(h.spec.id)
                if not ws:
                    del self.waiters[target]

    def _milestone(
        self, job_id: str, lookup: Lookup, settled: Mapping[str, Milestone]
    ) -> Milestone | Unknown | None:
        if job_id in self.held:
            return None
        got = lookup(job_id)
        if not isinstance(got, Unknown):
            return got
        if job_id in self.recent:
            return self.recent[job_id]
        return settled.get(job_id, UNKNOWN)


def _waiting(dep: Dependency) -> str:
    return f"waiting for dependency {dep.job_id} ({dep.kind.value})"


def _never(dep: Dependency, m: Milestone | None) -> str:
    what = {Milestone.SUCCEEDED: "completed", Milestone.FAILED: "did not complete"}.get(m, "") if m else ""
    return f"dependency {dep} can never be met: {dep.job_id} {what}".rstrip()
