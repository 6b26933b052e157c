"""The fleet: occupancy from the database, node drains by pool admins (audited), and their effect."""

from __future__ import annotations

from tests.service.conftest import Service


def test_fleet_shows_busy_and_free(service: Service) -> None:
    service.submit("jungmin.park", project="climate", gpus=8, models=["H200"])
    service.cycle()
    fleet = service.call("GET", "/v1/fleet", "jungmin.park").json()
    assert fleet["gpus"] == 60 and fleet["busy"] == 8
    h200 = next(p for p in fleet["pools"] if p["model"] == "H200")
    assert (h200["total"], h200["busy"], h200["free"]) == (8, 8, 0)
    page = service.call("GET", "/v1/fleet/nodes?model=H200").json()
    assert [(n["name"], n["busy"], n["free"]) for n in page["items"]] == [
        ("kisti-ib1-r0-n00", list(range(8)), 0)
    ]


def test_nodes_page_with_cursor(service: Service) -> None:
    names = []
    cursor = None
    while True:
        page = service.call("GET", "/v1/fleet/nodes?limit=3" + (f"&cursor={cursor}" if cursor else "")).json()
        names += [n["name"] for n in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(names) == len(set(names)) == 9
    assert service.call("GET", "/v1/fleet/nodes?cursor=nowhere").status_code == 422


def test_drain_keeps_new_work_off_a_node(service: Service) -> None:
    r = service.call("POST", "/v1/fleet/nodes/kisti-ib1-r0-n00/drain", json={"reason": "DIMM replacement"})
    assert r.status_code == 200 and r.json()["state"] == "drained"
    job = service.submit("jungmin.park", project="climate", gpus=8, models=["H200"]).json()["id"]
    service.cycle()
    got = service.call("GET", f"/v1/jobs/{job}", "jungmin.park").json()
    assert got["state"] == "pending"
    fleet = service.call("GET", "/v1/fleet").json()
    h200 = next(p for p in fleet["pools"] if p["model"] == "H200")
    assert (h200["free"], h200["unavailable"]) == (0, 8)
    assert service.call("POST", "/v1/fleet/nodes/kisti-ib1-r0-n00/undrain").json()["state"] == "up"
    service.cycle()
    assert service.call("GET", f"/v1/jobs/{job}", "jungmin.park").json()["state"] == "running"
    audit = [a for a in service.call("GET", "/v1/audit").json()["items"] if a["target"].startswith("node/")]
    assert [(a["action"], a["target"]) for a in audit] == [
        ("undrain", "node/kisti-ib1-r0-n00"),
        ("drain", "node/kisti-ib1-r0-n00"),
    ]
    assert audit[1]["detail"] == {"reason": "DIMM replacement"}


def test_only_pool_admins_drain(service: Service) -> None:
    assert service.call("POST", "/v1/fleet/nodes/kisti-ib1-r0-n00/drain", "jungmin.park").status_code == 403
    assert service.call("POST", "/v1/fleet/nodes/nosuch/drain").status_code == 404
    assert (
        service.call("POST", "/v1/fleet/nodes/kisti-ib1-r0-n00/drain", json={"reason": 5}).status_code == 422
    )


def test_tenant_changes_are_checked_against_the_tree_and_fleet(service: Service) -> None:
    r = service.call("PATCH", "/v1/tenants/academia/snu/vision", json={"guaranteed": {"H100": 12}})
    assert r.status_code == 422 and "guarantee" in r.json()["detail"]
    r = service.call("PATCH", "/v1/tenants/academia/snu/vision", json={"guaranteed": {"K80": 1}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "guaranteed.K80"
    r = service.call("PATCH", "/v1/tenants/academia/snu/vision", json={"clusters": ["mars"]})
    assert r.status_code == 422
    r = service.call("PATCH", "/v1/tenants/academia/snu/vision", json={"weight": 3, "name": "비전"})
    assert r.status_code == 200 and r.json()["weight"] == 3 and r.json()["name"] == "비전"
    r = service.call("POST", "/v1/tenants", json={"parent": "academia/snu/vision", "key": "sub"})
    assert r.status_code == 422
    r = service.call("POST", "/v1/tenants", json={"parent": "academia/snu", "key": "vision"})
    assert r.status_code == 409
    r = service.call("POST", "/v1/tenants", json={"key": "industry", "name": "산업계"})
    assert r.status_code == 201 and r.json()["kind"] == "sector"
    service.cycle()
    service.runtime.loop.scheduler.validate()
    assert (
        service.runtime.loop.scheduler.tenancy.nodes[
            service.runtime.loop.scheduler.tenancy.by_path["academia/snu/vision"]
        ].weight
        == 3
    )
