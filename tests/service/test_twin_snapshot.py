"""``GET /v1/twin/snapshot``: who may read it, and that its files are what the twin reads.

The snapshot of a service with running, pending and drained state is written as a folder;
the fleet and tenants files load with the validated readers, the restore point restores a
core that holds the same running and pending jobs as the live one, and the event log since
the start replays to the same decisions across a rebuild (a tenancy change rebuilds the core).
"""

from __future__ import annotations

from pathlib import Path

from gpupool.fleetfile import load_fleet, load_tenants
from gpupool.service.replay import check, cycles_of
from gpupool.service.restore_point import restore
from gpupool.service.twin_snapshot import Snapshot, write_folder
from tests.service.conftest import Service

MIN = 60_000


def _busy(service: Service) -> None:
    for gpus in (8, 8, 16, 8, 4):
        r = service.submit("minjun.kim", project="vision", gpus=gpus, models=["H100"], walltime_s=7200)
        assert r.status_code == 201, r.text
    service.cycle()
    service.clock.advance(5 * MIN)
    first = service.executor.launches[0].allocation_id
    service.executor.finish(first, 0)
    node = service.executor.launches[-1].placement[0][0]
    assert service.call("POST", f"/v1/fleet/nodes/{node}/drain", json={"reason": "t"}).status_code == 200
    service.cycle()


def test_only_pool_admins_and_viewers_read_the_snapshot(service: Service) -> None:
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    assert service.call("GET", "/v1/twin/snapshot", "minjun.kim").status_code == 403
    assert service.call("GET", "/v1/twin/snapshot", "auditor").status_code == 200
    assert service.call("GET", "/v1/twin/snapshot").status_code == 200
    assert service.http.get("/v1/twin/snapshot").status_code == 401
    bad = service.call("GET", "/v1/twin/snapshot?history_h=-1")
    assert bad.status_code == 422 and "history_h" in bad.text


def test_the_snapshot_is_the_live_state_and_its_log_replays(service: Service, tmp_path: Path) -> None:
    start = service.clock()
    _busy(service)
    # a tenancy change: the loop rebuilds its core, and logs the point it rebuilt from
    r = service.call("PATCH", "/v1/tenants/academia/snu/vision", json={"weight": 3})
    assert r.status_code == 200, r.text
    service.cycle()
    service.clock.advance(MIN)
    service.executor.finish(service.executor.launches[1].allocation_id, 0)
    service.cycle()
    doc = service.call("GET", f"/v1/twin/snapshot?since={start}").json()
    files = {p.name for p in write_folder(doc, tmp_path / "snap")}
    assert files == {"fleet.yaml", "tenants.yaml", "state.json", "history.csv", "events.jsonl"}
    fleet = load_fleet(str(tmp_path / "snap" / "fleet.yaml"))
    assert [(n.name, n.model, n.gpus) for n in fleet.nodes] == [
        (n.name, n.model, n.gpus) for n in service.runtime.fleet.nodes
    ]
    tenancy = load_tenants(str(tmp_path / "snap" / "tenants.yaml"), fleet)
    assert tenancy.nodes[tenancy.resolve("academia/snu/vision") or 0].weight == 3
    snap = Snapshot.read(tmp_path / "snap")
    assert len(snap.point.drained) == 1
    live = service.runtime.loop.scheduler
    again = restore(snap.point, snap.fleet, snap.config).scheduler
    assert set(again.running) and {j.spec.id for j in again.running.values()} == {
        j.spec.id for j in live.running.values()
    }
    assert again.pending_count == live.pending_count > 0
    report = check(cycles_of(snap.events()), snap.fleet, snap.config)
    assert report.matches, report.to_doc()
    assert report.restores >= 2 and report.decisions > 0  # the start and the tenancy change
