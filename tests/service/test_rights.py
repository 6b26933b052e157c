"""Rights (ADR 0007): entitlements set from above, the last pool admin, viewers, classes, tokens.

Every test attacks as a tenant would: an admin raising her own tenant's entitlements, a member
submitting at ``reserved``, a viewer trying each write route of the OpenAPI schema, a ``read``
token submitting, an expired token, a flood of bad tokens against the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.service.api.app import create_app
from gpupool.service.auth import DEFAULT_TOKEN_TTL_MS
from gpupool.service.refusals import Refusal
from tests.service.conftest import Service, make_service

runner = CliRunner()
ORG, PROJECT, SIBLING = "academia/snu", "academia/snu/vision", "academia/snu/nlp"
ALL = ["normal", "low", "preemptible", "high"]

#: each entitlement: a value for the admin's own tenant, one within what the parent (snu)
#: holds for a project below it, and one beyond it (None: weight has no "beyond")
FIELDS: dict[str, tuple[Any, Any, Any]] = {
    "guaranteed": ({"H100": 24}, {"H100": 4}, {"H100": 17}),
    "weight": (1e6, 5.0, None),
    "borrow_limit": ({"*": 40}, {"*": 8}, {"*": 64}),
    "over_budget": ("reject", "reject", "preemptible"),
    "allowed_classes": (["normal", "high"], ["normal", "low"], ["normal", "reserved"]),
    "clusters": (["kisti"], ["kisti"], None),
}


def _admins(service: Service) -> None:
    """prof.lee administers the organisation snu, pi.park the project vision."""
    for user, tenant in (("prof.lee", ORG), ("pi.park", PROJECT)):
        assert service.call("POST", "/v1/users", json={"name": user}).status_code == 201
        r = service.call("POST", f"/v1/projects/{tenant}/members", json={"user": user, "role": "admin"})
        assert r.status_code == 201, r.text


def _tenant(service: Service, path: str) -> dict[str, Any]:
    r = service.call("GET", f"/v1/tenants/{path}")
    assert r.status_code == 200
    got: dict[str, Any] = r.json()
    return got


def _refused(r: Any, field: str, path: str) -> None:
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"{field}") and path in detail, detail
    assert r.json()["errors"][0]["field"].split(".")[0] == field


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize(("user", "own"), [("prof.lee", ORG), ("pi.park", PROJECT)])
def test_an_admin_never_sets_her_own_tenants_entitlements(
    sqlite_service: Service, field: str, user: str, own: str
) -> None:
    service = sqlite_service
    _admins(service)
    before = _tenant(service, own)
    r = service.call("PATCH", f"/v1/tenants/{own}", user, json={field: FIELDS[field][0]})
    _refused(r, field, own)
    assert _tenant(service, own) == before
    # what is not an entitlement stays hers to change
    assert service.call("PATCH", f"/v1/tenants/{own}", user, json={"name": "새 이름"}).status_code == 200


@pytest.mark.parametrize("field", list(FIELDS))
def test_an_org_admin_sets_her_projects_entitlements_within_what_hers_holds(
    sqlite_service: Service, field: str
) -> None:
    service = sqlite_service
    _admins(service)
    _, within, beyond = FIELDS[field]
    if field == "borrow_limit":  # snu borrows without limit unless the pool admin sets one
        assert service.call("PATCH", f"/v1/tenants/{ORG}", json={field: {"*": 16}}).status_code == 200
    if field == "over_budget":  # a parent that rejects past budget: its children must too
        r = service.call("PATCH", f"/v1/tenants/{PROJECT}", "prof.lee", json={field: "reject"})
        assert r.status_code == 200
        assert service.call("PATCH", f"/v1/tenants/{ORG}", json={field: "reject"}).status_code == 200
        target = SIBLING
    else:
        target = PROJECT
    r = service.call("PATCH", f"/v1/tenants/{target}", "prof.lee", json={field: within})
    assert r.status_code == 200, r.text
    assert r.json()[field] == within
    if beyond is not None:
        before = _tenant(service, target)
        r = service.call("PATCH", f"/v1/tenants/{target}", "prof.lee", json={field: beyond})
        _refused(r, field, target)
        assert _tenant(service, target) == before
    # a new project of hers: the same rule
    if beyond is not None:
        body = {"parent": ORG, "key": "robotics", field: beyond}
        _refused(service.call("POST", "/v1/tenants", "prof.lee", json=body), field, f"{ORG}/robotics")


@pytest.mark.parametrize("field", list(FIELDS))
def test_a_pool_admin_sets_an_organisations_entitlements(sqlite_service: Service, field: str) -> None:
    service = sqlite_service
    value = {"guaranteed": {"H100": 16}, "allowed_classes": ALL}.get(field, FIELDS[field][0])
    if field == "allowed_classes":  # classes flow down the tree: the sector first
        assert service.call("PATCH", "/v1/tenants/academia", json={field: ALL}).status_code == 200
    r = service.call("PATCH", f"/v1/tenants/{ORG}", json={field: value})
    assert r.status_code == 200, r.text
    assert r.json()[field] == value


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("user", ["minjun.kim", "viewer"])
def test_members_and_viewers_set_no_entitlements(sqlite_service: Service, field: str, user: str) -> None:
    service = sqlite_service
    assert service.call("POST", "/v1/users", json={"name": "viewer", "role": "viewer"}).status_code == 201
    r = service.call("PATCH", f"/v1/tenants/{PROJECT}", user, json={field: FIELDS[field][1]})
    assert r.status_code == 403, r.text


def test_budgets_are_set_by_a_pool_admin_only(sqlite_service: Service) -> None:
    service = sqlite_service
    _admins(service)
    grant = {
        "project": PROJECT,
        "gpu_hours": 1e6,
        "period_start_ms": 0,
        "period_end_ms": 2**40,
        "state": "active",
    }
    for user in ("prof.lee", "pi.park", "minjun.kim"):
        r = service.call("POST", "/v1/allocations", user, json=grant)
        assert r.status_code == 403 and "pool admin" in r.json()["detail"], r.text
    asked = service.call("POST", "/v1/allocations", "pi.park", json={**grant, "state": "requested"})
    assert asked.status_code == 201
    r = service.call("PATCH", f"/v1/allocations/{asked.json()['id']}", "prof.lee", json={"state": "active"})
    assert r.status_code == 403
    assert service.call("PATCH", f"/v1/allocations/{asked.json()['id']}", json={"state": "active"}).is_success


# -- the last pool-admin credential ------------------------------------------------------


def test_the_last_pool_admin_token_cannot_be_revoked(service: Service) -> None:
    mine = service.call("GET", "/v1/tokens").json()
    assert len(mine) == 1 and mine[0]["scopes"] == ["read", "submit", "admin"]
    r = service.call("DELETE", f"/v1/tokens/{mine[0]['id']}")
    assert r.status_code == 409 and r.json()["type"].endswith("/last-pool-admin")
    assert (
        "last pool-admin credential" in r.json()["detail"] and "gpupool admin recover" in r.json()["detail"]
    )
    # a second one first: then the first may go, and the second is the last
    second = service.call("POST", "/v1/tokens", json={"name": "second"}).json()
    assert service.call("DELETE", f"/v1/tokens/{mine[0]['id']}").status_code == 204
    headers = {"Authorization": f"Bearer {second['token']}"}
    r = service.http.delete(f"/v1/tokens/{second['id']}", headers=headers)
    assert r.status_code == 409
    # a read-only admin token does not count as a credential that administers
    ro = service.http.post("/v1/tokens", headers=headers, json={"scopes": ["read"]}).json()
    assert service.http.delete(f"/v1/tokens/{second['id']}", headers=headers).status_code == 409
    assert service.http.delete(f"/v1/tokens/{ro['id']}", headers=headers).status_code == 204


def test_recovery_mints_a_pool_admin_token_through_the_cli(service: Service) -> None:
    settings = service.runtime.settings
    where = (
        ["--data-dir", str(settings.data_dir)]
        if settings.url.startswith("sqlite")
        else ["--database-url", settings.url]
    )
    # (the service's test clock runs ahead of the wall clock the command uses: a longer life)
    got = runner.invoke(app, ["admin", "recover", *where, "--expires-in", "365d"])
    assert got.exit_code == 0, got.output
    token = got.stdout.strip().splitlines()[-1]
    assert token.startswith("gpt_")
    me = service.http.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["role"] == "pool-admin"
    audit = service.call("GET", "/v1/audit?action=admin.recover").json()["items"]
    assert len(audit) == 1 and audit[0]["actor"].startswith("local:") and audit[0]["target"] == "user/admin"
    # only its hash is stored, and it expires
    tokens = service.http.get("/v1/tokens", headers={"Authorization": f"Bearer {token}"}).json()
    recovered = [t for t in tokens if t["name"] == "recovered"]
    assert len(recovered) == 1 and recovered[0]["expires_ms"] is not None
    bad = runner.invoke(app, ["admin", "recover"])
    assert bad.exit_code == 2 and "--data-dir" in bad.output


def test_recovery_refuses_a_directory_without_a_database(tmp_path: Any) -> None:
    got = runner.invoke(app, ["admin", "recover", "--data-dir", str(tmp_path / "nothing")])
    assert got.exit_code == 2 and "no gpupool database" in got.output


# -- viewers only read -----------------------------------------------------------------------

WRITES = ("post", "put", "patch", "delete")


def test_a_viewer_is_refused_every_write_route_of_the_schema(sqlite_service: Service) -> None:
    service = sqlite_service
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    job = service.submit("minjun.kim", project="vision", gpus=1).json()["id"]
    grant = {"project": PROJECT, "gpu_hours": 1, "period_start_ms": 0, "period_end_ms": 2**40}
    allocation = service.call("POST", "/v1/allocations", json=grant).json()["id"]
    admin_token = service.call("GET", "/v1/tokens").json()[0]["id"]
    values = {
        "job_id": job,
        "allocation_id": str(allocation),
        "path": PROJECT,
        "user": "minjun.kim",
        "token_id": str(admin_token),
        "name": service.runtime.fleet.nodes[0].name,
        "run_id": "w0000000000000000",
        # the scope check refuses a viewer's write before any lookup, so ids need not exist
        "call_id": "1",
        "application_id": "1",
        "subscription_id": "1",
        "reservation_id": "1",
    }
    bodies: dict[str, Any] = {
        "/v1/jobs": {"project": "vision", "gpus": 1, "command": ["true"]},
        "/v1/tenants": {"parent": ORG, "key": "x"},
        "/v1/users": {"name": "x"},
        "/v1/tokens": {"name": "x", "scopes": ["read"]},
        "/v1/allocations": grant,
        "/v1/whatif": {"fleet": "demo", "hours": 1, "load": 0.1, "policies": ["fifo"]},
        "/v1/reservations": {"start_ms": 2**40, "end_ms": 2**41, "nodes": [values["name"]]},
    }
    schema = service.http.get("/openapi.json").json()
    tried = []
    for template, ops in schema["paths"].items():
        for method in ops:
            if method not in WRITES:
                continue
            url = template.replace("{path}", values["path"])
            for k, v in values.items():
                url = url.replace("{" + k + "}", v)
            assert "{" not in url, f"no value for a parameter of {template}"
            body = bodies.get(template, {"name": "x", "user": "minjun.kim", "state": "active"})
            r = service.call(method.upper(), url, "auditor", json=body)
            tried.append((method, template, r.status_code))
            # 403 everywhere; revoking another's token: 404 (it is not the viewer's to see)
            expected = 404 if template == "/v1/tokens/{token_id}" else 403
            assert r.status_code == expected, (method, template, r.text)
    assert len(tried) >= 14, tried
    # the job, the tenants and the allocation are unchanged
    assert service.call("GET", f"/v1/jobs/{job}").json()["state"] == "pending"
    assert service.call("GET", "/v1/tenants/academia/snu/x").status_code == 404
    refusals = service.call("GET", "/v1/audit?action=refused&limit=200").json()["items"]
    assert {(a["actor"], a["detail"]["status"]) for a in refusals} == {("auditor", 403)}
    # revoking one's own token only takes access away: a viewer may
    own = service.call("GET", "/v1/tokens", "auditor").json()[0]["id"]
    assert service.call("DELETE", f"/v1/tokens/{own}", "auditor").status_code == 204


def test_whatif_runs_are_started_and_stopped_by_pool_admins_only(sqlite_service: Service) -> None:
    service = sqlite_service
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    spec = {"fleet": "demo", "hours": 1, "load": 0.1, "policies": ["fifo"]}
    assert service.call("POST", "/v1/whatif", "auditor", json=spec).status_code == 403
    assert service.call("POST", "/v1/whatif", "minjun.kim", json=spec).status_code == 403
    r = service.call("POST", "/v1/whatif", json=spec)
    assert r.status_code == 202, r.text
    run = r.json()["id"]
    assert service.call("GET", f"/v1/whatif/{run}", "auditor").status_code == 200  # reading is fine
    for user in ("auditor", "minjun.kim"):
        assert service.call("POST", f"/v1/whatif/{run}/cancel", user).status_code == 403
    assert service.call("POST", f"/v1/whatif/{run}/cancel").status_code in (202, 409)


# -- priority classes are rights ---------------------------------------------------------------


def test_reserved_and_high_need_a_grant_from_above(service: Service) -> None:
    _admins(service)
    for cls in ("reserved", "high"):
        r = service.submit("minjun.kim", project="vision", gpus=1, priority_class=cls)
        assert r.status_code == 403 and r.json()["type"].endswith("/class-not-allowed"), r.text
        assert repr(cls) in r.json()["detail"] and PROJECT in r.json()["detail"]
    for cls in ("normal", "low", "preemptible"):
        assert service.submit("minjun.kim", project="vision", gpus=1, priority_class=cls).status_code == 201
    assert _tenant(service, PROJECT)["classes"] == ["normal", "low", "preemptible"]
    # the org admin cannot grant what her organisation lacks
    r = service.call("PATCH", f"/v1/tenants/{PROJECT}", "prof.lee", json={"allowed_classes": ALL})
    _refused(r, "allowed_classes", PROJECT)
    # the pool admin grants high from the top down: the sector, then the tree inherits it
    r = service.call("PATCH", f"/v1/tenants/{ORG}", json={"allowed_classes": ALL})
    assert r.status_code == 422 and "not allowed to its parent 'academia'" in r.json()["detail"]
    assert service.call("PATCH", "/v1/tenants/academia", json={"allowed_classes": ALL}).status_code == 200
    assert "high" in _tenant(service, SIBLING)["classes"]
    assert "high" not in _tenant(service, "startups")["classes"]
    assert service.submit("minjun.kim", project="vision", gpus=1, priority_class="high").status_code == 201
    r = service.submit("minjun.kim", project="vision", gpus=1, priority_class="reserved")
    assert r.status_code == 403
    # the org admin narrows a project: high is gone there, not in its sibling
    narrow = {"allowed_classes": ["normal", "preemptible"]}
    assert service.call("PATCH", f"/v1/tenants/{PROJECT}", "prof.lee", json=narrow).status_code == 200
    r = service.submit("minjun.kim", project="vision", gpus=1, priority_class="high")
    assert r.status_code == 403 and "allowed: normal, preemptible" in r.json()["detail"]
    assert service.submit("hayoon.choi", project="nlp", gpus=1, priority_class="high").status_code == 201
    # a child never widens its parent, not even by the pool admin's hand (the tree's rule: 422)
    wide = {"allowed_classes": ["normal", "reserved"]}
    r = service.call("PATCH", f"/v1/tenants/{PROJECT}", json=wide)
    assert r.status_code == 422 and "reserved" in r.json()["detail"]


# -- tokens ------------------------------------------------------------------------------------


def _mint(service: Service, user: str, **body: Any) -> dict[str, Any]:
    r = service.call("POST", "/v1/tokens", user, json=body)
    assert r.status_code == 201, r.text
    got: dict[str, Any] = r.json()
    return got


def test_scopes_cap_what_a_token_does(service: Service) -> None:
    _admins(service)
    read = _mint(service, "minjun.kim", name="dashboard", scopes=["read"])
    submit = _mint(service, "prof.lee", name="ci", scopes=["submit"])
    as_read = {"Authorization": f"Bearer {read['token']}"}
    as_submit = {"Authorization": f"Bearer {submit['token']}"}
    assert service.http.get("/v1/jobs", headers=as_read).status_code == 200
    body = {"project": "vision", "gpus": 1, "command": ["true"]}
    r = service.http.post("/v1/jobs", headers=as_read, json=body)
    assert r.status_code == 403 and r.json()["type"].endswith("/insufficient-scope")
    assert "'submit' scope" in r.json()["detail"]
    # a submit token of an org admin submits, and cannot administer
    r = service.http.patch(f"/v1/tenants/{PROJECT}", headers=as_submit, json={"weight": 2})
    assert r.status_code == 403 and "'admin' scope" in r.json()["detail"]
    r = service.http.post(f"/v1/projects/{PROJECT}/members", headers=as_submit, json={"user": "minjun.kim"})
    assert r.status_code == 403
    # a token never mints a wider one
    r = service.http.post("/v1/tokens", headers=as_submit, json={"scopes": ["admin"]})
    assert r.status_code == 403 and "'admin'" in r.json()["detail"]
    assert service.http.post("/v1/tokens", headers=as_read, json={}).status_code == 403
    narrower = service.http.post("/v1/tokens", headers=as_submit, json={"scopes": ["read"]})
    assert narrower.status_code == 201 and narrower.json()["scopes"] == ["read"]


def test_tokens_expire(service: Service) -> None:
    default = _mint(service, "minjun.kim")
    assert default["expires_ms"] - default["created_ms"] == DEFAULT_TOKEN_TTL_MS
    short = _mint(service, "minjun.kim", expires_in=60)
    headers = {"Authorization": f"Bearer {short['token']}"}
    assert service.http.get("/v1/users/me", headers=headers).status_code == 200
    service.clock.advance(60_000)
    r = service.http.get("/v1/users/me", headers=headers)
    assert r.status_code == 401 and r.json()["type"].endswith("/token-expired")
    assert "expired at" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    # the fast submission path says the same
    body = {"project": "vision", "gpus": 1, "command": ["true"]}
    assert service.http.post("/v1/jobs", headers=headers, json=body).status_code == 401
    assert service.http.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {default['token']}"}
    ).is_success
    for bad in (59, 4 * 365 * 86400):
        assert service.call("POST", "/v1/tokens", "minjun.kim", json={"expires_in": bad}).status_code == 422


def test_last_use_is_written_at_most_once_a_minute(service: Service) -> None:
    tok = _mint(service, "minjun.kim", name="laptop")
    headers = {"Authorization": f"Bearer {tok['token']}"}
    writes: list[str] = []

    @event.listens_for(service.runtime.engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE TOKENS"):
            writes.append(statement)

    def last_used() -> int | None:
        mine = service.call("GET", "/v1/tokens", "minjun.kim").json()
        return next(t["last_used_ms"] for t in mine if t["id"] == tok["id"])

    first = service.clock()
    for _ in range(20):
        assert service.http.get("/v1/jobs", headers=headers).status_code == 200
        service.clock.advance(1000)
    assert len(writes) == 1
    assert last_used() == first
    service.clock.advance(60_000)
    assert service.http.get("/v1/jobs", headers=headers).status_code == 200
    assert len(writes) == 2 and last_used() == service.clock()
    event.remove(service.runtime.engine, "before_cursor_execute", _count)


# -- refusals are audited ----------------------------------------------------------------------


def test_refusals_are_audited_and_a_flood_is_coalesced(tmp_path: Path) -> None:
    # the rate limiter would answer 429 after 20 failures (test_rate_limit.py): the audit's own
    # coalescing is what is under test here, so the flood must reach it
    runtime, clock, executor = make_service(
        tmp_path, f"sqlite:///{tmp_path / 'gpupool.db'}", rate_limit_auth_failures_per_s=0
    )
    with TestClient(create_app(runtime)) as client:
        _flood_is_coalesced(Service(runtime, client, clock, executor))


def _flood_is_coalesced(service: Service) -> None:
    for i in range(300):
        assert service.http.get("/v1/jobs", headers={"Authorization": f"Bearer bad{i}"}).status_code == 401
    r = service.submit("minjun.kim", project="vision", gpus=1, priority_class="reserved")
    assert r.status_code == 403
    refused = service.call("GET", "/v1/audit?action=refused").json()["items"]
    assert [(a["actor"], a["target"], a["detail"]["status"]) for a in refused] == [
        ("minjun.kim", "POST /v1/jobs", 403),
        ("anonymous", "GET /v1/jobs", 401),
    ]
    assert "reserved" in refused[0]["detail"]["reason"] and refused[1]["detail"]["route"] == "/v1/jobs"
    # a member may not read the audit log; a pool admin's read-only token may
    assert service.call("GET", "/v1/audit", "minjun.kim").status_code == 403
    ro = _mint(service, "admin", scopes=["read"])
    assert service.http.get("/v1/audit", headers={"Authorization": f"Bearer {ro['token']}"}).is_success
    # the next minute: the repeats are counted in one row, and new refusals are written again
    service.clock.advance(60_000)
    assert service.http.get("/v1/jobs", headers={"Authorization": "Bearer bad"}).status_code == 401
    coalesced = service.call("GET", "/v1/audit?action=refused.coalesced").json()["items"]
    assert len(coalesced) == 1 and coalesced[0]["detail"]["repeats_not_written"] == 299
    assert len(service.call("GET", "/v1/audit?action=refused").json()["items"]) == 4


def test_distinct_refusals_are_capped_per_minute(sqlite_service: Service) -> None:
    service = sqlite_service
    log = service.runtime.refusals
    for i in range(log.per_minute + 80):  # e.g. bad tokens from many addresses
        log.record(Refusal("anonymous", "GET", "/v1/jobs", "/v1/jobs", 401, "unknown token", f"10.0.{i}.1"))
    assert len(service.call("GET", "/v1/audit?action=refused&limit=500").json()["items"]) == log.per_minute
    service.clock.advance(60_000)
    log.record(Refusal("anonymous", "GET", "/v1/jobs", "/v1/jobs", 401, "unknown token", "10.9.9.9"))
    coalesced = service.call("GET", "/v1/audit?action=refused.coalesced").json()["items"]
    assert [c["detail"]["dropped_over_cap"] for c in coalesced] == [80]
