"""The usage report over time and the public report's figures, through the API (SQLite and
PostgreSQL): jobs run at known times across day boundaries by the service's own loop under the
test clock, and each bucket's GPU-hours, jobs, waits and share of entitlement are checked
exactly, for a pool admin, an organisation admin and a member."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.service.conftest import Service
from tests.service.test_programme import apply, lead, new_call

HOUR = 3_600_000
MIN = 60_000


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


def seed(service: Service) -> dict[str, str]:
    """Two academia jobs and one startup job at known times (UTC), finished by the clock.

    vision (SNU): 8 H100, submitted 2027-01-15 21:30, started 22:00, ends 01-16 02:00:
      16 GPU-h on the 15th, 16 on the 16th, a 30-minute wait.
    llm (KAIST): 4 GB200, submitted and started 22:00 on the 15th, ends 23:00: 4 GPU-h, no wait.
    serving (Furiosa): 2 RNGD, 01-16 10:00 to 13:00: 6 GPU-h on a domestic NPU.
    """
    service.long_lived_admin()
    r = service.call("POST", "/v1/users", json={"name": "prof.lee"})
    assert r.status_code == 201, r.text
    r = service.call("POST", "/v1/projects/academia/snu/members", json={"user": "prof.lee", "role": "admin"})
    assert r.status_code == 201, r.text
    for u in ("minjun.kim", "jiwoo.han", "june.paik", "prof.lee"):
        service.token(u)
    service.clock.ms = ms("2027-01-15T21:30:00")
    vision = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    assert vision.status_code == 201, vision.text
    service.clock.ms = ms("2027-01-15T22:00:00")
    llm = service.submit("jiwoo.han", project="llm", gpus=4, models=["GB200"])
    assert llm.status_code == 201, llm.text
    service.cycle()
    alloc = {la.job_id: la.allocation_id for la in service.executor.launches}
    assert set(alloc) == {vision.json()["id"], llm.json()["id"]}
    service.clock.ms = ms("2027-01-15T23:00:00")
    service.executor.finish(alloc[llm.json()["id"]])
    service.cycle()
    service.clock.ms = ms("2027-01-16T02:00:00")
    service.executor.finish(alloc[vision.json()["id"]])
    service.cycle()
    service.clock.ms = ms("2027-01-16T10:00:00")
    serving = service.submit("june.paik", project="startups/furiosaai/serving", gpus=2, models=["RNGD"])
    assert serving.status_code == 201, serving.text
    service.cycle()
    service.clock.ms = ms("2027-01-16T13:00:00")
    (npu,) = [la for la in service.executor.launches if la.job_id == serving.json()["id"]]
    service.executor.finish(npu.allocation_id)
    service.cycle()
    service.clock.ms = ms("2027-01-20T00:00:00")
    return {"vision": vision.json()["id"], "llm": llm.json()["id"]}


def report(service: Service, user: str = "admin", **params: Any) -> dict[str, Any]:
    r = service.call("GET", "/v1/reports/usage", user, params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def cells(rep: dict[str, Any], *fields: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    return {(x["period"], x["key"], x["model"]): tuple(x[f] for f in fields) for x in rep["rows"]}


def test_usage_per_day_week_and_month_split_across_buckets(service: Service) -> None:
    seed(service)
    days = report(service, by="sector", every="day", **{"from": "2027-01-15", "to": "2027-01-17"})
    assert days["scope"] == "all" and days["from_ms"] == ms("2027-01-15T00:00:00")
    got = cells(days, "gpu_hours", "jobs", "started", "wait_p50_s", "wait_p95_s")
    assert got == {
        ("2027-01-15", "academia", "H100"): (16.0, 1, 1, 1800.0, 1800.0),
        ("2027-01-15", "academia", "GB200"): (4.0, 1, 1, 0.0, 0.0),
        ("2027-01-16", "academia", "H100"): (16.0, 1, 0, None, None),
        ("2027-01-16", "startups", "RNGD"): (6.0, 1, 1, 0.0, 0.0),
    }
    # share of entitlement: academia is guaranteed its organisations' 16 H100 and 8 GB200
    share = cells(days, "entitlement_gpu_hours", "share_of_entitlement")
    assert share[("2027-01-15", "academia", "H100")] == (16 * 24.0, pytest.approx(16 / (16 * 24), abs=1e-6))
    assert share[("2027-01-15", "academia", "GB200")] == (8 * 24.0, pytest.approx(4 / (8 * 24), abs=1e-6))
    # a week (Monday 01-11 to 01-17) and a month hold it all; the buckets are clipped to the range
    weeks = report(service, by="sector", every="week", **{"from": "2027-01-13", "to": "2027-01-20"})
    got = cells(weeks, "gpu_hours", "jobs", "start_ms", "end_ms")
    assert got[("2027-01-11", "academia", "H100")] == (
        32.0,
        1,
        ms("2027-01-13T00:00:00"),
        ms("2027-01-18T00:00:00"),
    )
    assert cells(weeks, "entitlement_gpu_hours")[("2027-01-11", "academia", "H100")] == (16 * 5 * 24.0,)
    months = report(service, by="organisation", every="month", **{"from": "2027-01-01", "to": "2027-02-01"})
    got = cells(months, "gpu_hours", "effective_gpu_hours")
    assert got[("2027-01-01", "academia/snu", "H100")] == (32.0, 32.0)
    assert got[("2027-01-01", "academia/kaist", "GB200")][0] == 4.0
    # a range that cuts the vision job in half counts the half
    half = report(
        service, by="project", every="day", **{"from": "2027-01-16T00:00:00Z", "to": "2027-01-16T01:00:00Z"}
    )
    assert cells(half, "gpu_hours") == {("2027-01-16", "academia/snu/vision", "H100"): (8.0,)}


def test_each_role_sees_what_it_may(service: Service) -> None:
    seed(service)
    rng = {"from": "2027-01-15", "to": "2027-01-17"}
    # an organisation admin: the whole sector, her organisation, her organisation's projects
    sector = report(service, "prof.lee", by="sector", **rng)
    assert sector["scope"] == "whole totals of the groups you may see"
    assert cells(sector, "gpu_hours") == {
        ("2027-01-15", "academia", "H100"): (16.0,),
        ("2027-01-15", "academia", "GB200"): (4.0,),
        ("2027-01-16", "academia", "H100"): (16.0,),
    }
    assert {x["key"] for x in report(service, "prof.lee", by="organisation", **rng)["rows"]} == {
        "academia/snu"
    }
    projects = report(service, "prof.lee", by="project", **rng)
    assert projects["scope"] == "your projects only"
    assert {x["key"] for x in projects["rows"]} == {"academia/snu/vision"}
    # a member of KAIST's project: the same sector figures, only her project and its users
    assert cells(report(service, "jiwoo.han", by="sector", **rng), "gpu_hours") == cells(sector, "gpu_hours")
    mine = report(service, "jiwoo.han", by="project", **rng)
    assert cells(mine, "gpu_hours") == {("2027-01-15", "academia/kaist/llm", "GB200"): (4.0,)}
    users = report(service, "jiwoo.han", by="user", **rng)
    assert cells(users, "gpu_hours", "entitlement_gpu_hours") == {
        ("2027-01-15", "jiwoo.han", "GB200"): (4.0, None)
    }
    # the pool admin sees every user
    everyone = report(service, by="user", **rng)
    assert {x["key"] for x in everyone["rows"]} == {"minjun.kim", "jiwoo.han", "june.paik"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2027-01-17", "to": "2027-01-15"}, "to"),
        ({"every": "fortnight"}, "every"),
        ({"by": "galaxy"}, "by"),
        ({"from": "1970-01-01", "to": "2027-01-01", "every": "day"}, "every"),
        ({"from": "9999-12-01", "to": "9999-12-31", "every": "month"}, "every"),
        ({"from": "9999-12-25", "to": "9999-12-31", "every": "week"}, "every"),
        ({"from": str(2**61), "to": str(2**62)}, "every"),
    ],
)
def test_bad_ranges_are_422_naming_the_field(service: Service, params: dict[str, str], field: str) -> None:
    r = service.call("GET", "/v1/reports/usage", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


def award_january(service: Service) -> int:
    """A call for academia over January 2027 that awards SNU's vision 100 H100-hours (of 150)."""
    call = new_call(
        service,
        gpu_hours={"H100": 150},
        guaranteed={},
        period_start_ms=ms("2027-01-01T00:00:00"),
        period_end_ms=ms("2027-02-01T00:00:00"),
    )
    assert service.call("POST", f"/v1/calls/{call['id']}/open").status_code == 200
    lead(service, "academia/snu/vision", "minjun.kim")
    app = apply(service, "minjun.kim", call["id"], "academia/snu/vision", gpu_hours={"H100": 120})
    assert service.call("POST", f"/v1/applications/{app['id']}/submit", "minjun.kim").status_code == 200
    assert service.call("POST", f"/v1/calls/{call['id']}/close").status_code == 200
    r = service.call("POST", f"/v1/applications/{app['id']}/award", json={"gpu_hours": {"H100": 100}})
    assert r.status_code == 200, r.text
    return int(call["id"])


def test_public_report_figures(service: Service) -> None:
    call_id = award_january(service)
    seed(service)
    rep = service.call("GET", "/v1/reports/public", "june.paik", params={"period": "2027-01"})
    assert rep.status_code == 200, rep.text
    data = rep.json()
    until = ms("2027-01-20T00:00:00")
    assert data["until_ms"] == until
    capacity = 60 * (until - ms("2027-01-01T00:00:00")) / HOUR
    pool = data["pool"]
    assert pool["gpu_hours"] == 42.0 and pool["capacity_gpu_hours"] == capacity
    assert pool["utilisation"] == pytest.approx(42.0 / capacity)
    assert pool["domestic_npu_gpu_hours"] == 6.0 and pool["domestic_npu_share"] == pytest.approx(6 / 42)
    assert pool["jobs_started"] == 3 and pool["wait_p50_s"] == 0.0
    # demand in three projects: 32/8, 4/8 and 6/4 GPU-hours per guaranteed accelerator
    x = [32 / 8, 4 / 8, 6 / 4]
    assert pool["jain_fairness"] == pytest.approx(sum(x) ** 2 / (3 * sum(v * v for v in x)), abs=1e-6)
    sectors = {s["sector"]: s for s in data["sectors"]}
    assert sectors["academia"]["granted_gpu_hours"] == 100.0
    assert sectors["academia"]["used_gpu_hours"] == 32.0 and sectors["academia"]["left_gpu_hours"] == 68.0
    assert sectors["academia"]["target_share"] == pytest.approx(24 / 60)
    assert sectors["academia"]["wait_p95_s"] == pytest.approx(1800 * 0.95)
    # the demo's startups come with budgets of 20,000 and 5,000 GPU-hours (seeded for a year)
    startups = sectors["startups"]
    assert (startups["gpu_hours"], startups["granted_gpu_hours"], startups["used_gpu_hours"]) == (
        6.0,
        25000.0,
        6.0,
    )
    assert startups["left_gpu_hours"] == 24994.0 and sectors["public-research"]["jobs_started"] == 0
    # the call's award, by sector: the vision job's 32 H100-hours were charged against it
    assert data["calls"] == [
        {
            "call_id": call_id, "title_ko": "2026 상반기 AI 연구 GPU 지원",
            "title_en": "2026 H1 GPU support for AI research", "sector": "academia",
            "granted_gpu_hours": 100.0, "used_gpu_hours": 32.0, "left_gpu_hours": 68.0,
        }
    ]  # fmt: skip
    # no project, job or user appears anywhere in it
    text = rep.text
    for private in ("vision", "llm", "minjun", "jiwoo", "june.paik", "snu", "kaist"):
        assert private not in text
    for period in ("2027-Q5", "9999", "2027-13", "1969", "Q1-2027"):
        bad = service.call("GET", "/v1/reports/public", params={"period": period})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "period", (period, bad.text)
    # a period still to come: nothing used, no capacity gone yet, so no shares
    future = service.call("GET", "/v1/reports/public", params={"period": "2030-H2"}).json()
    assert future["until_ms"] == future["start_ms"] and future["pool"]["utilisation"] is None
    assert future["pool"]["gpu_hours"] == 0.0 and future["sectors"][0]["actual_share"] is None
    assert service.http.get("/v1/reports/public", params={"period": "2027-01"}).status_code == 401


def test_a_running_job_counts_up_to_now_and_so_does_the_entitlement(service: Service) -> None:
    seed(service)  # the clock is at 2027-01-20 00:00
    r = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    assert r.status_code == 201, r.text
    service.cycle()
    service.clock.advance(6 * HOUR)
    rep = report(service, by="organisation", every="day", **{"from": "2027-01-20", "to": "2027-01-22"})
    # six hours of 8 H100 so far, against SNU's 16 H100 for the six hours gone (not 24, nor 48)
    assert cells(rep, "gpu_hours", "jobs", "entitlement_gpu_hours", "share_of_entitlement") == {
        ("2027-01-20", "academia/snu", "H100"): (48.0, 1, 96.0, 0.5)
    }
