"""The national programme through the API: call > application > review > ranked list > award >
allocations > a job charged against the award > outputs > the call's report, and who may do what.

Runs on SQLite and PostgreSQL (the ``service`` fixture). Demo tenants: minjun.kim and
seoyeon.lee are members of academia/snu/vision, jiwoo.han and junseo.oh of academia/kaist/llm,
hayoon.choi of academia/snu/nlp.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from gpupool.service.db import ApplicationRow, CallRow
from gpupool.service.programme import awards
from tests.service.conftest import Service

HOUR = 3_600_000
DAY = 24 * HOUR
YEAR = 365 * DAY
CRITERIA = [
    {"key": "merit", "name": "Scientific merit", "weight": 3},
    {"key": "feasibility", "name": "Feasibility", "weight": 1},
]


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def refused(r: Any, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"].endswith("/" + kind), body
    return str(body["detail"])


def new_call(service: Service, **kw: Any) -> dict[str, Any]:
    now = service.clock()
    body = {
        "title_ko": "2026 상반기 AI 연구 GPU 지원",
        "title_en": "2026 H1 GPU support for AI research",
        "eligible_sectors": ["academia"],
        "gpu_hours": {"H100": 1000},
        "guaranteed": {"H100": 4},
        "period_start_ms": now,
        "period_end_ms": now + YEAR,
        "opens_ms": now - 1,
        "closes_ms": now + 30 * DAY,
        "criteria": CRITERIA,
        **kw,
    }
    return ok(service.call("POST", "/v1/calls", json=body), 201)  # type: ignore[no-any-return]


def user(service: Service, name: str) -> None:
    ok(service.call("POST", "/v1/users", json={"name": name}), 201)


def lead(service: Service, project: str, name: str) -> None:
    r = service.call("POST", f"/v1/projects/{project}/members", json={"user": name, "role": "lead"})
    assert r.status_code in (200, 201), r.text


def apply(service: Service, who: str, call_id: int, project: str, **kw: Any) -> dict[str, Any]:
    body = {
        "call_id": call_id,
        "project": project,
        "title": f"{project} 2026",
        "gpu_hours": {"H100": 600},
        "justification": "Training runs for the papers below.",
        "expected_outputs": "two papers, one open model",
        **kw,
    }
    return ok(service.call("POST", "/v1/applications", who, json=body), 201)  # type: ignore[no-any-return]


def scores(merit: float, feasibility: float, comment: str = "") -> dict[str, Any]:
    return {"scores": {"merit": merit, "feasibility": feasibility}, "comment": comment}


def test_call_to_award_to_a_charged_job_and_the_report(service: Service) -> None:
    user(service, "reviewer.an")
    lead(service, "academia/kaist/llm", "jiwoo.han")
    lead(service, "academia/snu/vision", "minjun.kim")

    call = new_call(service)
    cid = call["id"]
    assert call["state"] == "draft" and not call["accepting"]
    assert service.call("GET", f"/v1/calls/{cid}", "minjun.kim").status_code == 404  # drafts are the admins'
    refused(service.call("POST", f"/v1/calls/{cid}/open", "minjun.kim"), 403, "forbidden")
    opened = ok(service.call("POST", f"/v1/calls/{cid}/open"))
    assert opened["state"] == "open" and opened["accepting"]
    assert ok(service.call("GET", f"/v1/calls/{cid}", "minjun.kim"))["title_ko"] == call["title_ko"]
    detail = refused(service.call("POST", f"/v1/calls/{cid}/open"), 409, "bad-transition")
    assert "from open to open" in detail

    llm = apply(
        service, "jiwoo.han", cid, "academia/kaist/llm", gpu_hours={"H100": 800}, guaranteed={"H100": 4}
    )
    vision = apply(service, "minjun.kim", cid, "vision")
    assert llm["state"] == "draft" and vision["period_end_ms"] == call["period_end_ms"]
    # a member who is not a lead reads the application but may not write one
    assert ok(service.call("GET", f"/v1/applications/{llm['id']}", "junseo.oh"))["title"] == llm["title"]
    body = {"call_id": cid, "project": "llm", "title": "x", "gpu_hours": {"H100": 1}, "justification": "x"}
    refused(service.call("POST", "/v1/applications", "junseo.oh", json=body), 403, "forbidden")
    # a model the call does not offer, a sector it is not for
    bad = {**body, "gpu_hours": {"B200": 10}}
    r = service.call("POST", "/v1/applications", "jiwoo.han", json=bad)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "gpu_hours.B200"
    elsewhere = {**body, "project": "public-research/kisti/climate"}
    assert "is in public-research" in refused(
        service.call("POST", "/v1/applications", json=elsewhere), 403, "not-eligible"
    )

    for app, who in ((llm, "jiwoo.han"), (vision, "minjun.kim")):
        got = ok(service.call("POST", f"/v1/applications/{app['id']}/submit", who))
        assert got["state"] == "submitted" and got["submitted_ms"] == service.clock()
    detail = refused(
        service.call("POST", f"/v1/applications/{llm['id']}/submit", "jiwoo.han"), 409, "bad-transition"
    )
    assert "from submitted to submitted" in detail

    for name in ("reviewer.an", "seoyeon.lee"):
        ok(service.call("POST", f"/v1/calls/{cid}/reviewers", json={"user": name}), 201)
    # the call's reviewers read submitted applications; review waits until the call closes
    assert ok(service.call("GET", f"/v1/applications/{vision['id']}", "reviewer.an"))["state"] == "submitted"
    refused(service.call("POST", f"/v1/applications/{llm['id']}/reviews", "reviewer.an", json=scores(8, 8)),
            409, "bad-transition")  # fmt: skip
    closed = ok(service.call("POST", f"/v1/calls/{cid}/close"))
    assert closed["state"] == "closed" and not closed["accepting"]
    listed = ok(service.call("GET", f"/v1/applications?call={cid}"))
    assert {a["state"] for a in listed} == {"under_review"}

    # conflict of interest: seoyeon.lee is a member of SNU's vision project
    detail = refused(
        service.call("POST", f"/v1/applications/{vision['id']}/reviews", "seoyeon.lee", json=scores(10, 10)),
        403,
        "conflict-of-interest",
    )
    assert "member of academia/snu/vision" in detail
    ok(
        service.call(
            "POST", f"/v1/applications/{llm['id']}/reviews", "seoyeon.lee", json=scores(9, 8, "strong")
        )
    )
    ok(service.call("POST", f"/v1/applications/{llm['id']}/reviews", "reviewer.an", json=scores(7, 8)))
    ok(service.call("POST", f"/v1/applications/{vision['id']}/reviews", "reviewer.an", json=scores(6, 4)))
    r = service.call(
        "POST", f"/v1/applications/{vision['id']}/reviews", "reviewer.an", json={"scores": {"merit": 5}}
    )
    assert r.status_code == 422 and "missing: feasibility" in r.json()["detail"]
    # a reviewer sees her own review; the applicant's members see none before... or after
    mine = ok(service.call("GET", f"/v1/applications/{llm['id']}", "reviewer.an"))["reviews"]
    assert [rv["reviewer"] for rv in mine] == ["reviewer.an"]
    assert ok(service.call("GET", f"/v1/applications/{llm['id']}", "jiwoo.han"))["reviews"] == []

    refused(service.call("GET", f"/v1/calls/{cid}/ranking", "reviewer.an"), 403, "forbidden")
    ranking = ok(service.call("GET", f"/v1/calls/{cid}/ranking"))
    assert [i["project"] for i in ranking["items"]] == ["academia/kaist/llm", "academia/snu/vision"]
    # llm: merit (9+7)/2 = 8, feasibility 8 -> (3*8 + 1*8)/4 = 8; vision: (3*6 + 4)/4 = 5.5
    assert [i["score"] for i in ranking["items"]] == [8.0, 5.5]
    assert [i["reviews"] for i in ranking["items"]] == [2, 1]

    # awards: llm in part (500 of 800 H100-hours, the 4 guaranteed H100); vision asks for more than is left
    award = {"gpu_hours": {"H100": 500}, "guaranteed": {"H100": 4}, "note": "ranked first"}
    refused(
        service.call("POST", f"/v1/applications/{llm['id']}/award", "minjun.kim", json=award),
        403,
        "forbidden",
    )
    got = ok(service.call("POST", f"/v1/applications/{llm['id']}/award", json=award))
    assert got["state"] == "partly_awarded" and got["award"]["gpu_hours"] == {"H100": 500.0}
    detail = refused(
        service.call("POST", f"/v1/applications/{vision['id']}/award", json={"gpu_hours": {"H100": 600}}),
        409,
        "over-award",
    )
    assert "H100: 600.0 GPU-hours asked, 500.0 left" in detail
    assert ok(service.call("GET", f"/v1/calls/{cid}"))["gpu_hours_left"] == {"H100": 500.0}
    refused(service.call("POST", f"/v1/applications/{llm['id']}/award", json=award), 409, "bad-transition")

    # the award is an active allocation of llm for the award period, with its guarantee
    (alloc,) = ok(service.call("GET", "/v1/allocations?project=academia/kaist/llm", "jiwoo.han"))
    assert alloc["id"] == got["award"]["allocation_ids"][0]
    assert (alloc["model"], alloc["gpu_hours"], alloc["guaranteed"], alloc["state"]) == (
        "H100",
        500.0,
        4,
        "active",
    )
    assert (alloc["period_start_ms"], alloc["period_end_ms"]) == (
        call["period_start_ms"],
        call["period_end_ms"],
    )

    # a job of the awarded project runs and is charged against the award
    service.cycle()
    job = ok(service.submit("jiwoo.han", project="llm", gpus=2, models=["H100"]), 201)
    assert not job["over_budget"] and job["priority_class"] != "preemptible"
    service.cycle()
    service.clock.advance(HOUR)
    service.executor.finish(service.executor.launches[-1].allocation_id)
    service.cycle()
    (alloc,) = ok(service.call("GET", "/v1/allocations?project=academia/kaist/llm", "jiwoo.han"))
    assert alloc["used_gpu_hours"] == 2.0

    ok(service.call("POST", f"/v1/applications/{vision['id']}/decline", json={"note": "no H100 left"}))
    out = {"kind": "paper", "title": "Scaling Korean LLMs", "url": "https://arxiv.org/abs/2601.00001"}
    assert (
        service.call("POST", f"/v1/applications/{llm['id']}/outputs", "hayoon.choi", json=out).status_code
        == 404
    )
    refused(
        service.call("POST", f"/v1/applications/{vision['id']}/outputs", "minjun.kim", json=out),
        409,
        "no-award",
    )
    ok(service.call("POST", f"/v1/applications/{llm['id']}/outputs", "junseo.oh", json=out), 201)

    decided = ok(service.call("POST", f"/v1/calls/{cid}/decide"))
    assert decided["state"] == "decided"
    report = ok(service.call("GET", f"/v1/calls/{cid}/report"))
    assert report["scope"] == "all"
    assert report["granted_gpu_hours"] == {"H100": 500.0} and report["used_gpu_hours"] == {"H100": 2.0}
    (line,) = report["awards"]
    assert line["project"] == "academia/kaist/llm" and line["used_gpu_hours"] == {"H100": 2.0}
    assert [o["url"] for o in line["outputs"]] == [out["url"]]
    assert report["applications"] == {"partly_awarded": 1, "declined": 1}
    # a member of another project sees only her projects' part, labelled so
    theirs = ok(service.call("GET", f"/v1/calls/{cid}/report", "minjun.kim"))
    assert theirs["scope"] == "your projects only" and theirs["awards"] == []
    assert theirs["applications"] == {"declined": 1}

    # every step is in the audit log
    actions = [a["action"] for a in ok(service.call("GET", "/v1/audit?limit=200"))["items"]]
    for action in ("call.create", "call.open", "call.closed", "call.decided", "call.reviewer.add",
                   "application.create", "application.submitted", "application.review", "application.award",
                   "application.declined", "application.output"):  # fmt: skip
        assert action in actions, action

    # the award's allocation ends by the clock (tokens of a 90-day default would end first)
    service.long_lived_admin()
    service.clock.advance(YEAR)
    (alloc,) = ok(service.call("GET", "/v1/allocations?project=academia/kaist/llm", "jiwoo.han"))
    assert alloc["state"] == "expired"


def test_who_may_read_and_review(service: Service) -> None:
    user(service, "reviewer.bae")
    lead(service, "academia/kaist/llm", "jiwoo.han")
    first = new_call(service)["id"]
    second = new_call(service, title_en="Spring term")["id"]
    for cid in (first, second):
        ok(service.call("POST", f"/v1/calls/{cid}/open"))
    ok(service.call("POST", f"/v1/calls/{second}/reviewers", json={"user": "reviewer.bae"}), 201)
    app = apply(service, "jiwoo.han", first, "llm")
    path = f"/v1/applications/{app['id']}"
    # a draft: the project's own; nobody else, the call's reviewers included, knows it exists
    for outsider in ("hayoon.choi", "reviewer.bae", "minjun.kim"):
        refused(service.call("GET", path, outsider), 404, "not-found")
        assert ok(service.call("GET", f"/v1/applications?call={first}", outsider)) == []
    ok(service.call("POST", f"{path}/submit", "jiwoo.han"))
    ok(service.call("POST", f"/v1/calls/{first}/close"))
    # a reviewer of another call neither reads nor reviews it
    refused(service.call("GET", path, "reviewer.bae"), 404, "not-found")
    refused(service.call("POST", f"{path}/reviews", "reviewer.bae", json=scores(1, 1)), 404, "not-found")
    # a member of the project reads it but is no reviewer
    refused(service.call("POST", f"{path}/reviews", "junseo.oh", json=scores(10, 10)), 403, "forbidden")
    # only its leads move it; withdrawing is final
    refused(service.call("POST", f"{path}/withdraw", "junseo.oh"), 403, "forbidden")
    assert ok(service.call("POST", f"{path}/withdraw", "jiwoo.han"))["state"] == "withdrawn"
    detail = refused(service.call("POST", f"{path}/submit", "jiwoo.han"), 409, "call-not-open")
    assert "does not accept applications" in detail
    # an application past its call's close date cannot be submitted even if the call is still open
    late = apply(service, "jiwoo.han", second, "llm")
    service.clock.advance(31 * DAY)
    refused(service.call("POST", f"/v1/applications/{late['id']}/submit", "jiwoo.han"), 409, "call-not-open")


def test_renewal_names_the_allocation_and_guarantees_must_fit(service: Service) -> None:
    lead(service, "academia/snu/vision", "minjun.kim")
    cid = new_call(service, guaranteed={"H100": 100})["id"]
    ok(service.call("POST", f"/v1/calls/{cid}/open"))
    (solar,) = ok(service.call("GET", "/v1/allocations?project=startups/upstage/solar"))
    r = service.call("POST", "/v1/applications", "minjun.kim",
                     json={"call_id": cid, "project": "vision", "title": "x", "gpu_hours": {"H100": 5},
                           "justification": "x", "renews_allocation_id": solar["id"]})  # fmt: skip
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "renews_allocation_id"
    now = service.clock()
    past = {"project": "academia/snu/vision", "model": "H100", "gpu_hours": 10, "period_start_ms": now - DAY,
            "period_end_ms": now, "state": "active"}  # fmt: skip
    old = ok(service.call("POST", "/v1/allocations", json=past), 201)
    assert old["state"] == "expired"
    app = apply(service, "minjun.kim", cid, "vision", gpu_hours={"H100": 50}, guaranteed={"H100": 20},
                renews_allocation_id=old["id"])  # fmt: skip
    assert app["renews_allocation_id"] == old["id"]
    ok(service.call("POST", f"/v1/applications/{app['id']}/submit", "minjun.kim"))
    ok(service.call("POST", f"/v1/calls/{cid}/close"))
    # 20 more guaranteed H100 for SNU's vision do not fit the fleet's 24 (SNU already holds 16)
    r = service.call("POST", f"/v1/applications/{app['id']}/award", json={"gpu_hours": {"H100": 50},
                     "guaranteed": {"H100": 20}})  # fmt: skip
    assert r.status_code == 422 and r.json()["type"].endswith("/invalid-tenancy"), r.text
    assert ok(service.call("GET", f"/v1/applications/{app['id']}"))["state"] == "under_review"
    got = ok(service.call("POST", f"/v1/applications/{app['id']}/award", json={"gpu_hours": {"H100": 50}}))
    assert got["state"] == "partly_awarded"  # the guarantee asked for was not granted
    allocs = ok(service.call("GET", "/v1/allocations?project=academia/snu/vision", "minjun.kim"))
    assert [a["note"] for a in allocs if a["id"] in got["award"]["allocation_ids"]] == [
        f"award of application {app['id']} to call {cid}, renewing allocation {old['id']}"
    ]


def test_bad_calls_are_refused_naming_the_field(service: Service) -> None:
    now = service.clock()
    body = {"title_ko": "x", "title_en": "x", "eligible_sectors": ["academia"], "gpu_hours": {"H100": 1},
            "period_start_ms": now, "period_end_ms": now + DAY, "opens_ms": now, "closes_ms": now + DAY,
            "criteria": CRITERIA}  # fmt: skip
    r = service.call("POST", "/v1/calls", json={**body, "eligible_sectors": ["nowhere"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "eligible_sectors[0]"
    r = service.call("POST", "/v1/calls", json={**body, "gpu_hours": {"K80": 1}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "gpu_hours.K80"
    r = service.call("POST", "/v1/calls", json={**body, "period_end_ms": now - 1})
    assert r.status_code == 422 and "period_end_ms" in r.json()["detail"]
    r = service.call("POST", "/v1/calls", json={**body, "guaranteed": {"H200": 2}})
    assert r.status_code == 422 and "offers no H200 GPU-hours" in r.json()["detail"]
    dup = [CRITERIA[0], CRITERIA[0]]
    assert service.call("POST", "/v1/calls", json={**body, "criteria": dup}).status_code == 422
    refused(service.call("POST", "/v1/calls", "minjun.kim", json=body), 403, "forbidden")


def test_two_awards_at_once_do_not_both_spend_what_is_left(service: Service) -> None:
    """An award holds its call's row while it counts what is left (PostgreSQL: SELECT FOR UPDATE;
    SQLite's writers are serial): a competing award committed meanwhile is counted."""
    if not service.runtime.settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers are serial: there is no concurrent award to race")
    lead(service, "academia/kaist/llm", "jiwoo.han")
    lead(service, "academia/snu/vision", "minjun.kim")
    cid = new_call(service)["id"]
    ok(service.call("POST", f"/v1/calls/{cid}/open"))
    first = apply(service, "jiwoo.han", cid, "llm")["id"]
    second = apply(service, "minjun.kim", cid, "vision")["id"]
    for app_id, who in ((first, "jiwoo.han"), (second, "minjun.kim")):
        ok(service.call("POST", f"/v1/applications/{app_id}/submit", who))
    ok(service.call("POST", f"/v1/calls/{cid}/close"))
    answers: list[Any] = []
    with service.runtime.factory.begin() as s:
        # another award of 600 H100-hours, in progress: it holds the call
        call = s.get(CallRow, cid, with_for_update=True)
        app = s.get(ApplicationRow, first)
        assert call is not None and app is not None
        awards.award(s, call, app, {"H100": 600}, {}, "", "admin", service.clock())
        racer = threading.Thread(
            target=lambda: answers.append(
                service.call("POST", f"/v1/applications/{second}/award", json={"gpu_hours": {"H100": 600}})
            )
        )
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive(), "the second award did not wait for the first"
    racer.join(timeout=30)
    assert "H100: 600.0 GPU-hours asked, 400.0 left" in refused(answers[0], 409, "over-award")
