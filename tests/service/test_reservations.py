"""Advance reservations through the API, the loop and a restart, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from sqlalchemy import select

from gpupool.service.db import AuditRow
from tests.service.conftest import Service
from tests.service.test_openapi_fuzz import _fuzz, fuzz_app  # noqa: F401 - a fixture, used by name
from tests.service.test_restart import _restart

H = 3_600_000
USERS = ("auditor", "minjun.kim")
#: the demo fleet's one H200 node (kisti); climate (public-research/kisti/climate) uses it
H200 = {"cluster": "kisti", "model": "H200", "count": 8}


def _reserve(service: Service, user: str = "admin", **body: Any) -> Any:
    return service.call("POST", "/v1/reservations", user, json=body)


def _window(service: Service, start_h: float, end_h: float) -> dict[str, int]:
    now = service.clock()
    return {"start_ms": now + int(start_h * H), "end_ms": now + int(end_h * H)}


def _launched(service: Service) -> list[str]:
    return [x.job_id for x in service.executor.launches]


def _h200_job(service: Service, walltime_s: int) -> str:
    r = service.submit("jungmin.park", project="climate", gpus=4, models=["H200"], walltime_s=walltime_s)
    assert r.status_code == 201, r.text
    jid: str = r.json()["id"]
    return jid


def test_a_job_does_not_start_into_maintenance_one_ending_before_it_does(service: Service) -> None:
    made = _reserve(service, **H200, **_window(service, 1, 3), note="firmware")
    assert made.status_code == 201, made.text
    got = made.json()
    assert got["purpose"] == "maintenance" and got["state"] == "scheduled"
    long = _h200_job(service, 2 * 3600)
    short = _h200_job(service, 1800)
    service.cycle()
    assert _launched(service) == [short]
    why = service.call("GET", f"/v1/jobs/{long}/explain", "jungmin.park").json()
    assert why["state"] == "pending"
    assert f"waiting: accelerators reserved for maintenance from {got['start_ms']} ms" in why["detail"]
    # the window closes: the loop runs a cycle at its edge and the held job starts
    service.clock.advance(3 * H)
    service.cycle()
    assert long in _launched(service)


def test_a_workshop_tenant_uses_the_reserved_node_another_waits(service: Service) -> None:
    r = _reserve(service, **H200, **_window(service, 0, 2), tenants=["academia/snu/vision"])
    assert r.status_code == 201, r.text
    other = _h200_job(service, 3600)
    mine = service.submit("minjun.kim", project="vision", gpus=8, models=["H200"], walltime_s=3600)
    assert mine.status_code == 201, mine.text
    service.cycle()
    assert _launched(service) == [mine.json()["id"]]
    assert other not in _launched(service)


def test_bad_reservations_name_the_field_and_change_nothing(service: Service) -> None:
    w = _window(service, 1, 2)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**H200, "start_ms": w["end_ms"], "end_ms": w["start_ms"]}, 422, "end_ms"),
        ({**H200, **_window(service, -3, -2)}, 422, "end_ms"),
        ({**H200, **w, "cluster": "nowhere"}, 422, "cluster"),
        ({**H200, **w, "model": "B300"}, 422, "model"),
        ({**H200, **w, "count": 9}, 422, "count"),
        ({**w, "nodes": ["no-such-node"]}, 422, "nodes"),
        ({**H200, **w, "tenants": ["academia/nobody"]}, 422, "tenants"),
        ({**w}, 422, "nodes"),
    ]
    for body, status, field in cases:
        got = service.call("POST", "/v1/reservations", json=body)
        assert got.status_code == status, (body, got.text)
        assert field in got.text, (body, got.text)
    assert service.call("GET", "/v1/reservations").json() == []
    assert _reserve(service, **H200, **w).status_code == 201
    # the same accelerators, overlapping: refused; after the first window: fine
    clash = _reserve(service, **{**H200, "count": 1}, **_window(service, 1.5, 4))
    assert clash.status_code == 409 and "count" in clash.text, clash.text
    assert _reserve(service, **H200, **_window(service, 2, 4)).status_code == 201
    assert len(service.call("GET", "/v1/reservations").json()) == 2


def test_rights_pool_admin_writes_viewers_read_all_others_their_tenants(service: Service) -> None:
    w = _window(service, 1, 2)
    assert _reserve(service, "minjun.kim", **H200, **w).status_code == 403
    vision = _reserve(service, **{**H200, "count": 1}, **w, tenants=["academia/snu/vision"]).json()
    h100 = {"cluster": "kisti", "model": "H100", "count": 8}
    climate = _reserve(service, **h100, **w, tenants=["public-research/kisti/climate"]).json()
    maint = _reserve(service, **h100, **w).json()  # whole nodes: a second H100 node
    assert service.call("POST", "/v1/users", json={"name": "auditor", "role": "viewer"}).status_code == 201
    ids = {u: [r["id"] for r in service.call("GET", "/v1/reservations", u).json()] for u in USERS}
    assert len(set(ids["auditor"])) == 3
    assert ids["auditor"] == [vision["id"], climate["id"], maint["id"]]
    assert ids["minjun.kim"] == [vision["id"]]
    assert service.call("GET", f"/v1/reservations/{climate['id']}", "minjun.kim").status_code == 404
    assert service.call("DELETE", f"/v1/reservations/{vision['id']}", "minjun.kim").status_code == 403
    assert service.call("DELETE", f"/v1/reservations/{climate['id']}", "minjun.kim").status_code == 404
    assert service.call("DELETE", f"/v1/reservations/{vision['id']}", "auditor").status_code == 403
    assert service.call("DELETE", f"/v1/reservations/{vision['id']}").status_code == 204
    assert service.call("GET", f"/v1/reservations/{vision['id']}").status_code == 404
    with service.runtime.factory() as s:
        actions = list(s.scalars(select(AuditRow.action).where(AuditRow.action.like("reservation.%"))))
    assert actions == ["reservation.create"] * 3 + ["reservation.delete"]


def test_a_reservation_survives_a_restart(service: Service, tmp_path: Path, database_url: str) -> None:
    assert _reserve(service, **H200, **_window(service, 1, 3)).status_code == 201
    service.cycle()
    again = _restart(service, tmp_path, database_url, service.executor)
    try:
        long = _h200_job(again, 2 * 3600)
        again.cycle()
        assert long not in _launched(again)
        why = again.call("GET", f"/v1/jobs/{long}/explain", "jungmin.park").text
        assert "reserved for maintenance" in why
    finally:
        again.http.__exit__(None, None, None)


def test_reservation_events_round_trip_through_the_event_codec() -> None:
    from gpupool.core.advance_reservations import AdvanceReservation
    from gpupool.core.events import ReservationCreated, ReservationDeleted
    from gpupool.service.event_codec import decode, encode

    made = ReservationCreated(AdvanceReservation("r1", 5, 9, tenants=("a/b",), nodes=("n1", "n2")))
    gone = ReservationDeleted("r1")
    assert decode("ReservationCreated", encode(made)) == made
    assert decode("ReservationDeleted", encode(gone)) == gone


@pytest.mark.slow
def test_no_input_to_the_reservation_routes_causes_a_server_error(fuzz_app: tuple[Any, str]) -> None:  # noqa: F811
    """The schemathesis run of ``test_openapi_fuzz`` on these routes alone (the whole run's
    time budget may end before it reaches them)."""
    app, token = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls = [0]
    ops = [r.ok() for r in schema.get_all_operations() if r.ok().path.startswith("/v1/reservations")]
    for op in ops:
        _fuzz(op, {"Authorization": f"Bearer {token}"}, failures, calls)
    assert len(ops) == 4 and calls[0] >= 4 * 5
    assert not failures, "\n\n".join(failures)
