"""The dashboard's API (``/v1/dashboard/*``) and its static assets, through the HTTP API.

Runs on the ``tests.service`` fixtures: a service on the demo fleet with a controllable clock
and a recording executor; cycles run when a test says so. Queries with JSON expressions
(queue filters and sorts) run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from gpupool.service.api.app import create_app
from gpupool.service.db import JobRow, UsageRow
from gpupool.service.executors.gpus import GpuSample
from gpupool.service.sampler import SeriesSampler
from gpupool.web import CSP, STATIC_DIR
from tests.service.conftest import Service, make_service
from tests.service.fakes import RecordingExecutor

HOUR = 3_600_000


def jobs(service: Service, caller: str = "admin", **params: Any) -> dict[str, Any]:
    r = service.call("GET", "/v1/dashboard/jobs", caller, params=params)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def all_pages(service: Service, caller: str = "admin", **params: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = jobs(service, caller, **params, **({"cursor": cursor} if cursor else {}))
        got += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return got


# ------------------------------------------------------------------------------- static


def test_the_page_and_its_assets_are_served_with_a_strict_policy(sqlite_service: Service) -> None:
    http = sqlite_service.http
    r = http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    assert '<script type="module" src="/ui/js/app.js">' in r.text
    js = http.get("/ui/js/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["content-security-policy"] == CSP and js.headers["x-content-type-options"] == "nosniff"
    assert http.get("/ui/app.css").headers["content-type"].startswith("text/css")
    assert http.get("/ui/../pyproject.toml").status_code == 404
    assert http.get("/ui/nope.js").status_code == 404
    # the dashboard's own routes are not API operations
    paths = http.get("/openapi.json").json()["paths"]
    assert "/" not in paths and "/v1/dashboard/jobs" in paths and "/v1/whatif" in paths


def test_every_asset_is_local(sqlite_service: Service) -> None:
    """Offline: no asset names another host (the SVG namespace is a name, not a fetch)."""
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".html", ".css", ".js", ".svg"}
    for p in files:
        text = p.read_text(encoding="utf-8")
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{p.name} refers to {urls}"
        assert "@import" not in text and "cdn" not in text.lower(), p.name
        # every served file is reachable under /ui/
        assert sqlite_service.http.get(f"/ui/{p.relative_to(STATIC_DIR).as_posix()}").status_code == 200


def test_no_inline_script_or_style_in_the_page() -> None:
    """The CSP forbids inline script and style: the page must not need them."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html and " style=" not in html and " on" + "click=" not in html
    for js in (STATIC_DIR / "js").rglob("*.js"):
        text = js.read_text(encoding="utf-8")
        assert ".innerHTML" not in text and "eval(" not in text, js.name
        assert 'setAttribute("style"' not in text, js.name


# ------------------------------------------------------------------------------ session


def test_session_says_what_each_role_may_do(service: Service) -> None:
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    admin = service.call("GET", "/v1/dashboard/session").json()
    assert (admin["role"], admin["sees_all"], admin["can_whatif"], admin["can_drain"]) == (
        "pool-admin",
        True,
        True,
        True,
    )
    assert admin["submit_projects"] == []  # a pool admin is no project member: the API refuses
    viewer = service.call("GET", "/v1/dashboard/session", "auditor").json()
    assert (viewer["can_whatif"], viewer["can_drain"], viewer["submit_projects"]) == (True, False, [])
    # a viewer reads what-if studies; only a pool admin starts them (ADR 0007)
    assert (admin["can_start_whatif"], viewer["can_start_whatif"]) == (True, False)
    member = service.call("GET", "/v1/dashboard/session", "minjun.kim").json()
    assert member["submit_projects"] == ["academia/snu/vision"]
    assert (member["sees_all"], member["can_whatif"], member["can_drain"]) == (False, False, False)
    assert member["memberships"] == [{"tenant": "academia/snu/vision", "role": "member"}]
    assert "H100" in member["models"]
    # the models a project may run on: its clusters' (vision has no restriction: all of them)
    assert member["project_models"] == {"academia/snu/vision": member["models"]}
    confined = service.call("GET", "/v1/dashboard/session", "june.paik").json()
    assert confined["project_models"] == {"startups/furiosaai/serving": ["ATOM", "B200", "GB200", "RNGD"]}
    assert admin["project_models"] == {}
    # and what the session promises, the API keeps
    assert service.submit("minjun.kim", project="vision", gpus=1).status_code == 201
    assert service.submit("auditor", project="vision", gpus=1).status_code == 403
    assert service.call("GET", "/v1/whatif", "minjun.kim").status_code == 403
    assert service.call("GET", "/v1/whatif", "auditor").status_code == 200
    assert service.http.get("/v1/dashboard/session").status_code == 401


# -------------------------------------------------------------------------------- fleet


def test_fleet_occupancy_per_level_and_drill_down(sqlite_service: Service) -> None:
    service = sqlite_service
    service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    service.cycle()
    service.call("POST", "/v1/fleet/nodes/kisti-ib1-r0-n00/drain", json={"reason": "메모리 교체"})
    service.cycle()
    view = service.call("GET", "/v1/dashboard/fleet").json()
    assert (view["total"], view["busy"], view["unavailable"]) == (60, 8, 8)
    kisti = next(c for c in view["clusters"] if c["name"] == "kisti")
    assert (kisti["site"], kisti["total"], kisti["busy"], kisti["drained"], kisti["nodes"]) == (
        "KISTI Daejeon",
        32,
        8,
        1,
        4,
    )
    assert [(b["name"], b["total"], b["busy"], b["racks"]) for b in kisti["blocks"]] == [
        ("ib0", 24, 8, 2),
        ("ib1", 8, 0, 1),
    ]
    assert {m["name"]: (m["total"], m["busy"]) for m in view["models"]}["H100"] == (24, 8)
    assert sum(s["total"] for s in view["sites"]) == 60 and view["racks"] == []
    assert view["unavailable_nodes"] == [
        {"name": "kisti-ib1-r0-n00", "model": "H200", "gpus": 8, "busy": 0, "state": "drained",
         "reason": "메모리 교체", "cluster": "kisti"}
    ]  # fmt: skip
    block = service.call("GET", "/v1/dashboard/fleet", params={"cluster": "kisti", "block": "ib1"}).json()
    (rack,) = block["racks"]
    (node,) = rack["node_cells"]
    assert (node["name"], node["state"], node["reason"], node["busy"]) == (
        "kisti-ib1-r0-n00",
        "drained",
        "메모리 교체",
        0,
    )
    nvl = service.call("GET", "/v1/dashboard/fleet", params={"cluster": "sejong", "block": "ib0"}).json()
    assert [(r["name"], r["nvlink"], len(r["node_cells"])) for r in nvl["racks"]] == [
        ("ib0-r0", False, 1),
        ("ib0-nvl0", True, 2),
    ]
    assert service.call("GET", "/v1/dashboard/fleet", params={"cluster": "kisti"}).status_code == 422
    assert (
        service.call("GET", "/v1/dashboard/fleet", params={"cluster": "kisti", "block": "zz"}).status_code
        == 404
    )


# -------------------------------------------------------------------------------- queue


def test_queue_filters_sorts_and_pages(service: Service) -> None:
    ids = []
    # high is granted from above (ADR 0007): the pool admin grants it to the academia sector
    grant = {"allowed_classes": ["normal", "low", "preemptible", "high"]}
    assert service.call("PATCH", "/v1/tenants/academia", json=grant).status_code == 200
    for i, (user, project, gpus, models, prio) in enumerate(
        [
            ("minjun.kim", "vision", 8, ["H100"], "normal"),
            ("minjun.kim", "vision", 16, ["H100"], "high"),
            ("hayoon.choi", "nlp", 8, ["H100"], "low"),  # nlp may hold 8 of any model
            ("hayoon.choi", "nlp", 4, [], "normal"),
            ("jiwoo.han", "llm", 8, ["GB200"], "normal"),
            ("minjun.kim", "vision", 2, ["H200"], "preemptible"),
            ("hwan.kim", "solar", 1, ["B200"], "normal"),
        ]
    ):
        r = service.submit(
            user, project=project, gpus=gpus, models=models, priority_class=prio, name=f"잡 {i}"
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        service.clock.advance(1000)
    service.cycle()
    everything = jobs(service, state="all", limit=200)
    assert everything["total"] == 7 and [j["id"] for j in everything["items"]] == ids[::-1]
    pending = {j["id"]: j for j in jobs(service, state="pending")["items"]}
    running = {j["id"] for j in jobs(service, state="running")["items"]}
    assert pending and running and not (set(pending) & running) and set(pending) | running == set(ids)
    for j in pending.values():
        assert j["reason"] and j["reason"] != "running"
    # every sort, both ways, paged 2 at a time: the pages add up to the whole, in order
    for sort in ("submitted", "estimated_start", "started", "priority", "gpus"):
        for order in ("asc", "desc"):
            paged = [j["id"] for j in all_pages(service, state="all", sort=sort, order=order, limit=2)]
            whole = [j["id"] for j in jobs(service, state="all", sort=sort, order=order, limit=200)["items"]]
            assert paged == whole and sorted(paged) == sorted(ids), (sort, order)
    by_gpus = [j["gpus"] for j in jobs(service, state="all", sort="gpus", order="desc")["items"]]
    assert by_gpus == sorted(by_gpus, reverse=True)
    by_prio = [j["priority_class"] for j in jobs(service, state="all", sort="priority", order="asc")["items"]]
    rank = ["reserved", "high", "normal", "low", "preemptible"]
    assert [rank.index(p) for p in by_prio] == sorted(rank.index(p) for p in by_prio)
    started = jobs(service, state="all", sort="started", order="desc")["items"]
    assert [j["start_ms"] is None for j in started] == sorted(j["start_ms"] is None for j in started)
    # filters: a subtree, a project, a user, a model (placed, or asked for, or any)
    assert {j["project"] for j in jobs(service, state="all", tenant="academia/snu")["items"]} == {
        "academia/snu/vision",
        "academia/snu/nlp",
    }
    assert jobs(service, state="all", project="academia/kaist/llm")["total"] == 1
    assert jobs(service, state="all", project="academia/kaist")["total"] == 0  # not a project
    assert {j["user"] for j in jobs(service, state="all", user="hayoon.choi")["items"]} == {"hayoon.choi"}
    h100 = {j["name"] for j in jobs(service, state="all", model="H100")["items"]}
    assert h100 == {"잡 0", "잡 1", "잡 2", "잡 3"}  # 잡 3 takes any model
    assert jobs(service, state="all", model='H1"00')["total"] == 0
    assert jobs(service, state="all", user="nobody")["total"] == 0
    # a cursor belongs to its listing
    cursor = jobs(service, state="all", limit=2)["next_cursor"]
    r = service.call("GET", "/v1/dashboard/jobs", params={"state": "all", "sort": "gpus", "cursor": cursor})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"
    for bad in ("zz", "W10", "eyJ4IjoxfQ"):
        assert service.call("GET", "/v1/dashboard/jobs", params={"cursor": bad}).status_code == 422


def test_members_see_only_their_projects_in_the_queue(service: Service) -> None:
    mine = service.submit("minjun.kim", project="vision", gpus=1).json()["id"]
    theirs = service.submit("hayoon.choi", project="nlp", gpus=1).json()["id"]
    service.cycle()
    page = jobs(service, "minjun.kim", state="all")
    assert [j["id"] for j in page["items"]] == [mine] and page["total"] == 1
    assert page["items"][0]["can_cancel"] is True
    assert jobs(service, "minjun.kim", state="all", project="academia/snu/nlp")["total"] == 0
    assert jobs(service, "minjun.kim", state="all", tenant="startups")["total"] == 0
    assert service.call("GET", f"/v1/dashboard/jobs/{theirs}", "minjun.kim").status_code == 404
    # a viewer sees both and may cancel neither; the admin may cancel both
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    seen = jobs(service, "auditor", state="all")["items"]
    assert {j["id"] for j in seen} == {mine, theirs} and not any(j["can_cancel"] for j in seen)
    assert all(j["can_cancel"] for j in jobs(service, state="all")["items"])


# ---------------------------------------------------------------------------------- job


class TelemetryExecutor(RecordingExecutor):
    """Records GPU samples for its allocations, as the local executor does on real GPUs."""

    def telemetry(self, allocation_id: str) -> list[GpuSample]:
        if allocation_id not in self.live and allocation_id not in self._seen:
            return []
        t = self.clock()
        return [
            GpuSample(t - 10_000 + i * 5000, f"GPU-{d}", 50 + 10 * d + i, 1000 * (d + 1))
            for i in range(2)
            for d in range(2)
        ]


def test_job_detail_timeline_placement_and_telemetry(tmp_path: Path) -> None:
    runtime, clock, _ = make_service(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    executor = TelemetryExecutor(clock)
    runtime._executors = {"*": executor}
    with TestClient(create_app(runtime)) as http:
        service = Service(runtime, http, clock, executor)
        job = service.submit("jiwoo.han", project="llm", gpus=8, models=["GB200"], topology="nvlink").json()
        clock.advance(2000)
        service.cycle()
        clock.advance(60_000)
        d = service.call("GET", f"/v1/dashboard/jobs/{job['id']}", "jiwoo.han").json()
        assert [e["what"] for e in d["timeline"]] == ["submitted", "started"]
        assert d["can_cancel"] is True
        assert [(p["node"], p["accelerators"], p["rack"], p["nvlink_rack"]) for p in d["placement"]] == [
            ("sejong-ib0-nvl0-n00", [0, 1, 2, 3], "ib0-nvl0", True),
            ("sejong-ib0-nvl0-n01", [0, 1, 2, 3], "ib0-nvl0", True),
        ]
        assert len({p["nvlink_domain"] for p in d["placement"]}) == 1
        assert d["span"] == "one NVLink domain"
        (attempt,) = d["attempts"]
        assert attempt["gpus"] == 8 and attempt["gpu_hours"] == pytest.approx(8 * 60 / 3600, rel=1e-3)
        assert {t["device"] for t in d["telemetry"]} == {"GPU-0", "GPU-1"}
        executor.finish(d["job"]["allocation_id"], 0)
        clock.advance(1000)
        service.cycle()
        done = service.call("GET", f"/v1/dashboard/jobs/{job['id']}", "jiwoo.han").json()
        assert [e["what"] for e in done["timeline"]] == ["submitted", "started", "completed"]
        assert done["can_cancel"] is False and done["job"]["state"] == "completed"


def test_job_timeline_shows_preemptions_and_resumes(sqlite_service: Service) -> None:
    service = sqlite_service
    job = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()
    service.cycle()
    seq = int(job["id"][1:])
    t0 = service.clock()
    # A second attempt, as the loop records one after a preemption: the first ended, one more began.
    with service.runtime.factory.begin() as s:
        s.execute(update(UsageRow).where(UsageRow.allocation_id == f"j{seq}.1").values(end_ms=t0 + HOUR))
        s.add(
            UsageRow(
                job_seq=seq,
                allocation_id=f"j{seq}.2",
                project_id=s.get(JobRow, seq).project_id,  # type: ignore[union-attr]
                model="H100",
                workload_class="default",
                gpus=8,
                start_ms=t0 + 2 * HOUR,
                end_ms=None,
            )
        )
        s.execute(
            update(JobRow)
            .where(JobRow.seq == seq)
            .values(attempt=2, preemptions=1, allocation_id=f"j{seq}.2")
        )
    service.clock.advance(3 * HOUR)
    d = service.call("GET", f"/v1/dashboard/jobs/{job['id']}", "minjun.kim").json()
    assert [(e["what"], e["attempt"]) for e in d["timeline"]] == [
        ("submitted", 0),
        ("started", 1),
        ("preempted", 1),
        ("resumed", 2),
    ]
    assert [a["gpu_hours"] for a in d["attempts"]] == [pytest.approx(8.0), pytest.approx(8.0)]
    assert service.call("GET", "/v1/dashboard/jobs/j999999", "minjun.kim").status_code == 404
    assert service.call("GET", "/v1/dashboard/jobs/nope").status_code == 404


# ------------------------------------------------------------------------------ tenants


def test_tenant_tree_guarantees_use_and_burn_down(sqlite_service: Service) -> None:
    service = sqlite_service
    body = {
        "project": "academia/snu/vision",
        "model": "H100",
        "gpu_hours": 100,
        "period_start_ms": service.clock() - HOUR,
        "period_end_ms": service.clock() + 9 * HOUR,
        "guaranteed": 0,
        "state": "active",
    }
    assert service.call("POST", "/v1/allocations", json=body).status_code == 201
    service.cycle()
    service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    service.cycle()
    service.clock.advance(2 * HOUR)
    view = service.call("GET", "/v1/dashboard/tenants").json()
    by = {t["path"]: t for t in view["tenants"]}
    assert [t["path"] for t in view["tenants"]][:3] == ["academia", "academia/snu", "academia/snu/vision"]
    assert by["academia/snu/vision"]["in_use_gpus"] == 8 and by["academia/snu"]["in_use_gpus"] == 8
    assert by["academia/snu/vision"]["gpu_hours"] == pytest.approx(16.0)
    assert by["academia"]["gpu_hours"] == pytest.approx(16.0)
    assert by["academia/snu"]["guaranteed_gpus"] == 16  # its own guarantee
    assert by["academia"]["guaranteed_gpus"] == 24  # none of its own: its children's
    assert by["academia/snu/vision"]["guaranteed_share"] == pytest.approx(8 / 60, abs=1e-6)
    assert by["academia/snu/vision"]["actual_share"] == pytest.approx(8 / 60, abs=1e-6)
    assert [t["depth"] for t in view["tenants"]][:3] == [0, 1, 2] and view["partial"] is False
    (burn,) = [
        b
        for b in service.call("GET", "/v1/dashboard/burndown", params={"project": "vision"}).json()
        if b["model"] == "H100"
    ]
    assert burn["used_gpu_hours"] == pytest.approx(16.0) and burn["gpu_hours"] == 100
    assert burn["unit"] == "gpu_hours"  # the unit its grant counts, labelled on the page
    assert burn["points"][0]["gpu_hours"] == 0 and burn["points"][-1]["gpu_hours"] == pytest.approx(16.0)
    assert all(
        a["gpu_hours"] <= b["gpu_hours"] for a, b in zip(burn["points"], burn["points"][1:], strict=False)
    )
    # a member sees their branch, usage of their own project, and the sector's and the
    # organisation's whole totals (vision's job counts there, though vision is not theirs)
    mine = service.call("GET", "/v1/dashboard/tenants", "hayoon.choi").json()
    assert mine["partial"] is True
    theirs = {t["path"]: t for t in mine["tenants"]}
    assert set(theirs) == {"academia", "academia/snu", "academia/snu/nlp"}
    assert theirs["academia/snu/nlp"]["gpu_hours"] == 0 and theirs["academia/snu/nlp"]["in_use_gpus"] == 0
    for group in ("academia", "academia/snu"):
        assert theirs[group]["whole"] is True and theirs[group]["in_use_gpus"] == 8
        assert theirs[group]["gpu_hours"] == pytest.approx(16.0)
    assert theirs["academia/snu/nlp"]["whole"] is False
    assert (
        service.call("GET", "/v1/dashboard/burndown", "hayoon.choi", params={"project": "vision"}).status_code
        == 404
    )
    assert service.call("GET", "/v1/dashboard/burndown", "minjun.kim", params={"project": "vision"}).json()


def test_sector_and_organisation_totals_are_whole_for_an_org_admin(service: Service) -> None:
    """An org admin sees the sector's real figures, not the sum of the projects she may see.

    Jobs run in two organisations of one sector (SNU's vision, KAIST's llm); an admin of SNU
    gets the Academia row with both (what a pool admin gets), KAIST's usage only inside it.
    """
    assert service.call("POST", "/v1/users", json={"name": "prof.lee"}).status_code == 201
    r = service.call("POST", "/v1/projects/academia/snu/members", json={"user": "prof.lee", "role": "admin"})
    assert r.status_code == 201, r.text
    assert service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).status_code == 201
    assert service.submit("jiwoo.han", project="llm", gpus=4, models=["GB200"]).status_code == 201
    service.cycle()
    service.clock.advance(HOUR)
    admin = {t["path"]: t for t in service.call("GET", "/v1/dashboard/tenants").json()["tenants"]}
    view = service.call("GET", "/v1/dashboard/tenants", "prof.lee").json()
    org = {t["path"]: t for t in view["tenants"]}
    assert "academia/kaist" not in org and "academia/kaist/llm" not in org  # no detail outside
    assert org["academia"]["in_use_gpus"] == admin["academia"]["in_use_gpus"] == 12
    assert (
        org["academia"]["gpu_hours"] == pytest.approx(admin["academia"]["gpu_hours"]) == pytest.approx(12.0)
    )
    assert org["academia"]["actual_share"] == admin["academia"]["actual_share"]
    assert org["academia/snu"]["in_use_gpus"] == 8 and org["academia/snu/vision"][
        "gpu_hours"
    ] == pytest.approx(8)
    assert view["busy_gpus"] == 12
    # /v1/usage: by sector, the whole sector; by project, her organisation's projects only
    sector = service.call("GET", "/v1/usage", "prof.lee", params={"by": "sector"}).json()
    assert {i["key"]: i["gpu_hours"] for i in sector["items"]} == {"academia": pytest.approx(12.0)}
    everyone = service.call("GET", "/v1/usage", params={"by": "sector"}).json()
    assert {i["key"]: i["gpu_hours"] for i in everyone["items"]}["academia"] == pytest.approx(12.0)
    orgs = service.call("GET", "/v1/usage", "prof.lee", params={"by": "organisation"}).json()
    assert {i["key"] for i in orgs["items"]} == {"academia/snu"}
    projects = service.call("GET", "/v1/usage", "prof.lee", params={"by": "project"}).json()
    assert {i["key"] for i in projects["items"]} == {"academia/snu/vision"}
    # a member of KAIST's project sees the same sector total
    member = service.call("GET", "/v1/usage", "jiwoo.han", params={"by": "sector"}).json()
    assert member["items"][0]["gpu_hours"] == pytest.approx(12.0)


# ------------------------------------------------------------------------------- series


def test_series_samples_the_metrics(sqlite_service: Service) -> None:
    service = sqlite_service
    sampler: SeriesSampler = service.http.app.state.dashboard_sampler  # type: ignore[attr-defined]
    service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    # waits: with the 8 running, 16 more would pass vision's cap of 16 (borrow limit "*")
    service.submit("minjun.kim", project="vision", gpus=16, models=["H100"])
    for _ in range(3):
        service.cycle()
    service.clock.advance(5000)
    s = sampler.sample_once()
    assert (s.pending, s.running, s.busy, s.total) == (1, 1, 8, 60)
    assert s.cycles >= 3 and s.cycle_ms_mean is not None and s.cycle_ms_mean > 0
    assert s.cycle_ms_p95 is not None and s.cycle_ms_p95 >= s.cycle_ms_mean
    service.clock.advance(5000)
    sampler.sample_once()
    out = service.call("GET", "/v1/dashboard/series", params={"window_s": 600}).json()
    assert out["points"][-1]["pending"] == 1 and out["points"][-1]["total"] == 60
    assert service.call("GET", "/v1/dashboard/series", params={"window_s": 1}).status_code == 422
    for _ in range(30):
        service.clock.advance(5000)
        sampler.sample_once()
    few = service.call("GET", "/v1/dashboard/series", params={"window_s": 3600, "points": 10}).json()
    assert len(few["points"]) <= 10 and few["interval_s"] > sampler.interval_s
