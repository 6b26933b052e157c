"""A waiting job that becomes impossible later is told so and stops blocking others (issue 12).

Three ways a pending job's chance can go: its project's limit is lowered through the API
(the job is rejected naming the limit: ``test_never_startable.py``), the nodes it needs are
drained (temporary: it waits, told that its accelerators are drained, and the project's
other work starts), or they are removed from the fleet (at the next start on the new fleet
file it is rejected naming what is missing, and the work behind it starts).
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

import gpupool
from gpupool.service.api.app import create_app
from tests.service.conftest import Service, make_service

H200_NODE = "kisti-ib1-r0-n00"


def _get(service: Service, job: str, user: str) -> dict[str, object]:
    got: dict[str, object] = service.call("GET", f"/v1/jobs/{job}", user).json()
    return got


def test_a_lowered_limit_rejects_the_waiting_job_and_the_project_s_next_job_starts(service: Service) -> None:
    hold = service.submit("jiwoo.han", project="llm", gpus=16, models=["H100"])
    assert hold.status_code == 201, hold.text
    service.cycle()
    big = service.submit("minjun.kim", project="vision", gpus=16, models=["H100"]).json()["id"]
    service.cycle()
    assert _get(service, big, "minjun.kim")["state"] == "pending"
    r = service.call("PATCH", "/v1/tenants/academia/snu/vision", json={"borrow_limit": {"*": 8}})
    assert r.status_code == 200, r.text
    small = service.submit("seoyeon.lee", project="vision", gpus=8, models=["H100"]).json()["id"]
    service.cycle()
    got = _get(service, big, "minjun.kim")
    assert got["state"] == "rejected" and got["reason"] == "over-limit", got
    assert "borrow limit 8" in str(got["detail"])
    # the 8 H100 left free go to the job behind it
    assert _get(service, small, "seoyeon.lee")["state"] == "running"


def test_drained_nodes_hold_the_job_with_the_reason_and_the_rest_of_the_project_runs(
    service: Service,
) -> None:
    waiting = service.submit("jungmin.park", project="climate", gpus=8, models=["H200"]).json()["id"]
    r = service.call("POST", f"/v1/fleet/nodes/{H200_NODE}/drain", json={"reason": "DIMM replacement"})
    assert r.status_code == 200, r.text
    behind = service.submit("jungmin.park", project="climate", gpus=8, models=["H100"]).json()["id"]
    service.cycle()
    got = _get(service, waiting, "jungmin.park")
    assert got["state"] == "pending", got
    assert got["reason"] == "resources"
    assert got["detail"] == "waiting for 8 x H200; 8 of 8 H200 drained or down"
    assert _get(service, behind, "jungmin.park")["state"] == "running"
    # it starts when the node is back
    service.call("POST", f"/v1/fleet/nodes/{H200_NODE}/undrain")
    service.cycle()
    assert _get(service, waiting, "jungmin.park")["state"] == "running"


def test_removed_nodes_reject_the_waiting_job_at_the_next_start_and_the_rest_runs(
    service: Service, tmp_path: Path, database_url: str
) -> None:
    # the H200 node is drained for retirement: an 8-H200 job waits
    r = service.call("POST", f"/v1/fleet/nodes/{H200_NODE}/drain", json={"reason": "retiring"})
    assert r.status_code == 200, r.text
    waiting = service.submit("jungmin.park", project="climate", gpus=8, models=["H200"]).json()["id"]
    service.cycle()
    assert _get(service, waiting, "jungmin.park")["state"] == "pending"
    # the pool admin retires half of the H200 node: first the guarantee that rests on it,
    # then the fleet file (the next start serves 4 H200)
    r = service.call("PATCH", "/v1/tenants/public-research/kisti/climate", json={"guaranteed": {"H200": 4}})
    assert r.status_code == 200, r.text
    data = Path(gpupool.__file__).parent / "data"
    fleet = tmp_path / "demo-smaller.yaml"
    fleet.write_text(
        (data / "fleets" / "demo.yaml").read_text().replace("model: H200, gpus: 8", "model: H200, gpus: 4")
    )
    tenants = tmp_path / "demo-tenants.yaml"
    seed = (data / "tenants" / "demo.yaml").read_text()
    tenants.write_text(seed.replace("guaranteed: {H200: 8}", "guaranteed: {H200: 4}"))
    service.http.__exit__(None, None, None)
    runtime, clock, executor = make_service(tmp_path, database_url, fleet=str(fleet), tenants=str(tenants))
    clock.ms = service.clock.ms
    with TestClient(create_app(runtime)) as http:
        again = Service(runtime, http, clock, executor)
        again.admin_token = service.admin_token
        again._tokens = dict(service._tokens)
        behind = again.submit("jungmin.park", project="climate", gpus=8, models=["H100"]).json()["id"]
        again.cycle()
        got = _get(again, waiting, "jungmin.park")
        assert got["state"] == "rejected", got
        assert got["reason"] == "unschedulable", got
        assert got["detail"].endswith("8 accelerators do not fit one cluster of H200 in kisti (at most 4)")
        assert _get(again, behind, "jungmin.park")["state"] == "running"
