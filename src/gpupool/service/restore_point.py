"""The restore point: what a rebuild of the core reads from the database, as plain JSON.

This module owns ``RestorePoint`` (the tenant rows and active allocations, drained nodes,
the usage intervals and running jobs in the order the ledger must see them, and the pending
jobs with the service they had), ``read_point`` (from a session, at a time) and ``restore``
(a fresh ``Scheduler`` from a point, exactly as ``gpupool.service.rebuild`` builds it).

Why a separate, serialisable step (ADR 0017): a rebuild (a restart, a tenancy change, a
failed cycle) replaces the live core by one restored from the database, which is not the core
that would have followed from the events alone (its allocation ids are new, its decayed
usage is re-derived from intervals, its tenancy is today's). A replay of the event log must
therefore rebuild at the same point from the same inputs; the loop logs the point as an
event-log row of kind ``restore`` with the first cycle after the rebuild, and the replay
(``gpupool.service.replay``) calls ``restore`` on it. The twin's snapshot
(``gpupool.service.twin_snapshot``) is a point read now.

Jobs are kept as the core's ``JobSpec`` (the event codec's form of a ``JobSubmitted``), so a
point never depends on how the service stores a request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.accelerator import DEFAULT_CLASS
from gpupool.core.dependencies import Milestone
from gpupool.core.events import Event, JobSubmitted, NodeDrained, ReservationCreated
from gpupool.core.fleet import Fleet
from gpupool.core.job import JobSpec
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.service import reservation_rows, store
from gpupool.service.db import AllocationRow, JobRow, JobTaskRow, TenantRow, UsageRow, UserRow
from gpupool.service.event_codec import decode, encode
from gpupool.service.job_dependencies import ended_targets
from gpupool.service.job_request import core_spec
from gpupool.service.job_status import JobStatus
from gpupool.service.tenant_tree import active_allocations, build_tenancy, tenant_rows

#: Usage older than this many decay half-lives weighs less than 2**-12 and is not replayed.
HALF_LIVES_KEPT = 12
#: the event-log row kind and type of a logged restore point
RESTORE_KIND = "restore"
RESTORE_TYPE = "RestorePoint"
#: the tenant columns a point keeps (what ``build_tenancy`` reads)
_TENANT_COLUMNS = (
    "id",
    "path",
    "name",
    "kind",
    "parent_id",
    "weight",
    "guaranteed",
    "borrow_limit",
    "clusters",
    "over_budget",
    "allowed_classes",
)


def _spec_doc(spec: JobSpec) -> dict[str, Any]:
    return encode(JobSubmitted(spec))


def _spec_of(doc: dict[str, Any]) -> JobSpec:
    return cast(JobSubmitted, decode("JobSubmitted", doc)).spec


@dataclass(slots=True)
class RestorePoint:
    """The inputs of one rebuild. ``steps`` are in ledger order: ``["usage", t, project,
    model, gpus, workload_class]`` (``gpus`` < 0 releases) and ``["run", t, job]``; a running job is
    ``{"spec", "placement", "attempt", "run_ms", "attained", "allocation_id", "cluster", "seq"}``
    (a running task of a job array is a ``["task", t, job]`` step, ``job["job"]`` its id
    ``ARRAY_INDEX``) and a pending one ``{"spec", "attempt", "run_ms", "attained",
    "preemptions"}``; a job array is ``{"spec", "array": {"ended": {index: completed},
    "running": [index]}}`` and a job held on dependencies ``{"spec", "resubmit": true,
    "settled": [[job, milestone]]}`` (submitted again in the first cycle; ADR 0019)."""

    now: int
    tenants: list[dict[str, Any]] = field(default_factory=list)
    #: active allocations' guaranteed shares: ``{"project_id", "model", "guaranteed"}``
    allocations: list[dict[str, Any]] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    steps: list[list[Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    #: advance reservations whose window has not ended (``reservation_rows.doc``; ADR 0020)
    reservations: list[dict[str, Any]] = field(default_factory=list)

    def to_doc(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "tenants": self.tenants,
            "allocations": self.allocations,
            "drained": self.drained,
            "steps": self.steps,
            "pending": self.pending,
            "reservations": self.reservations,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RestorePoint:
        """A point from ``to_doc``'s form; ``ValueError`` naming the field when it is not one."""
        for key, kind in (("now", int), ("tenants", list), ("allocations", list), ("drained", list),
                          ("steps", list), ("pending", list)):  # fmt: skip
            if not isinstance(doc.get(key), kind):
                raise ValueError(f"restore point: {key!r} is missing or not a {kind.__name__}")
        resv = doc.get("reservations", [])  # a point logged before reservations has none
        if not isinstance(resv, list):
            raise ValueError("restore point: 'reservations' is not a list")
        return cls(
            int(doc["now"]), doc["tenants"], doc["allocations"], doc["drained"], doc["steps"], doc["pending"],
            resv,
        )  # fmt: skip

    def tenancy(self, fleet: Fleet) -> Tenancy:
        """The core's tenancy of the point's rows (as ``build_tenancy`` makes it live)."""
        rows = [TenantRow(**{k: t.get(k) for k in _TENANT_COLUMNS}) for t in self.tenants]
        allocs = [
            AllocationRow(project_id=a["project_id"], model=a["model"], guaranteed=a["guaranteed"])
            for a in self.allocations
        ]
        return build_tenancy(rows, allocs, fleet)

    def running(self) -> list[dict[str, Any]]:
        return [s[2] for s in self.steps if s[0] in ("run", "task")]


def read_point(s: Session, fleet: Fleet, config: SchedulerConfig, now: int) -> RestorePoint:
    """What a rebuild at ``now`` reads from the database (writes nothing)."""
    tenants: list[TenantRow] = tenant_rows(s)
    paths = {t.id: t.path for t in tenants}
    allocs: list[AllocationRow] = active_allocations(s, now)
    point = RestorePoint(
        now,
        tenants=[{k: getattr(t, k) for k in _TENANT_COLUMNS} for t in tenants],
        allocations=[
            {"project_id": a.project_id, "model": a.model, "guaranteed": a.guaranteed}
            for a in allocs
            if a.guaranteed > 0
        ],
        drained=[n for n in store.node_states(s) if n in fleet.node_by_name],
        reservations=[
            reservation_rows.doc(reservation_rows.to_core(r)) for r in reservation_rows.live_rows(s, now)
        ],
    )
    users = {k: v for k, v in s.execute(select(UserRow.id, UserRow.name))}
    jobs = store.active_jobs(s)

    def spec_of(row: JobRow) -> JobSpec:
        return core_spec(
            store.job_id(row.seq), paths[row.project_id], users.get(row.user_id, ""), row.stored,
            row.priority_class, row.submit_ms,
        )  # fmt: skip

    # Decayed usage: closed intervals and running jobs in time order, so that the ledger
    # (closed-form in time) sees every change in the order it happened.
    horizon = now - HALF_LIVES_KEPT * config.decay_half_life_ms
    closed = list(s.scalars(select(UsageRow).where(UsageRow.end_ms.is_not(None), UsageRow.end_ms > horizon)))
    keyed: list[tuple[int, int, int, list[Any]]] = []
    for u in closed:
        project = paths.get(u.project_id, "")
        wc = u.workload_class
        keyed.append((u.start_ms, 1, u.id, ["usage", u.start_ms, project, u.model, u.gpus, wc]))
        end = u.end_ms or u.start_ms
        keyed.append((end, 0, u.id, ["usage", end, project, u.model, -u.gpus, wc]))
    arrays = {j.seq: j for j in jobs if j.stored.array}
    tasks: list[JobTaskRow] = []
    if arrays:
        tasks = list(s.scalars(select(JobTaskRow).where(JobTaskRow.array_seq.in_(sorted(arrays)))))
    running_tasks: dict[int, list[int]] = {}
    for tr in tasks:
        if tr.state != JobStatus.RUNNING:
            continue
        # running tasks of job arrays (ADR 0019): restored as jobs ``ARRAY_INDEX``, in time order too
        arr = arrays[tr.array_seq]
        tid = f"{store.job_id(arr.seq)}_{tr.idx}"
        tspec = dataclasses.replace(spec_of(arr), id=tid, array=None, dependencies=())
        t = tr.start_ms or now
        task = {
            "seq": arr.seq,
            "job": tid,
            "spec": _spec_doc(tspec),
            "placement": [[str(n), [int(i) for i in ids]] for n, ids in (tr.placement or [])],
            "attempt": tr.attempt,
            "allocation_id": tr.allocation_id or "",
            "cluster": tr.cluster or "",
        }
        keyed.append((t, 2, arr.seq, ["task", t, task]))
        running_tasks.setdefault(arr.seq, []).append(tr.idx)
    for j in jobs:
        if j.state != JobStatus.RUNNING or j.seq in arrays:
            continue
        t = j.start_ms or now
        run = {
            "seq": j.seq,
            "spec": _spec_doc(spec_of(j)),
            "placement": [[str(n), [int(i) for i in ids]] for n, ids in (j.placement or [])],
            "attempt": j.attempt,
            "run_ms": j.run_ms,
            "attained": j.attained,
            "allocation_id": j.allocation_id or "",
            "cluster": j.cluster or "",
        }
        keyed.append((t, 2, j.seq, ["run", t, run]))
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    point.steps = [k[3] for k in keyed]
    pending: list[dict[str, Any]] = []
    resubmitted: list[JobSpec] = []
    for j in jobs:
        if j.seq not in arrays and j.state != JobStatus.PENDING:
            continue
        spec = spec_of(j)
        if spec.dependencies and j.state == JobStatus.PENDING and (j.seq in arrays or j.attempt == 0):
            # held (or released but never run): submitted again in the first cycle, which
            # holds it, queues it or ends it as its dependencies now say
            pending.append({"spec": _spec_doc(spec), "resubmit": True})
            resubmitted.append(spec)
        elif j.seq in arrays:
            ended = {
                str(t.idx): t.state == JobStatus.COMPLETED
                for t in tasks
                if t.array_seq == j.seq and t.state in store.FINAL_STATES
            }
            pending.append(
                {"spec": _spec_doc(spec), "array": {"ended": ended, "running": running_tasks.get(j.seq, [])}}
            )
        else:
            pending.append(
                {
                    "spec": _spec_doc(spec),
                    "attempt": j.attempt,
                    "run_ms": j.run_ms,
                    "attained": j.attained,
                    "preemptions": j.preemptions,
                }
            )
    # the core forgets ended jobs: a resubmitted job carries its ended targets' milestones
    ended_deps = ended_targets(s.connection(), ([d.job_id for d in sp.dependencies] for sp in resubmitted))
    for doc in pending:
        if doc.get("resubmit"):
            deps = _spec_of(doc["spec"]).dependencies
            known = dict.fromkeys(
                (d.job_id, ended_deps[d.job_id].value) for d in deps if d.job_id in ended_deps
            )
            doc["settled"] = [list(k) for k in known]
    point.pending = pending
    return point


@dataclass(slots=True)
class Restored:
    """A core restored from a point, and what the loop needs beside it."""

    scheduler: Scheduler
    #: JobSubmitted events of pending jobs that could not be restored, for the first cycle
    replay: list[Event]
    #: running jobs: (service allocation id, core allocation id, job seq, cluster, task id or "")
    running: list[tuple[str, str, int, str, str]]
    #: job ids the core holds (running or pending) or will hold after the replay
    known: set[str]
    #: tenant paths by id
    paths: dict[int, str]


def restore(point: RestorePoint, fleet: Fleet, config: SchedulerConfig) -> Restored:
    """A fresh core holding the point's state; makes no decision."""
    tenancy = point.tenancy(fleet)
    sched = Scheduler(fleet, tenancy, config)
    drained: list[Event] = [NodeDrained(n) for n in point.drained if n in fleet.node_by_name]
    if drained and sched.handle(drained, point.now):  # pragma: no cover - an empty core decides nothing
        raise AssertionError("an empty core made decisions while draining nodes")
    for r in point.reservations:  # in id order, so each gets the nodes the API's check gave it
        try:
            sched.handle([ReservationCreated(reservation_rows.from_doc(r))], point.now)
        except ValueError:
            continue  # its nodes or tenants are gone from the fleet or tree: it holds nothing
    running: list[tuple[str, str, int, str, str]] = []
    known: set[str] = set()
    for step in point.steps:
        if step[0] == "task":
            task = step[2]
            tspec = _spec_of(task["spec"])
            placed = tuple((str(n), tuple(int(i) for i in ids)) for n, ids in task["placement"])
            sched.restore_running(tspec, placed, int(step[1]), task["attempt"])
            tstate = sched.job(tspec.id)
            core_alloc = tstate.allocation_id if tstate is not None else ""
            running.append(
                (str(task["allocation_id"]), core_alloc, int(task["seq"]), str(task["cluster"]), tspec.id)
            )
            continue
        if step[0] == "run":
            job = step[2]
            spec = _spec_of(job["spec"])
            placement = tuple((str(n), tuple(int(i) for i in ids)) for n, ids in job["placement"])
            # in time order with the usage replay: it holds the ledger from its start
            sched.restore_running(
                spec, placement, int(step[1]), job["attempt"], job["run_ms"], job["attained"]
            )
            state = sched.job(spec.id)
            core_alloc = state.allocation_id if state is not None else ""
            running.append((str(job["allocation_id"]), core_alloc, int(job["seq"]), str(job["cluster"]), ""))
            known.add(spec.id)
            continue
        _, t, project, model, gpus = step[:5]
        if tenancy.resolve(project) is None:
            continue  # a tenant that no longer exists keeps no fair-share history
        # effective usage (ADR 0018): the interval's accelerators weighed by the throughput the
        # core gives its class on its model, as the core charged it while it ran; a point
        # logged before the class was kept (five fields) replays with the default class
        rate: float | None = None
        if config.usage != "raw":
            wc = str(step[5]) if len(step) > 5 else DEFAULT_CLASS
            rate = int(gpus) * sched.throughputs.speed(wc, model, abs(int(gpus)))
        sched.restore_usage(project, model, int(gpus), int(t), rate)
    replay: list[Event] = []
    for job in point.pending:
        spec = _spec_of(job["spec"])
        known.add(spec.id)
        if job.get("resubmit"):
            settled = tuple((str(j), Milestone(m)) for j, m in job.get("settled", []))
            replay.append(JobSubmitted(spec, settled))
            continue
        if "array" in job:
            ended = {int(i): bool(ok) for i, ok in job["array"]["ended"].items()}
            try:
                sched.restore_array(spec, ended, [int(i) for i in job["array"]["running"]], point.now)
            except ValueError:
                replay.append(JobSubmitted(spec))
            continue
        try:
            sched.restore_pending(
                spec,
                attempt=job["attempt"],
                run_ms=job["run_ms"],
                attained=job["attained"],
                preemptions=job["preemptions"],
            )
        except ValueError:
            replay.append(JobSubmitted(spec))  # the first cycle rejects it, on the record
        known.add(spec.id)
    return Restored(sched, replay, running, known, {int(t["id"]): str(t["path"]) for t in point.tenants})
