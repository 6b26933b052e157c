"""Allocations and budgets: lifecycle, guarantees that must fit, past-budget jobs preemptible or refused."""

from __future__ import annotations

from sqlalchemy import func, select

from gpupool.service.db import InboxRow, JobRow
from tests.service.conftest import Service

HOUR = 3_600_000
YEAR = 365 * 24 * HOUR


def _grant(service: Service, project: str, hours: float, **kw: object) -> dict[str, object]:
    now = service.clock()
    body = {"project": project, "gpu_hours": hours, "period_start_ms": now - 1, "period_end_ms": now + YEAR,
            "state": "active", **kw}  # fmt: skip
    r = service.call("POST", "/v1/allocations", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, object] = r.json()
    return out


def _use_one_gpu_hour(service: Service, user: str, project: str) -> None:
    r = service.submit(user, project=project, gpus=1)
    assert r.status_code == 201, r.text
    service.cycle()
    service.clock.advance(HOUR)
    service.executor.finish(service.executor.launches[-1].allocation_id)
    service.cycle()


def test_past_budget_jobs_run_preemptible_and_explain_says_so(service: Service) -> None:
    grant = _grant(service, "academia/snu/vision", 1.0)
    assert grant["state"] == "active" and grant["used_gpu_hours"] == 0
    service.cycle()
    _use_one_gpu_hour(service, "minjun.kim", "vision")
    listed = service.call("GET", "/v1/allocations?project=academia/snu/vision", "minjun.kim").json()
    assert listed[0]["state"] == "exhausted" and listed[0]["used_gpu_hours"] == 1.0
    # high is a right (ADR 0007): the pool admin grants it to the sector, vision inherits it
    grant = {"allowed_classes": ["normal", "low", "preemptible", "high"]}
    assert service.call("PATCH", "/v1/tenants/academia", json=grant).status_code == 200
    r = service.submit("minjun.kim", project="vision", gpus=1, priority_class="high")
    assert r.status_code == 201
    job = r.json()
    assert job["over_budget"] and job["priority_class"] == "preemptible"
    assert job["requested_priority_class"] == "high"
    ex = service.call("GET", f"/v1/jobs/{job['id']}/explain", "minjun.kim").json()
    assert ex["over_budget"] and "past its GPU-hour budget" in ex["budget"]
    assert ex["reason"] == "over-budget" and "runs as preemptible" in ex["detail"]
    # other projects are not affected
    assert not service.submit("hayoon.choi", project="nlp", gpus=1).json()["over_budget"]


def test_past_budget_jobs_are_refused_when_the_allocation_says_reject(service: Service) -> None:
    _grant(service, "academia/snu/nlp", 1.0, over_budget="reject", model="H100")
    service.cycle()
    _use_one_gpu_hour(service, "hayoon.choi", "nlp")
    with service.runtime.factory() as s:
        before = s.scalar(select(func.count()).select_from(JobRow))
    r = service.submit("hayoon.choi", project="nlp", gpus=1, models=["H100"])
    assert r.status_code == 409 and r.json()["type"].endswith("/over-budget")
    assert "1.0 of 1.0 GPU-hours" in r.json()["detail"]
    with service.runtime.factory() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == before
        assert s.scalar(select(func.count()).select_from(InboxRow)) == 0
    # a model the H100 allocation does not cover runs only as preemptible
    other = service.submit("hayoon.choi", project="nlp", gpus=1, models=["B200"]).json()
    assert other["over_budget"] and other["priority_class"] == "preemptible"


def test_seeded_budgets_from_the_tenants_file(service: Service) -> None:
    got = service.call("GET", "/v1/allocations").json()
    assert {(a["project"], a["gpu_hours"], a["over_budget"]) for a in got} == {
        ("startups/upstage/solar", 20000.0, "preemptible"),
        ("startups/furiosaai/serving", 5000.0, "reject"),
    }
    assert service.call("GET", "/v1/allocations", "minjun.kim").json() == []


def test_lifecycle_and_who_may_move_it(service: Service) -> None:
    now = service.clock()
    body = {"project": "vision", "model": "H100", "gpu_hours": 100, "guaranteed": 4,
            "period_start_ms": now, "period_end_ms": now + YEAR}  # fmt: skip
    r = service.call("POST", "/v1/allocations", "minjun.kim", json=body)
    assert r.status_code == 201 and r.json()["state"] == "requested"
    aid = r.json()["id"]
    active = {"state": "active"}
    assert service.call("POST", "/v1/allocations", "minjun.kim", json={**body, **active}).status_code == 403
    assert service.call("PATCH", f"/v1/allocations/{aid}", "minjun.kim", json=active).status_code == 403
    assert service.call("PATCH", f"/v1/allocations/{aid}", "hayoon.choi", json=active).status_code == 404
    # vision's parent (snu) guarantees 16 H100 and its projects already take all 16
    r = service.call("PATCH", f"/v1/allocations/{aid}", json={"state": "active"})
    assert r.status_code == 422 and "guarantee" in r.json()["detail"]
    assert service.call("PATCH", f"/v1/allocations/{aid}", json={"state": "rejected"}).status_code == 200
    r = service.call("PATCH", f"/v1/allocations/{aid}", json={"state": "active"})
    assert r.status_code == 409
    ok = {**body, "project": "academia/kaist/llm", "model": "GB200", "guaranteed": 0}
    r = service.call("POST", "/v1/allocations", json=ok)
    aid = r.json()["id"]
    for state in ("approved", "active"):
        assert service.call("PATCH", f"/v1/allocations/{aid}", json={"state": state}).json()["state"] == state
    bad = {**body, "period_end_ms": now - 1}
    r = service.call("POST", "/v1/allocations", json=bad)
    assert r.status_code == 422
    r = service.call("POST", "/v1/allocations", json={**body, "model": "K80"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "model"
    actions = [a["action"] for a in service.call("GET", "/v1/audit").json()["items"]]
    assert actions.count("allocation.update") == 3 and actions.count("allocation.create") == 2
