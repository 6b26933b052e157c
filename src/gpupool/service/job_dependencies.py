"""Dependencies of stored jobs: checked at submission, their ended targets told to the core.

This module owns the service's side of ``gpupool.core.dependencies``:

* ``check_targets``: a submission may name only jobs its caller may see; any other (or one
  that does not exist) is a 404 naming the field, as for a job the caller asks for directly
  (a tenant must not learn that another's job exists);
* ``settle``: the core forgets jobs once they end, so a submission whose targets already
  ended carries their milestones (``JobSubmitted.settled``), read from the job rows when the
  loop takes it from the inbox (or when the core is rebuilt);
* ``milestone_of``: a stored job state as a dependency milestone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Connection, Table, select

from gpupool.core.dependencies import Milestone, parse_dependencies
from gpupool.core.events import Event, JobSubmitted
from gpupool.service import store
from gpupool.service.auth import Caller
from gpupool.service.db import JobRow

_JOBS = cast(Table, JobRow.__table__)


class TargetNotFound(LookupError):
    """A dependency names a job that does not exist or that the caller may not see."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"dependency: job {job_id!r} not found")


def milestone_of(state: str, attempt: int) -> Milestone | None:
    """A stored job's milestone: ended ones by how; a pending one that ran before has started."""
    if state == "completed":
        return Milestone.SUCCEEDED
    if state in ("failed", "cancelled", "rejected"):
        return Milestone.FAILED
    if state == "running" or attempt > 0:
        return Milestone.STARTED
    return None


def check_targets(conn: Connection, caller: Caller, text: str) -> None:
    """Raise ``TargetNotFound`` for the first dependency of ``text`` the caller may not see."""
    deps = parse_dependencies(text)
    seqs: dict[str, int | None] = {d.job_id: store.job_seq(d.job_id) for d in deps}
    wanted = sorted({s for s in seqs.values() if s is not None})
    projects = {
        seq: pid
        for seq, pid in conn.execute(select(_JOBS.c.seq, _JOBS.c.project_id).where(_JOBS.c.seq.in_(wanted)))
    }
    for job_id, seq in seqs.items():
        pid = projects.get(seq) if seq is not None else None
        if pid is None or not caller.can_see(pid):
            raise TargetNotFound(job_id)


def ended_targets(conn: Connection, specs: Iterable[Sequence[str]]) -> dict[str, Milestone]:
    """Of the jobs named, those that ended, with their milestone (one query)."""
    seqs = sorted({s for ids in specs for j in ids if (s := store.job_seq(j)) is not None})
    if not seqs:
        return {}
    rows = conn.execute(select(_JOBS.c.seq, _JOBS.c.state).where(_JOBS.c.seq.in_(seqs)))
    out: dict[str, Milestone] = {}
    for seq, state in rows:
        m = milestone_of(state, 0)
        if state in store.FINAL_STATES and m is not None:
            out[store.job_id(seq)] = m
    return out


def settle(conn: Connection, events: list[Event]) -> None:
    """Give each submission in ``events`` the milestones of its targets that ended (in place)."""
    subs = [(i, ev) for i, ev in enumerate(events) if isinstance(ev, JobSubmitted) and ev.spec.dependencies]
    if not subs:
        return
    ended = ended_targets(conn, ([d.job_id for d in ev.spec.dependencies] for _, ev in subs))
    for i, ev in subs:
        known = tuple((d.job_id, ended[d.job_id]) for d in ev.spec.dependencies if d.job_id in ended)
        if known:
            events[i] = JobSubmitted(ev.spec, tuple(dict.fromkeys(known)))
