"""``/metrics`` needs a pool admin's or a viewer's token unless ``metrics_public`` is set."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from tests.service.conftest import Service, make_service


def test_metrics_need_a_token_that_sees_the_whole_pool(sqlite_service: Service) -> None:
    service = sqlite_service
    anonymous = service.http.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
    assert service.http.get("/metrics", headers={"Authorization": "Bearer gpt_nope"}).status_code == 401
    member = service.call("GET", "/metrics", "minjun.kim")
    assert member.status_code == 403 and "viewer" in member.json()["detail"]
    r = service.call("POST", "/v1/users", json={"name": "prometheus", "role": "viewer"})
    assert r.status_code == 201, r.text
    for user in ("admin", "prometheus"):
        ok = service.call("GET", "/metrics", user)
        assert ok.status_code == 200 and "gpupool_cycles_total" in ok.text, user


def test_public_metrics_when_configured(tmp_path: Path) -> None:
    runtime, _, _ = make_service(tmp_path, f"sqlite:///{tmp_path / 'gpupool.db'}", metrics_public=True)
    with TestClient(create_app(runtime)) as client:
        r = client.get("/metrics")
        assert r.status_code == 200 and "gpupool_jobs_pending" in r.text
