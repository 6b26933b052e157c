"""Budgets charged live as the twin charges them (ADR 0018): allocations in effective (H100-
equivalent) GPU-hours weigh each hour by its model's throughput; organisations' and sectors'
allocations limit every project under them; fair share counts effective usage across a rebuild
when the service is set to. On SQLite and PostgreSQL (``service``). Demo fleet: a B200 hour of
the default class counts 2.008 H100-hours in the shipped catalogue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from tests.service.conftest import Service, make_service
from tests.service.test_programme import apply, lead, new_call, ok

HOUR = 3_600_000
YEAR = 365 * 24 * HOUR


def grant(
    service: Service, tenant: str, hours: float, code: int = 201, user: str = "admin", **kw: Any
) -> Any:
    now = service.clock()
    body = {"project": tenant, "gpu_hours": hours, "period_start_ms": now - 1, "period_end_ms": now + YEAR,
            "state": "active", **kw}  # fmt: skip
    r = service.call("POST", "/v1/allocations", user, json=body)
    assert r.status_code == code, r.text
    return r.json()


def run_an_hour(service: Service, user: str, project: str, gpus: int, model: str) -> None:
    r = service.submit(user, project=project, gpus=gpus, models=[model])
    assert r.status_code == 201, r.text
    assert service.cycle().starts == 1
    service.clock.advance(HOUR)
    service.executor.finish(service.executor.launches[-1].allocation_id)
    service.cycle()


def test_an_allocation_in_effective_gpu_hours_is_charged_by_throughput(service: Service) -> None:
    speed = service.runtime.catalogue["B200"].speed("default")
    assert speed > 1.5  # the shipped catalogue: a B200 is about twice an H100
    start = service.clock() - 1
    eff = grant(service, "academia/snu/vision", 12, model="B200", unit="effective", over_budget="reject")
    assert eff["unit"] == "effective"
    service.cycle()
    run_an_hour(service, "minjun.kim", "vision", 8, "B200")  # 8 GPU-hours: 16.06 effective
    (got,) = service.call("GET", "/v1/allocations?project=academia/snu/vision", "minjun.kim").json()
    assert got["used_gpu_hours"] == round(8 * speed, 6) and got["state"] == "exhausted", got
    refused = service.submit("minjun.kim", project="vision", gpus=1, models=["B200"])
    assert refused.status_code == 409, refused.text
    assert "effective GPU-hours" in refused.json()["detail"]
    # the same grant in GPU-hours is not spent by the same hour (8 of 12)
    assert service.call("PATCH", f"/v1/allocations/{eff['id']}", json={"state": "expired"}).status_code == 200
    raw = grant(service, "academia/snu/vision", 12, model="B200", over_budget="reject", period_start_ms=start)
    assert raw["unit"] == "gpu_hours" and raw["used_gpu_hours"] == 8.0 and raw["state"] == "active"
    ok = service.submit("minjun.kim", project="vision", gpus=1, models=["B200"])
    assert ok.status_code == 201 and not ok.json()["over_budget"], ok.text


def test_organisation_and_sector_budgets_limit_every_project_under_them(service: Service) -> None:
    # an organisation's allocation is a budget, not a guarantee; and it is the pool admin's
    grant(service, "academia/snu", 5, code=422, guaranteed=4)
    grant(service, "academia/snu", 5, code=404, user="minjun.kim")
    snu = grant(service, "academia/snu", 5, over_budget="reject")
    assert snu["project"] == "academia/snu" and snu["used_gpu_hours"] == 0
    service.cycle()
    run_an_hour(service, "minjun.kim", "vision", 8, "H100")  # 8 GPU-hours of snu's 5
    listed = service.call("GET", "/v1/allocations").json()
    mine = [(a["project"], a["used_gpu_hours"], a["state"]) for a in listed if a["id"] == snu["id"]]
    assert mine == [("academia/snu", 8.0, "exhausted")]
    # another project of the organisation is refused, naming the organisation
    r = service.submit("hayoon.choi", project="nlp", gpus=1)
    assert r.status_code == 409 and "academia/snu is past its GPU-hour budget" in r.json()["detail"], r.text
    # another organisation of the sector is not
    assert service.submit("jiwoo.han", project="llm", gpus=1).status_code == 201
    # a sector's budget that says preemptible: its projects' new jobs run as preemptible
    grant(service, "startups", 1, model="*")
    service.cycle()
    run_an_hour(service, "hwan.kim", "solar", 2, "B200")
    job = service.submit("june.paik", project="startups/furiosaai/serving", gpus=1).json()
    assert job["over_budget"] and job["priority_class"] == "preemptible", job
    ex = service.call("GET", f"/v1/jobs/{job['id']}/explain", "june.paik").json()
    assert "startups is past its GPU-hour budget" in ex["budget"], ex


def test_effective_fair_share_is_replayed_as_charged(tmp_path: Path) -> None:
    """With ``usage=effective`` the core charges a B200 hour at its throughput, and a rebuild
    (a restart) replays the stored usage to the same ledger."""
    runtime, clock, executor = make_service(
        tmp_path, f"sqlite:///{tmp_path / 'gpupool.db'}", usage="effective"
    )
    with TestClient(create_app(runtime)) as client:
        service = Service(runtime, client, clock, executor)
        run_an_hour(service, "minjun.kim", "vision", 8, "B200")
        sched = runtime.loop.scheduler
        idx = sched.tenancy.resolve("academia/snu/vision")
        assert idx is not None
        live = sched.ledger.decayed(idx, clock())
        speed = runtime.catalogue["B200"].speed("default")
        assert live > 8 * HOUR * 1.5 and abs(sched.ledger.used_gpu_ms(idx, clock()) - 8 * HOUR * speed) < 1
        runtime.request_rebuild()
        service.cycle()
        rebuilt = runtime.loop.scheduler
        assert rebuilt is not sched
        assert abs(rebuilt.ledger.decayed(idx, clock()) - live) < 1e-6 * live


def test_a_call_in_effective_gpu_hours_awards_effective_allocations(service: Service) -> None:
    lead(service, "academia/snu/vision", "minjun.kim")
    call = new_call(service, gpu_hours={"B200": 100}, guaranteed={}, unit="effective")
    assert call["unit"] == "effective"
    ok(service.call("POST", f"/v1/calls/{call['id']}/open"))
    app = apply(service, "minjun.kim", call["id"], "vision", gpu_hours={"B200": 10})
    ok(service.call("POST", f"/v1/applications/{app['id']}/submit", "minjun.kim"))
    ok(service.call("POST", f"/v1/calls/{call['id']}/close"))
    got = ok(service.call("POST", f"/v1/applications/{app['id']}/award", json={"gpu_hours": {"B200": 10}}))
    (aid,) = got["award"]["allocation_ids"]
    service.cycle()
    run_an_hour(service, "minjun.kim", "vision", 8, "B200")
    (alloc,) = [a for a in service.call("GET", "/v1/allocations").json() if a["id"] == aid]
    speed = service.runtime.catalogue["B200"].speed("default")
    assert alloc["unit"] == "effective" and alloc["used_gpu_hours"] == round(8 * speed, 6), alloc
    assert alloc["state"] == "exhausted"  # 16.06 effective of 10 (8 raw would have left 2)
    report = ok(service.call("GET", f"/v1/calls/{call['id']}/report"))
    assert report["call"]["unit"] == "effective" and report["used_gpu_hours"] == {"B200": round(8 * speed, 6)}
