"""``POST /v1/whatif`` with ``source: live``: the live pool plus changes, in the background queue.

Rights (ADR 0007): members are refused (403), viewers read the options (with the live fleet's
clusters, models and projects) and the runs, only pool admins start one. Bad changes are 422
naming the field; a study runs to a side-by-side result without a job cap; a full queue is 409.
"""

from __future__ import annotations

import pytest

from gpupool.service.whatif import WhatIfRuns
from tests.service.conftest import Service
from tests.web.test_whatif_and_scale import wait_run

LIVE = {"source": "live", "hours": 2, "changes": {"add_nodes": ["kisti:H100:2:8"], "scale_load": 1.5}}


def _busy(service: Service) -> None:
    for gpus in (8, 8, 8, 8, 4):
        assert service.submit("minjun.kim", project="vision", gpus=gpus, models=["H100"]).status_code == 201
    service.cycle()


def test_live_whatif_rights_and_bad_changes(sqlite_service: Service) -> None:
    service = sqlite_service
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    assert service.call("POST", "/v1/whatif", "minjun.kim", json=LIVE).status_code == 403
    assert service.call("GET", "/v1/whatif/options", "minjun.kim").status_code == 403
    opts = service.call("GET", "/v1/whatif/options", "auditor")
    assert opts.status_code == 200
    live = opts.json()["live"]
    assert (
        "kisti" in live["clusters"] and "H100" in live["models"] and "academia/snu/vision" in live["projects"]
    )
    assert service.call("GET", "/v1/whatif", "auditor").status_code == 200
    assert service.call("POST", "/v1/whatif", "auditor", json=LIVE).status_code == 403  # viewers only read
    for changes, field in (
        ({"add_nodes": ["kisti:H100:x"]}, "changes.add_nodes"),
        ({"remove_nodes": ["kisti"]}, "changes.remove_nodes"),
        ({"weights": ["academia:0"]}, "changes.weights"),
        ({"scale_load": 0}, "changes.scale_load"),
        ({"remove_nodes": ["kisti:H100:999"]}, "changes.remove_nodes"),
        ({"add_nodes": ["atlantis:H100:1"]}, "changes.add_nodes"),
        ({"guarantees": ["academia/none/x:H100:8"]}, "changes.guarantees"),
        ({"surprise": 1}, "changes.surprise"),
    ):
        r = service.call("POST", "/v1/whatif", json={**LIVE, "changes": changes})
        assert r.status_code == 422, (changes, r.text)
        assert r.json()["errors"][0]["field"] == field, (changes, r.json())
    assert service.call("GET", "/v1/whatif").json() == []  # nothing was queued


@pytest.mark.slow
def test_a_live_study_runs_in_the_queue_to_a_side_by_side_result(sqlite_service: Service) -> None:
    service = sqlite_service
    _busy(service)
    runs: WhatIfRuns = service.http.app.state.dashboard_whatif  # type: ignore[attr-defined]
    assert runs.max_jobs == 0  # no cap
    r = service.call("POST", "/v1/whatif", json=LIVE)
    assert r.status_code == 202, r.text
    run = wait_run(service, r.json()["id"])
    assert run["state"] == "done", run["error"]
    res = run["result"]
    assert res["kind"] == "live" and res["change"]["gpus"] == res["baseline"]["gpus"] + 16
    assert res["change"]["jobs"] >= res["baseline"]["jobs"] > 0
    whats = {row["what"] for row in res["compare"]}
    assert {"avg_queue_s", "utilization", "jain_fairness", "guarantees_met"} <= whats
    assert any(w.startswith("project academia/snu/vision") for w in whats)
    assert service.call("GET", f"/v1/whatif/{run['id']}/figures").json() == []
    runs.max_queued = 0
    full = service.call("POST", "/v1/whatif", json=LIVE)
    assert full.status_code == 409 and full.json()["type"].endswith("/busy")
