"""What-if runs through the API (real child processes), the queue at 100,000 jobs, and the
pieces underneath: the report's figures, the sampler's percentile.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from gpupool.service.api.dashboard.queue import encode_cursor
from gpupool.service.db import JobRow, TenantRow, UserRow
from gpupool.service.sampler import _p95_ms
from gpupool.service.whatif import WhatIfRuns, report_figures
from tests.service.conftest import Service

SMALL = {"fleet": "demo", "workload": "synthetic", "load": 0.5, "hours": 1, "seed": 3, "policies": ["fifo"]}


def wait_run(service: Service, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = service.call("GET", f"/v1/whatif/{run_id}")
        assert r.status_code == 200, r.text
        run: dict[str, Any] = r.json()
        if run["state"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, f"what-if run {run_id} still running: {run['progress']}"
        time.sleep(0.2)


def test_whatif_is_for_viewers_and_bounded(sqlite_service: Service) -> None:
    service = sqlite_service
    assert service.call("POST", "/v1/whatif", "minjun.kim", json=SMALL).status_code == 403
    assert service.call("GET", "/v1/whatif/options", "minjun.kim").status_code == 403
    opts = service.call("GET", "/v1/whatif/options").json()
    assert (
        "demo" in opts["fleets"] and opts["default_fleet"] == "demo" and "fairshare+easy" in opts["policies"]
    )
    bad = [
        ({"fleet": "/etc/passwd"}, "fleet"),
        ({"fleet": "../../etc/passwd"}, "fleet"),
        ({"tenants": "/tmp/x.yaml"}, "tenants"),
        ({"workload": "/etc/hostname"}, "workload"),
        ({"policies": ["fifo", "fifo"]}, "policies"),
        ({"policies": ["fifo", "las", "sjf", "srtf", "priority"]}, "policies"),
        ({"policies": ["nope"]}, "policies[0]"),
        ({"policies": []}, "policies"),
        ({"hours": 10_000}, "hours"),
        ({"load": 0}, "load"),
        ({"extra": 1}, "extra"),
    ]
    for change, field in bad:
        r = service.call("POST", "/v1/whatif", json={**SMALL, **change})
        assert r.status_code == 422, (change, r.text)
        assert r.json()["errors"][0]["field"] == field, (change, r.json())
    assert service.call("GET", "/v1/whatif/w0000000000000000").status_code == 404
    assert service.call("GET", "/v1/whatif/../../etc").status_code == 404
    assert service.call("GET", "/v1/whatif").json() == []


@pytest.mark.slow
def test_whatif_runs_in_the_background_and_shows_its_report(sqlite_service: Service) -> None:
    service = sqlite_service
    r = service.call(
        "POST", "/v1/whatif", json={**SMALL, "policies": ["fifo", "fairshare+easy"], "title": "데모"}
    )
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    # one worker: the next study waits in the queue, and runs when the first is done
    queued = service.call("POST", "/v1/whatif", json=SMALL)
    assert queued.status_code == 202 and queued.json()["state"] == "queued", queued.text
    assert queued.json()["queue_position"] == 1
    assert service.call("GET", f"/v1/whatif/{run_id}/figures").status_code == 404  # not done yet
    run = wait_run(service, run_id)
    assert run["state"] == "done", run["error"]
    result = run["result"]
    assert result["policies"] == ["fifo", "fairshare+easy"] and result["jobs"] > 0
    assert set(result["metrics"]["fifo"]) >= {"avg_jct_s", "utilization", "jain_fairness"}
    assert result["context"]["started by"] == "admin from the dashboard"
    figures = service.call("GET", f"/v1/whatif/{run_id}/figures").json()
    assert len(figures) == 6 and sum(f["src"].startswith("data:image/png;base64,") for f in figures) >= 5
    assert {f["alt"] for f in figures} >= {"utilisation over time", "JCT CDF"}
    assert all(f["caption"] for f in figures)
    report = service.call("GET", f"/v1/whatif/{run_id}/report.html")
    assert report.status_code == 200 and "<h1>데모</h1>" in report.text
    assert "sandbox" in report.headers["content-security-policy"]
    assert report.headers["content-disposition"].startswith("attachment")
    second = wait_run(service, queued.json()["id"])
    assert second["state"] == "done", second["error"]
    listed = service.call("GET", "/v1/whatif").json()
    assert {x["id"] for x in listed} == {run_id, second["id"]}
    assert next(x for x in listed if x["id"] == run_id)["spec"]["title"] == "데모"
    assert service.call("POST", f"/v1/whatif/{run_id}/cancel").status_code == 409
    # done means done: the next study may start at once (even while the old child exits)
    again = service.call("POST", "/v1/whatif", json=SMALL)
    assert again.status_code == 202, again.text
    assert service.call("POST", f"/v1/whatif/{again.json()['id']}/cancel").status_code == 202


@pytest.mark.slow
def test_whatif_can_be_stopped_and_refuses_oversized_workloads(sqlite_service: Service) -> None:
    service = sqlite_service
    runs: WhatIfRuns = service.http.app.state.dashboard_whatif  # type: ignore[attr-defined]
    run_id = service.call("POST", "/v1/whatif", json=SMALL).json()["id"]
    assert service.call("POST", f"/v1/whatif/{run_id}/cancel").status_code == 202
    stopped = wait_run(service, run_id)
    assert stopped["state"] == "failed" and "cancelled" in stopped["error"]
    runs.max_jobs = 5
    big = service.call("POST", "/v1/whatif", json=SMALL).json()["id"]
    refused = wait_run(service, big)
    assert refused["state"] == "failed" and "at most 5 jobs" in refused["error"]


def test_an_interrupted_run_reads_as_failed(tmp_path: Path) -> None:
    runs = WhatIfRuns(tmp_path)
    folder = tmp_path / "w0123456789abcdef"
    folder.mkdir()
    (folder / "request.json").write_text('{"id": "w0123456789abcdef", "spec": {}, "created_ms": 5}')
    status = runs.status("w0123456789abcdef")
    assert status is not None and status["state"] == "failed" and "interrupted" in status["error"]
    assert runs.status("not-an-id") is None and runs.figures("w0123456789abcdef") is None


def test_report_figures_are_read_from_the_report() -> None:
    page = (
        '<figure><img alt="a &amp; b" src="data:image/png;base64,AAAA"><figcaption>Left is <b>fast</b>.'
        '</figcaption></figure><figure><div class="empty">No job finished.</div><figcaption>JCT</figcaption>'
        '</figure><figure><img alt="x" src="https://evil.example/x.png"><figcaption>c</figcaption></figure>'
    )
    a, b, c = report_figures(page)
    assert (a.alt, a.caption, a.src) == ("a & b", "Left is fast.", "data:image/png;base64,AAAA")
    assert (b.src, b.empty, b.caption) == ("", "No job finished.", "JCT")
    assert c.src == ""  # only embedded images are passed on


def test_p95_reads_the_bucket_that_holds_it() -> None:
    before = {0.001: 0, 0.01: 0, 0.1: 0, float("inf"): 0}
    after = {0.001: 50, 0.01: 94, 0.1: 100, float("inf"): 100}
    assert _p95_ms(before, after, 100) == pytest.approx(100.0)
    assert _p95_ms(before, {**after, 0.01: 96}, 100) == pytest.approx(10.0)
    assert _p95_ms(before, after, 0) is None
    assert _p95_ms(before, {0.1: 0, float("inf"): 10}, 10) is None  # beyond the last bound


@pytest.mark.slow
def test_the_queue_pages_through_100k_jobs_at_the_same_cost(sqlite_service: Service) -> None:
    service = sqlite_service
    n = 100_000
    with service.runtime.factory.begin() as s:
        projects = list(s.scalars(select(TenantRow.id).where(TenantRow.kind == "project")))
        users = list(s.scalars(select(UserRow.id)))
        rows = []
        for i in range(n):
            state = "pending" if i % 3 else "running"
            rows.append(
                {
                    "project_id": projects[i % len(projects)],
                    "user_id": users[i % len(users)],
                    "name": f"작업 {i}",
                    "spec": {"gpus": 1 + i % 16, "models": ["H100"] if i % 2 else [], "command": ["true"]},
                    "state": state,
                    "priority_class": ("normal", "high", "low")[i % 3],
                    "over_budget": False,
                    "submit_ms": 1_800_000_000_000 + i * 1000,
                    "start_ms": 1_800_000_000_000 + i * 1000 + 500 if state == "running" else None,
                    "estimated_start_ms": 1_800_100_000_000 + (i * 7919) % 1_000_000
                    if state == "pending"
                    else None,
                    "reason": "resources" if state == "pending" else "running",
                    "model": "H100" if state == "running" else None,
                }
            )
        s.execute(insert(JobRow), rows)
    first = service.call("GET", "/v1/dashboard/jobs", params={"limit": 50}).json()
    assert first["total"] == n
    timings: dict[str, float] = {}
    for sort in ("submitted", "estimated_start", "started", "priority", "gpus"):
        for where in ("first", "deep"):
            params: dict[str, Any] = {"sort": sort, "order": "asc", "limit": 100}
            if where == "deep":
                # a page 60,000 jobs in, as a client that paged there would ask for it
                value = None if sort == "submitted" else 1
                if sort in ("estimated_start", "started"):
                    value = 1_800_000_000_000
                params["cursor"] = encode_cursor(sort, True, value, 60_000)
            t0 = time.perf_counter()
            r = service.call("GET", "/v1/dashboard/jobs", params=params)
            timings[f"{sort}/{where}"] = time.perf_counter() - t0
            assert r.status_code == 200 and len(r.json()["items"]) == 100, (sort, where, r.text[:300])
    print("queue page times at 100k jobs (s):", {k: round(v, 3) for k, v in timings.items()})
    slow = {k: round(v, 3) for k, v in timings.items() if v > 2.0}
    assert not slow, f"queue pages slower than 2 s at 100k jobs: {slow} (all: {timings})"
    # walking pages: each next page starts where the last ended, none repeats
    seen: set[str] = set()
    cursor = None
    for _ in range(5):
        page = service.call(
            "GET",
            "/v1/dashboard/jobs",
            params={
                "state": "pending",
                "sort": "estimated_start",
                "order": "asc",
                "limit": 200,
                **({"cursor": cursor} if cursor else {}),
            },
        ).json()
        ids = [j["id"] for j in page["items"]]
        assert not seen & set(ids)
        seen |= set(ids)
        starts = [j["estimated_start_ms"] for j in page["items"]]
        assert starts == sorted(starts)
        cursor = page["next_cursor"]
    assert len(seen) == 1000
