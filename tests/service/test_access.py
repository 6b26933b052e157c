"""Tokens, roles and isolation: 401 without a valid token, 403 for a forbidden act, 404 for the unseen."""

from __future__ import annotations

from sqlalchemy import select

from gpupool.service.auth import hash_token
from gpupool.service.db import TokenRow
from tests.service.conftest import Service


def test_missing_or_wrong_token_is_401(service: Service) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = service.http.get("/v1/jobs", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"
    assert service.http.get("/v1/health").status_code == 200  # health needs no token


def test_only_the_hash_of_a_token_is_stored(service: Service) -> None:
    token = service.token("minjun.kim")
    with service.runtime.factory() as s:
        hashes = set(s.scalars(select(TokenRow.hash)))
    assert hash_token(token) in hashes and token not in hashes
    assert all(len(h) == 64 for h in hashes)
    listed = service.call("GET", "/v1/tokens", "minjun.kim").json()
    assert listed and "token" not in listed[0]


def test_revoked_token_is_401(service: Service) -> None:
    r = service.call("POST", "/v1/tokens", "minjun.kim", json={"name": "laptop"})
    tok, tid = r.json()["token"], r.json()["id"]
    assert service.http.get("/v1/users/me", headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    assert service.call("DELETE", f"/v1/tokens/{tid}", "minjun.kim").status_code == 204
    assert service.http.get("/v1/users/me", headers={"Authorization": f"Bearer {tok}"}).status_code == 401


def test_members_see_only_their_projects(service: Service) -> None:
    vision = service.submit("minjun.kim", project="vision", gpus=1).json()["id"]
    nlp = service.submit("hayoon.choi", project="nlp", gpus=1).json()["id"]
    service.cycle()
    # another project's job does not exist for a member: 404, never 403
    for path in (f"/v1/jobs/{nlp}", f"/v1/jobs/{nlp}/explain", f"/v1/jobs/{nlp}/logs"):
        assert service.call("GET", path, "minjun.kim").status_code == 404
    assert service.call("POST", f"/v1/jobs/{nlp}/cancel", "minjun.kim").status_code == 404
    assert [j["id"] for j in service.call("GET", "/v1/jobs", "minjun.kim").json()["items"]] == [vision]
    assert service.call("GET", "/v1/jobs?project=academia/snu/nlp", "minjun.kim").json()["items"] == []
    # submitting into a project one cannot see is a 404 too
    r = service.submit("minjun.kim", project="nlp", gpus=1)
    assert r.status_code == 404 and "nlp" in r.json()["detail"]
    # tenants outside one's branch are invisible
    paths = {t["path"] for t in service.call("GET", "/v1/tenants", "minjun.kim").json()}
    assert paths == {"academia", "academia/snu", "academia/snu/vision"}
    assert service.call("GET", "/v1/tenants/startups", "minjun.kim").status_code == 404
    usage = service.call("GET", "/v1/usage", "minjun.kim").json()["items"]
    assert {u["key"] for u in usage} <= {"academia/snu/vision"}


def test_viewer_sees_all_but_changes_nothing(service: Service) -> None:
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    job = service.submit("minjun.kim", project="vision", gpus=1).json()["id"]
    assert service.call("GET", f"/v1/jobs/{job}", "auditor").status_code == 200
    assert len(service.call("GET", "/v1/tenants", "auditor").json()) == 16
    # visible but not theirs: 403
    assert service.call("POST", f"/v1/jobs/{job}/cancel", "auditor").status_code == 403
    assert service.submit("auditor", project="vision", gpus=1).status_code == 403
    assert service.call("POST", "/v1/fleet/nodes/kisti-ib0-r0-n00/drain", "auditor").status_code == 403
    assert service.call("GET", "/v1/audit", "auditor").status_code == 403
    assert service.call("POST", "/v1/users", "auditor", json={"name": "x"}).status_code == 403


def test_org_admin_manages_inside_their_organisation(service: Service) -> None:
    assert service.call("POST", "/v1/users", json={"name": "prof.lee"}).status_code == 201
    r = service.call("POST", "/v1/projects/academia/snu/members", json={"user": "prof.lee", "role": "admin"})
    assert r.status_code == 201, r.text
    # a project under their organisation, with a member
    r = service.call("POST", "/v1/tenants", "prof.lee", json={"parent": "academia/snu", "key": "robotics"})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "project"
    assert service.call("POST", "/v1/users", "prof.lee", json={"name": "grad.kim"}).status_code == 201
    r = service.call(
        "POST", "/v1/projects/academia/snu/robotics/members", "prof.lee", json={"user": "grad.kim"}
    )
    assert r.status_code == 201
    service.cycle()  # the loop rebuilds the core with the new project
    assert service.submit("grad.kim", project="robotics", gpus=1).status_code == 201
    assert service.cycle().starts == 1
    # an org admin sees the organisation's jobs, and only those
    assert {j["project"] for j in service.call("GET", "/v1/jobs", "prof.lee").json()["items"]} == {
        "academia/snu/robotics"
    }
    # outside the organisation: invisible (404), and no sectors for org admins (403)
    r = service.call("POST", "/v1/tenants", "prof.lee", json={"parent": "academia/kaist", "key": "x"})
    assert r.status_code == 404
    assert service.call("POST", "/v1/tenants", "prof.lee", json={"key": "industry"}).status_code == 403
    assert (
        service.call("POST", "/v1/users", "prof.lee", json={"name": "boss", "role": "pool-admin"}).status_code
        == 403
    )
    audit = service.call("GET", "/v1/audit").json()["items"]
    mine = [a["action"] for a in audit if a["actor"] == "prof.lee" and a["action"] != "refused"]
    assert mine == ["membership.set", "user.create", "tenant.create"]  # newest first
    # the two 403s are audited too (ADR 0007); the 404 (an unseen tenant) is not a refusal
    refused = [a for a in audit if a["actor"] == "prof.lee" and a["action"] == "refused"]
    assert [(a["target"], a["detail"]["status"]) for a in refused] == [
        ("POST /v1/users", 403),
        ("POST /v1/tenants", 403),
    ]
    assert {"actor": "admin", "action": "membership.set", "target": "tenant/academia/snu"}.items() <= audit[
        -2
    ].items()
