"""``/v1/tenants`` and ``/v1/projects/{path}/members``: the tenant tree and memberships.

This module owns the tenant routes. Reading: viewers and admins see every tenant; members see
their projects' branch. Writing: a pool admin anywhere; an org admin inside their organisation.
Entitlements (``ENTITLEMENTS``: guarantee, weight, borrow limit, over-budget action, allowed
priority classes, clusters) are set from above only (ADR 0007): a pool admin sets anyone's, an
admin only those of tenants strictly below one she administers, never her own, and within what
the parent holds (``check_entitlements``); refused with 403 naming the field and the tenant.
Every change is checked by building the core's tenancy from the changed rows (guarantees must
fit their parents and the fleet, classes and clusters only narrow down the tree), written with
an audit row in one transaction, and makes the loop rebuild the core.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gpupool.core.tenancy import ANY_MODEL, CLASSES, TenancyError
from gpupool.service import store
from gpupool.service.api.caller import CallerDep, RuntimeDep, SessionDep
from gpupool.service.api.image_policy import check_image_policy
from gpupool.service.api.problems import ApiProblem, invalid, not_found, responses
from gpupool.service.auth import MEMBER_ROLES, Caller
from gpupool.service.container_image import registries_field
from gpupool.service.db import MembershipRow, TenantRow, UserRow
from gpupool.service.request_body import RequestBody
from gpupool.service.runtime import Runtime
from gpupool.service.tenant_tree import (
    active_allocations,
    build_tenancy,
    effective_classes,
    guarantees,
    leaf_kind,
    tenant_rows,
)

router = APIRouter(tags=["tenants"])

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Gpus = Annotated[int, Field(ge=0, le=10_000_000)]
ModelKey = Annotated[str, Field(min_length=1, max_length=32)]
ClusterName = Annotated[str, Field(min_length=1, max_length=64)]
ClassName = Literal["reserved", "high", "normal", "low", "preemptible"]
Classes = Annotated[
    list[ClassName],
    Field(max_length=5, description="Priority classes its members may use (null: as its parent)"),
]
#: the fields only an admin above a tenant may set (never the tenant's own admin)
ENTITLEMENTS = (
    "guaranteed", "weight", "borrow_limit", "over_budget", "allowed_classes", "clusters", "allowed_registries"
)  # fmt: skip
Registries = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=255)]],
    Field(max_length=64, description="Registries its jobs' images may come from, 'local' for image files "
          "(null: as its parent; every registry at the top)"),
]  # fmt: skip


class TenantOut(BaseModel):
    path: str
    name: str
    kind: str
    parent: str | None
    weight: float
    guaranteed: dict[str, int]
    borrow_limit: dict[str, int] | None
    clusters: list[str]
    over_budget: str
    allowed_classes: list[str] | None = Field(description="Its own list (null: as its parent)")
    classes: list[str] = Field(description="The priority classes its members may use, in effect")
    allowed_registries: list[str] | None = Field(
        default=None, description="Its own image policy (null: as its parent)"
    )


class TenantIn(RequestBody):
    key: Key
    parent: Annotated[str | None, Field(max_length=255)] = None
    name: Annotated[str, Field(max_length=255)] = ""
    weight: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    guaranteed: Annotated[dict[ModelKey, Gpus], Field(max_length=64)] = Field(default_factory=dict)
    borrow_limit: Annotated[dict[ModelKey, Gpus] | None, Field(max_length=64)] = None
    clusters: Annotated[list[ClusterName], Field(max_length=64)] = Field(default_factory=list)
    over_budget: Literal["preemptible", "reject"] = "preemptible"
    allowed_classes: Classes | None = None
    allowed_registries: Registries | None = None
    _registries = field_validator("allowed_registries")(registries_field)


class TenantPatch(RequestBody):
    name: Annotated[str | None, Field(max_length=255)] = None
    weight: Annotated[float | None, Field(gt=0, le=1e6)] = None
    guaranteed: Annotated[dict[ModelKey, Gpus] | None, Field(max_length=64)] = None
    borrow_limit: Annotated[dict[ModelKey, Gpus] | None, Field(max_length=64)] = None
    clusters: Annotated[list[ClusterName] | None, Field(max_length=64)] = None
    over_budget: Literal["preemptible", "reject"] | None = None
    allowed_classes: Classes | None = None
    allowed_registries: Registries | None = None
    _registries = field_validator("allowed_registries")(registries_field)


class MemberIn(RequestBody):
    user: Annotated[str, Field(min_length=1, max_length=64)]
    role: Literal["member", "lead", "admin"] = "member"


class MemberOut(BaseModel):
    tenant: str
    user: str
    role: str


def tenant_out(row: TenantRow, paths: dict[int, str], classes: frozenset[str]) -> TenantOut:
    return TenantOut(
        path=row.path,
        name=row.name,
        kind=row.kind,
        parent=paths.get(row.parent_id) if row.parent_id is not None else None,
        weight=row.weight,
        guaranteed=dict(row.guaranteed),
        borrow_limit=None if row.borrow_limit is None else dict(row.borrow_limit),
        clusters=list(row.clusters),
        over_budget=row.over_budget,
        allowed_classes=None if row.allowed_classes is None else list(row.allowed_classes),
        classes=[c for c in CLASSES if c in classes],
        allowed_registries=row.allowed_registries,
    )


def _out(s: Session, row: TenantRow) -> TenantOut:
    """``tenant_out`` of one row, with its parent's path and its classes in effect."""
    s.flush()
    rows = tenant_rows(s)
    paths = {r.id: r.path for r in rows}
    return tenant_out(row, paths, effective_classes(rows)[row.id])


def _refuse(field: str, path: str, why: str) -> ApiProblem:
    return ApiProblem(403, f"{field} of {path}: {why}", kind="forbidden", errors=[(field, why)])


def check_entitlements(
    s: Session, rt: Runtime, caller: Caller, path: str, parent: TenantRow | None, given: dict[str, Any]
) -> None:
    """403 unless ``caller`` may set the entitlements in ``given`` of the tenant at ``path``.

    A pool admin may set any (the tree's own rules still apply: 422). An admin only of a
    tenant strictly below one she administers (so never her own: she cannot raise what she
    holds against the others), and within what its parent holds: a guarantee no larger than
    the parent's, a borrow limit no larger than the parent's, ``preemptible`` past budget only
    if the parent has it, classes the parent allows. A weight only divides the parent's share
    among its children, so any weight is within what the parent holds.
    """
    fields = [f for f in ENTITLEMENTS if f in given]
    check_image_policy(s, caller, path, parent, given.get("allowed_registries"))
    if not fields or caller.is_pool_admin:
        return
    if parent is None or not caller.sets_entitlements_of(parent.id):
        above = f"an admin of {parent.path} or a pool admin" if parent is not None else "a pool admin"
        raise _refuse(
            fields[0], path, f"the entitlements of a tenant you administer are set from above ({above})"
        )
    held = guarantees([parent], active_allocations(s, rt.clock()))[parent.id]
    for model, g in (given.get("guaranteed") or {}).items():
        cap = sum(held.values()) if model == ANY_MODEL else held.get(model, held.get(ANY_MODEL, 0))
        if g > cap:
            raise _refuse(
                f"guaranteed.{model}", path, f"{g} is more than its parent {parent.path} holds ({cap})"
            )
    if "borrow_limit" in given and parent.borrow_limit is not None:
        limit = given["borrow_limit"]
        if limit is None:
            raise _refuse("borrow_limit", path, f"no limit is more than its parent {parent.path} has")
        for model, v in limit.items():
            most = parent.borrow_limit.get(model, parent.borrow_limit.get(ANY_MODEL))
            if most is not None and v > most:
                raise _refuse(
                    f"borrow_limit.{model}",
                    path,
                    f"{v} is more than its parent {parent.path} may borrow ({most})",
                )
    if given.get("over_budget") == "preemptible" and parent.over_budget == "reject":
        raise _refuse("over_budget", path, f"its parent {parent.path} rejects jobs past budget: so must it")
    wanted = given.get("allowed_classes")
    if wanted is not None:
        allowed = effective_classes(tenant_rows(s))[parent.id]
        wider = [c for c in wanted if c not in allowed]
        if wider:
            raise _refuse(
                "allowed_classes",
                path,
                f"{', '.join(wider)} not allowed to its parent {parent.path} "
                f"(which allows {', '.join(c for c in CLASSES if c in allowed)})",
            )


def visible_tenant(s: Session, caller: Caller, path: str) -> TenantRow:
    row = s.scalars(select(TenantRow).where(TenantRow.path == path)).first()
    if row is None or not caller.can_see(row.id):
        raise not_found(f"tenant {path!r}")
    return row


def _check_models(rt: Runtime, field: str, values: dict[str, int] | None) -> None:
    present = rt.fleet.gpus_by_model()
    for m in values or {}:
        if m != ANY_MODEL and m not in present:
            raise invalid(
                f"{field}.{m}", f"the fleet has no {m} accelerators (it has: {', '.join(present)}, or *)"
            )


def _check_clusters(rt: Runtime, clusters: list[str] | None) -> None:
    for i, c in enumerate(clusters or []):
        if c not in rt.fleet.cluster_by_name:
            raise invalid(
                f"clusters[{i}]", f"unknown cluster {c!r} (known: {', '.join(rt.fleet.cluster_by_name)})"
            )


def validate_tree(s: Session, rt: Runtime) -> None:
    """Build the core's tenancy from the (flushed, uncommitted) rows: 422 if it contradicts."""
    s.flush()
    try:
        build_tenancy(tenant_rows(s), active_allocations(s, rt.clock()), rt.fleet)
    except TenancyError as e:
        raise ApiProblem(422, str(e), kind="invalid-tenancy") from None


@router.get("/v1/tenants", response_model=list[TenantOut], responses=responses(401), summary="Tenants")
def list_tenants(
    caller: CallerDep, s: SessionDep, kind: Literal["sector", "organisation", "project"] | None = None
) -> list[TenantOut]:
    rows = tenant_rows(s)
    paths = {r.id: r.path for r in rows}
    classes = effective_classes(rows)
    return [
        tenant_out(r, paths, classes[r.id])
        for r in rows
        if caller.can_see(r.id) and (kind is None or r.kind == kind)
    ]


@router.get(
    "/v1/tenants/{path:path}", response_model=TenantOut, responses=responses(401, 404), summary="A tenant"
)
def get_tenant(path: str, caller: CallerDep, s: SessionDep) -> TenantOut:
    return _out(s, visible_tenant(s, caller, path))


@router.post(
    "/v1/tenants",
    status_code=201,
    response_model=TenantOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Add a tenant",
)
def create_tenant(body: TenantIn, caller: CallerDep, rt: RuntimeDep) -> TenantOut:
    _check_models(rt, "guaranteed", body.guaranteed)
    _check_models(rt, "borrow_limit", body.borrow_limit)
    _check_clusters(rt, body.clusters)
    now = rt.clock()
    with rt.factory.begin() as s:
        parent = None
        if body.parent is not None:
            parent = visible_tenant(s, caller, body.parent)
            if not caller.can_manage(parent.id):
                raise ApiProblem(403, f"you do not administer {parent.path}", kind="forbidden")
            if parent.kind == "project":
                raise invalid("parent", f"{parent.path} is a project: projects have no children")
        elif not caller.is_pool_admin:
            raise ApiProblem(403, "only a pool admin may add a sector", kind="forbidden")
        path = body.key if parent is None else f"{parent.path}/{body.key}"
        if s.scalars(select(TenantRow.id).where(TenantRow.path == path)).first() is not None:
            raise ApiProblem(409, f"tenant {path!r} exists", kind="conflict")
        check_entitlements(s, rt, caller, path, parent, body.model_dump(exclude_unset=True))
        row = TenantRow(
            path=path,
            name=body.name or body.key,
            kind=leaf_kind(path),
            parent_id=parent.id if parent else None,
            weight=body.weight,
            guaranteed=dict(body.guaranteed),
            borrow_limit=body.borrow_limit,
            clusters=list(body.clusters),
            over_budget=body.over_budget,
            allowed_classes=body.allowed_classes,
            allowed_registries=body.allowed_registries,
            created_ms=now,
        )
        s.add(row)
        validate_tree(s, rt)
        store.audit(s, caller.name, "tenant.create", f"tenant/{path}", body.model_dump(), now)
        out = _out(s, row)
    rt.request_rebuild()
    return out


@router.patch(
    "/v1/tenants/{path:path}",
    response_model=TenantOut,
    responses=responses(401, 403, 404, 422),
    summary="Change a tenant",
)
def patch_tenant(path: str, body: TenantPatch, caller: CallerDep, rt: RuntimeDep) -> TenantOut:
    _check_models(rt, "guaranteed", body.guaranteed)
    _check_models(rt, "borrow_limit", body.borrow_limit)
    _check_clusters(rt, body.clusters)
    now = rt.clock()
    changes = body.model_dump(exclude_unset=True)
    with rt.factory.begin() as s:
        row = visible_tenant(s, caller, path)
        if not caller.can_manage(row.id):
            raise ApiProblem(403, f"you do not administer {path}", kind="forbidden")
        for k, v in changes.items():
            if v is None and k not in ("borrow_limit", "allowed_classes", "allowed_registries"):
                raise invalid(k, "must not be null")
        parent = s.get(TenantRow, row.parent_id) if row.parent_id is not None else None
        check_entitlements(s, rt, caller, path, parent, changes)
        for k, v in changes.items():
            setattr(row, k, v)
        validate_tree(s, rt)
        store.audit(s, caller.name, "tenant.update", f"tenant/{path}", changes, now)
        out = _out(s, row)
    rt.request_rebuild()
    return out


@router.get(
    "/v1/projects/{path:path}/members",
    response_model=list[MemberOut],
    responses=responses(401, 404),
    summary="Members of a tenant",
)
def list_members(path: str, caller: CallerDep, s: SessionDep) -> list[MemberOut]:
    row = visible_tenant(s, caller, path)
    got = s.execute(
        select(UserRow.name, MembershipRow.role)
        .join(MembershipRow, MembershipRow.user_id == UserRow.id)
        .where(MembershipRow.tenant_id == row.id)
        .order_by(UserRow.name)
    ).all()
    return [MemberOut(tenant=row.path, user=u, role=r) for u, r in got]


@router.post(
    "/v1/projects/{path:path}/members",
    status_code=201,
    response_model=MemberOut,
    responses=responses(401, 403, 404, 422),
    summary="Add or change a membership",
)
def add_member(path: str, body: MemberIn, caller: CallerDep, rt: RuntimeDep, response: Response) -> MemberOut:
    assert body.role in MEMBER_ROLES
    now = rt.clock()
    with rt.factory.begin() as s:
        row = visible_tenant(s, caller, path)
        if not caller.can_manage(row.id):
            raise ApiProblem(403, f"you do not administer {path}", kind="forbidden")
        if body.role in ("member", "lead") and row.kind != "project":
            raise invalid("role", "members and leads belong to projects; other tenants take admins")
        user = s.scalars(select(UserRow).where(UserRow.name == body.user)).first()
        if user is None:
            raise invalid("user", f"no user {body.user!r}")
        m = s.scalars(
            select(MembershipRow).where(MembershipRow.user_id == user.id, MembershipRow.tenant_id == row.id)
        ).first()
        if m is None:
            s.add(MembershipRow(user_id=user.id, tenant_id=row.id, role=body.role))
        else:
            m.role = body.role
            response.status_code = 200
        store.audit(s, caller.name, "membership.set", f"tenant/{path}", body.model_dump(), now)
    return MemberOut(tenant=path, user=body.user, role=body.role)


@router.delete(
    "/v1/projects/{path:path}/members/{user}",
    status_code=204,
    responses=responses(401, 403, 404),
    summary="Remove a membership",
)
def remove_member(path: str, user: str, caller: CallerDep, rt: RuntimeDep) -> Response:
    now = rt.clock()
    with rt.factory.begin() as s:
        row = visible_tenant(s, caller, path)
        if not caller.can_manage(row.id):
            raise ApiProblem(403, f"you do not administer {path}", kind="forbidden")
        uid = s.scalars(select(UserRow.id).where(UserRow.name == user)).first()
        if uid is None:
            raise not_found(f"member {user!r} of {path}")
        gone = s.execute(
            delete(MembershipRow).where(MembershipRow.user_id == uid, MembershipRow.tenant_id == row.id)
        )
        if not getattr(gone, "rowcount", 0):
            raise not_found(f"member {user!r} of {path}")
        store.audit(s, caller.name, "membership.remove", f"tenant/{path}", {"user": user}, now)
    return Response(status_code=204)
