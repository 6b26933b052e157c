"""``/v1/jobs``: submit (idempotent), list, get, cancel, explain, logs.

This module owns the job routes and their schemas. A submission is checked (schema, fleet,
walltime policy, membership, budget) before anything is written; then the job row and its
inbox event are written in one transaction (``store.accept_submission``) and the loop is
woken. A member sees only jobs of their projects; a job the caller may not see is a 404.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.tenancy import CLASSES
from gpupool.service import array_tasks, job_dependencies, store, tenant_budget
from gpupool.service.api.array_jobs import TaskOut, indices, task_row, tasks_of
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.image_policy import check_image
from gpupool.service.api.paging import CursorQ, LimitQ, Page, after, next_cursor
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.auth import Caller
from gpupool.service.db import InboxRow, JobRow, TenantRow, UserRow
from gpupool.service.directory import Tenant
from gpupool.service.job_request import JobRequest, Problem, check_against, core_spec, stored_spec
from gpupool.service.job_spec import StoredJobSpec
from gpupool.service.job_status import JobStatus
from gpupool.service.log_files import log_paths
from gpupool.service.runtime import Runtime

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
#: a job's state in answers and filters (an enum in the OpenAPI document)
StateName = JobStatus


class PlacementOut(BaseModel):
    node: str
    accelerators: list[int]


class JobOut(BaseModel):
    id: str
    name: str
    project: str
    user: str
    state: StateName
    priority_class: str
    requested_priority_class: str
    over_budget: bool
    gpus: int
    models: list[str]
    command: list[str]
    walltime_s: int
    workload_class: str
    submit_ms: int
    start_ms: int | None
    end_ms: int | None
    attempt: int
    allocation_id: str | None
    cluster: str | None
    model: str | None
    placement: list[PlacementOut]
    reason: str
    detail: str
    estimated_start_ms: int | None
    exit_code: int | None
    preemptions: int
    queue_position: int | None = Field(
        None, description="A pending job's 1-based place in the order of the pool it waits for"
    )
    queue_pool: str | None = Field(None, description="The pool a pending job waits for (H100 in c0)")
    image: str | None = None  # the container image (null: the executor's environment)
    dependency: str = ""
    #: a job array's indices and limit (``0-99%10``); its tasks' states on ``GET /v1/jobs/{id}``
    array: str = ""
    tasks: list[TaskOut] | None = None


class Explanation(BaseModel):
    job_id: str
    state: StateName
    reason: str
    detail: str
    estimated_start_ms: int | None
    over_budget: bool
    budget: str
    queue_position: int | None = None
    queue_pool: str | None = None


def job_out(row: JobRow, project: str, user: str) -> JobOut:
    spec = row.stored
    waits = row.state == JobStatus.PENDING
    return JobOut(
        id=store.job_id(row.seq),
        name=row.name,
        project=project,
        user=user,
        state=row.state,
        priority_class=row.priority_class,
        requested_priority_class=spec.priority_class,
        over_budget=row.over_budget,
        gpus=spec.gpus,
        models=list(spec.models),
        command=list(spec.command),
        image=spec.image,
        walltime_s=spec.walltime_s,
        workload_class=spec.workload_class,
        submit_ms=row.submit_ms,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        attempt=row.attempt,
        allocation_id=row.allocation_id,
        cluster=row.cluster,
        model=row.model,
        placement=[
            PlacementOut(node=str(n), accelerators=[int(i) for i in ids]) for n, ids in row.placement or []
        ],
        reason=row.reason,
        detail=row.detail,
        estimated_start_ms=row.estimated_start_ms if waits else None,
        exit_code=row.exit_code,
        preemptions=row.preemptions,
        queue_position=row.queue_position if waits else None,
        queue_pool=row.queue_pool if waits else None,
        dependency=spec.dependency,
        array=spec.array,
    )


def job_names(s: Session, rows: list[JobRow]) -> tuple[dict[int, str], dict[int, str]]:
    """The project paths and user names of these jobs, by id (one query each, not per row)."""
    pids = sorted({r.project_id for r in rows})
    uids = sorted({r.user_id for r in rows})
    paths = {k: v for k, v in s.execute(select(TenantRow.id, TenantRow.path).where(TenantRow.id.in_(pids)))}
    users = {k: v for k, v in s.execute(select(UserRow.id, UserRow.name).where(UserRow.id.in_(uids)))}
    return paths, users


def job_out_of(s: Session, row: JobRow) -> JobOut:
    """``job_out`` of one row, reading its project path and user name."""
    paths, users = job_names(s, [row])
    return job_out(row, paths.get(row.project_id, ""), users.get(row.user_id, ""))


def resolve_project(s: Session, caller: Caller, name: str) -> TenantRow:
    """A project by path or unique leaf name that the caller may see (else 404)."""
    row = s.scalars(select(TenantRow).where(TenantRow.path == name)).first()
    if row is None and "/" not in name:
        leaves = list(
            s.scalars(select(TenantRow).where(TenantRow.kind == "project", TenantRow.path.like(f"%/{name}")))
        )
        leaves = [t for t in leaves if t.path.rsplit("/", 1)[-1] == name]
        if len(leaves) == 1:
            row = leaves[0]
        elif len(leaves) > 1 and any(caller.can_see(t.id) for t in leaves):
            raise invalid("project", f"{name!r} names several projects: give its full path")
    if row is None or row.kind != "project" or not caller.can_see(row.id):
        raise ApiProblem(404, f"project {name!r} not found")
    return row


def visible_task(s: Session, caller: Caller, job_id: str) -> tuple[JobRow, int] | None:
    """A task ``jSEQ_INDEX`` of an array the caller may see: (the array's row, the index);
    None if ``job_id`` is no task id; 404 if there is no such task."""
    got = array_tasks.task_of(job_id)
    if got is None:
        return None
    row = store.get_job(s, got[0])
    if row is None or not caller.can_see(row.project_id) or got[1] not in indices(row):
        raise not_found(f"job {job_id!r}")
    return row, got[1]


def visible_job(s: Session, caller: Caller, job_id: str) -> JobRow:
    seq = store.job_seq(job_id)
    row = store.get_job(s, seq) if seq is not None else None
    if row is None or not caller.can_see(row.project_id):
        raise not_found(f"job {job_id!r}")
    return row


def resolve_submit_project(rt: Runtime, caller: Caller, name: str) -> Tenant:
    """``resolve_project`` from the directory cache (the submission path reads no tenant row)."""
    found = rt.directory.tenant(name)
    if found is None and "/" not in name:
        leaves = rt.directory.projects_named(name)
        if len(leaves) == 1:
            found = leaves[0]
        elif len(leaves) > 1 and any(caller.can_see(t.id) for t in leaves):
            raise invalid("project", f"{name!r} names several projects: give its full path")
    if found is None or found.kind != "project" or not caller.can_see(found.id):
        raise ApiProblem(404, f"project {name!r} not found")
    return found


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    responses=responses(400, 401, 403, 404, 409, 413, 422),
    summary="Submit a job",
)
def submit(
    req: JobRequest,
    caller: CallerDep,
    rt: RuntimeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Repeat a submission safely: the same key returns the same job",
        ),
    ] = None,
) -> Response:
    # The answer is serialised here: FastAPI would re-validate a returned model in a second
    # hop to the thread pool. (Most submissions do not reach this route at all: see
    # ``fast_submit``, which calls ``accept_job`` too.)
    status, out = accept_job(rt, caller, req, idempotency_key)
    return Response(out, status_code=status, media_type="application/json")


def accept_job(
    rt: Runtime, caller: Caller, req: JobRequest, idempotency_key: str | None
) -> tuple[int, bytes]:
    """Submit ``req``: (201, the new job as JSON), or (200, the job the key already names).

    Raises ``ApiProblem`` (403, 404, 409, 422). The hot path of the API (>= 1,000/s is the
    goal): tenants, allocations and the caller come from the directory cache, and a fresh
    submission is one write transaction. It blocks: call it from a worker thread.
    """
    project = resolve_submit_project(rt, caller, req.project)
    if not caller.can_submit(project.id):
        raise ApiProblem(403, f"you are not a member of project {project.path}", kind="forbidden")
    if req.priority_class not in project.classes:
        # reserved and high preempt others: a right granted from above (allowed_classes)
        raise ApiProblem(
            403,
            f"priority class {req.priority_class!r} is not allowed in project {project.path} "
            f"(allowed: {', '.join(c for c in CLASSES if c in project.classes)}); "
            "an admin above the project grants it with allowed_classes",
            kind="class-not-allowed",
        )
    if req.image is not None:  # the image policy (ADR 0013): read only for a job with an image
        with rt.reader() as s:
            check_image(s, project.id, project.path, req.image)
    settings = rt.settings
    try:
        check_against(req, rt.fleet, settings)
    except Problem as p:
        raise invalid(p.field, p.message) from None
    if req.dependency:  # only jobs the caller may see (404, as for the job itself)
        with rt.reader() as s:
            try:
                job_dependencies.check_targets(s.connection(), caller, req.dependency)
            except job_dependencies.TargetNotFound as e:
                raise ApiProblem(404, str(e)) from None
    spec = stored_spec(req, settings, project.path)
    now = rt.clock()
    # What could never start is refused now, naming the limit, not accepted to wait forever
    # (the core's admission rule: pure, no state change; see ``Runtime.refusal``)
    refused = rt.refusal(core_spec("j-admission", project.path, caller.name, spec, req.priority_class, now))
    if refused is not None:
        rt.metrics.submissions.labels("refused").inc()
        raise ApiProblem(422, refused[1], kind=refused[0].value)
    with rt.reader() as s:
        # the project's budget, then its organisation's and sector's (ADR 0018)
        verdict = tenant_budget.verdict(
            s, rt.directory, project.id, project.path, req.models, now, rt.catalogue
        )
        if verdict.over and verdict.action == "reject":
            # a retry of a job accepted before the budget ran out still gets its job back
            old = store.existing_job(s, caller.user_id, idempotency_key) if idempotency_key else None
            if old is not None:
                return _replayed(s, old, spec, rt)
            rt.metrics.submissions.labels("refused").inc()
            raise ApiProblem(409, verdict.detail, kind="over-budget")
    priority = "preemptible" if verdict.over else req.priority_class
    if verdict.over:
        spec = dataclasses.replace(spec, budget_note=verdict.detail)
    new = store.NewJob(
        project_id=project.id,
        user_id=caller.user_id,
        idempotency_key=idempotency_key,
        name=req.name,
        spec=spec,
        priority_class=priority,
        over_budget=verdict.over,
        reason="over-budget" if verdict.over else "queued",
        detail=verdict.detail,
    )
    seq = store.accept_submission(rt.engine, new, now)
    if seq is None:  # the key names an earlier job of this user: the one lookup, only now
        assert idempotency_key is not None
        with rt.reader() as s:
            old = store.existing_job(s, caller.user_id, idempotency_key)
            if old is None:  # pragma: no cover - the unique constraint said it exists
                raise ApiProblem(409, "this Idempotency-Key is being used right now", kind="conflict")
            return _replayed(s, old, spec, rt)
    rt.metrics.submissions.labels("accepted").inc()
    rt.wake_loop()
    return 201, _accepted_out(seq, new, now, project.path, caller.name).model_dump_json().encode()


def _accepted_out(seq: int, new: store.NewJob, now: int, project: str, user: str) -> JobOut:
    """What ``job_out`` would say of the row just written (without reading it back)."""
    spec = new.spec
    return JobOut(
        id=store.job_id(seq),
        name=new.name,
        project=project,
        user=user,
        state=JobStatus.PENDING,
        priority_class=new.priority_class,
        requested_priority_class=spec.priority_class,
        over_budget=new.over_budget,
        gpus=spec.gpus,
        models=list(spec.models),
        command=list(spec.command),
        image=spec.image,
        walltime_s=spec.walltime_s,
        workload_class=spec.workload_class,
        submit_ms=now,
        start_ms=None,
        end_ms=None,
        attempt=0,
        allocation_id=None,
        cluster=None,
        model=None,
        placement=[],
        reason=new.reason,
        detail=new.detail,
        estimated_start_ms=None,
        exit_code=None,
        preemptions=0,
        queue_position=None,
        queue_pool=None,
        dependency=spec.dependency,
        array=spec.array,
    )


def _replayed(s: Session, row: JobRow, spec: StoredJobSpec, rt: Runtime) -> tuple[int, bytes]:
    if not row.stored.same_request(spec):
        raise ApiProblem(
            409, "this Idempotency-Key was used for a different request", kind="idempotency-key-reused"
        )
    rt.metrics.submissions.labels("repeated").inc()
    return 200, job_out_of(s, row).model_dump_json().encode()


@router.get("", response_model=Page[JobOut], responses=responses(401, 422), summary="List jobs")
def list_jobs(
    caller: CallerDep,
    s: SessionDep,
    project: Annotated[str | None, Query(max_length=255)] = None,
    state: StateName | None = None,
    user: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=64)] = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Page[JobOut]:
    before = after(cursor)
    projects = caller.visible
    if projects is not None:
        projects = frozenset(caller.member_of | caller.admin_of)
    if project is not None:
        p = s.scalars(select(TenantRow).where(TenantRow.path == project)).first()
        if p is None or not caller.can_see(p.id):
            return Page[JobOut](items=[])
        projects = frozenset({p.id}) if projects is None or p.id in projects else frozenset()
    user_id = None
    if user is not None:
        user_id = s.scalars(select(UserRow.id).where(UserRow.name == user)).first()
        if user_id is None:
            return Page[JobOut](items=[])
    rows = store.list_jobs(s, store.JobFilter(projects, state, user_id, model), limit, before)
    paths, users = job_names(s, rows)
    items = [job_out(r, paths.get(r.project_id, ""), users.get(r.user_id, "")) for r in rows]
    return Page[JobOut](items=items, next_cursor=next_cursor([r.seq for r in rows], limit))


JobIdPath = Annotated[str, "job id"]


@router.get("/{job_id}", response_model=JobOut, responses=responses(401, 404), summary="A job")
def get_job(job_id: str, caller: CallerDep, s: SessionDep) -> JobOut:
    task = visible_task(s, caller, job_id)
    if task is not None:  # one task of an array: the array's request, the task's life
        out = job_out_of(s, task[0])
        t = task_row(s, task[0], task[1])
        state = JobStatus.PENDING if t is None else t.state
        if t is None and task[0].state in store.FINAL_STATES:
            state = JobStatus.CANCELLED
        return out.model_copy(
            update={
                "id": job_id,
                "state": state,
                "reason": state if t is None else t.reason,
                "detail": "" if t is None else t.detail,
                "attempt": 0 if t is None else t.attempt,
                "start_ms": None if t is None else t.start_ms,
                "end_ms": None if t is None else t.end_ms,
                "exit_code": None if t is None else t.exit_code,
                "allocation_id": None if t is None else t.allocation_id,
                "cluster": None if t is None else t.cluster,
                "model": None if t is None else t.model,
                "placement": []
                if t is None
                else [
                    PlacementOut(node=str(n), accelerators=[int(i) for i in ids])
                    for n, ids in t.placement or []
                ],
                "estimated_start_ms": None,
            }
        )
    row = visible_job(s, caller, job_id)
    out = job_out_of(s, row)
    if row.stored.array:
        out.tasks = tasks_of(s, row)
    return out


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    responses=responses(401, 403, 404, 409),
    summary="Cancel a job",
)
def cancel(job_id: str, caller: CallerDep, rt: RuntimeDep, s: SessionDep) -> JobOut:
    task = visible_task(s, caller, job_id)
    if task is not None:  # one task of an array
        arr, index = task
        if not caller.can_act_on_job(arr.project_id):
            raise ApiProblem(403, "only members of the job's project may cancel it", kind="forbidden")
        t = task_row(s, arr, index)
        if arr.state in store.FINAL_STATES or (t is not None and t.state in store.FINAL_STATES):
            raise ApiProblem(409, f"job {job_id} has already ended", kind="job-finished")
        with rt.factory.begin() as w:
            w.add(InboxRow(kind="cancel-task", job_seq=arr.seq, node=str(index), created_ms=rt.clock()))
        rt.wake_loop()
        return get_job(job_id, caller, s)
    row = visible_job(s, caller, job_id)
    if not caller.can_act_on_job(row.project_id):
        raise ApiProblem(403, "only members of the job's project may cancel it", kind="forbidden")
    if row.state in store.FINAL_STATES:
        raise ApiProblem(409, f"job {job_id} is already {row.state}", kind="job-finished")
    out = job_out_of(s, row)
    store.accept_cancel(rt.factory, row.seq, rt.clock())
    rt.wake_loop()
    return out


@router.get(
    "/{job_id}/explain",
    response_model=Explanation,
    responses=responses(401, 404),
    summary="Why a job waits and when it will probably start",
)
def explain(job_id: str, caller: CallerDep, s: SessionDep) -> Explanation:
    task = visible_task(s, caller, job_id)
    if task is not None:
        return _explain_task(s, job_id, *task)
    row = visible_job(s, caller, job_id)
    note = row.stored.budget_note
    detail = row.detail
    waits = row.state == JobStatus.PENDING
    if row.over_budget and waits and row.reason != "over-budget":
        detail = (
            f"{detail} (over budget: runs as preemptible)" if detail else "over budget: runs as preemptible"
        )
    return Explanation(
        job_id=job_id,
        state=row.state,
        reason=row.reason,
        detail=detail,
        estimated_start_ms=row.estimated_start_ms if waits else None,
        over_budget=row.over_budget,
        budget=note,
        queue_position=row.queue_position if waits else None,
        queue_pool=row.queue_pool if waits else None,
    )


def _explain_task(s: Session, job_id: str, arr: JobRow, index: int) -> Explanation:
    """A task of an array: its own row once the loop has acted on it; before that it waits
    behind the array's window of tasks (ADR 0019), and says so with the array's reason."""
    t = task_row(s, arr, index)
    if t is not None:
        return Explanation(
            job_id=job_id,
            state=t.state,
            reason=t.reason,
            detail=t.detail,
            estimated_start_ms=None,
            over_budget=arr.over_budget,
            budget=arr.stored.budget_note,
        )
    ended = arr.state in store.FINAL_STATES
    untouched = JobStatus.CANCELLED if ended else JobStatus.PENDING  # as the array's task list shows it
    array_id = store.job_id(arr.seq)
    return Explanation(
        job_id=job_id,
        state=untouched,
        reason=untouched.value,
        detail=(
            f"array {array_id} ended before this task started"
            if ended
            else f"not started yet: a task of array {array_id}, queued when the array's window "
            f"reaches it" + (f" ({arr.detail})" if arr.detail else "")
        ),
        estimated_start_ms=None,
        over_budget=arr.over_budget,
        budget=arr.stored.budget_note,
    )


@router.get(
    "/{job_id}/logs",
    response_class=PlainTextResponse,
    responses={**responses(401, 404, 422), 200: {"content": {"text/plain": {}}, "description": "log text"}},
    summary="A job's output (the latest allocation's by default)",
)
def logs(
    job_id: str,
    caller: CallerDep,
    rt: RuntimeDep,
    s: SessionDep,
    stream: Literal["out", "err", "stdout", "stderr"] = "out",
    attempt: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    tail: Annotated[int | None, Query(ge=1, le=1_000_000, description="Only the last lines")] = None,
    tail_bytes: Annotated[int, Query(ge=1, le=16 << 20, description="Read at most this much")] = 1 << 20,
) -> PlainTextResponse:
    task = visible_task(s, caller, job_id)
    if task is not None:
        t = task_row(s, *task)
        attempts = 0 if t is None else t.attempt
    else:
        row = visible_job(s, caller, job_id)
        attempts = row.attempt
    n = attempt or attempts
    if n < 1 or n > attempts:
        raise ApiProblem(
            404, f"job {job_id} has no attempt {n}" if attempts else f"job {job_id} has not started"
        )
    aid = f"{job_id}.{n}" if task is not None else store.allocation_id(row.seq, n)
    out, err = log_paths(rt.settings.log_dir / job_id, aid)
    path = out if stream in ("out", "stdout") else err
    text = ""
    if path.is_file():
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - tail_bytes))
            text = f.read().decode("utf-8", "replace")
    if tail is not None:
        text = "".join(text.splitlines(keepends=True)[-tail:])
    return PlainTextResponse(text)
