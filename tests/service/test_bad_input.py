"""Bad input: every refusal is a 4xx problem document naming the field, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gpupool.service.db import AuditRow, InboxRow, JobRow
from tests.service.conftest import Service

GOOD = {"project": "vision", "command": ["python", "train.py"], "gpus": 8}


def _counts(service: Service) -> tuple[int, int, int]:
    with service.runtime.factory() as s:
        return (
            s.scalar(select(func.count()).select_from(JobRow)) or 0,
            s.scalar(select(func.count()).select_from(InboxRow)) or 0,
            s.scalar(select(func.count()).select_from(AuditRow)) or 0,
        )


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"gpus": -1}, "gpus", 422),
        ({"gpus": 0}, "gpus", 422),
        ({"gpus": 10**9}, "gpus", 422),
        ({"gpus": 61}, "gpus", 422),  # more than the whole demo fleet
        ({"models": ["K9000"]}, "models[0]", 422),
        ({"models": ["V100"]}, "models[0]", 422),  # in the catalogue, not in this fleet
        ({"walltime_s": 10**8}, "walltime_s", 422),
        ({"walltime_s": 0}, "walltime_s", 422),
        ({"clusters": ["mars"]}, "clusters[0]", 422),
        ({"workload_class": "quantum"}, "workload_class", 422),
        ({"priority_class": "urgent"}, "priority_class", 422),
        ({"topology": "galaxy"}, "topology", 422),
        ({"groups": [{"workers": 3, "gpus_per_worker": 2}]}, "body", 422),
        ({"groups": [{"workers": 0, "gpus_per_worker": 8}]}, "groups[0].workers", 422),
        ({"command": []}, "command", 422),
        ({"command": [""]}, "command", 422),
        ({"env": {"CUDA_VISIBLE_DEVICES": "0"}}, "env", 422),
        ({"env": {"1BAD": "x"}}, "env", 422),
        ({"cwd": "relative/dir"}, "cwd", 422),
        ({"surprise": True}, "surprise", 422),
        ({"project": "nosuch"}, None, 404),
    ],
)
def test_bad_submission_is_refused_and_changes_nothing(
    sqlite_service: Service, change: dict[str, Any], field: str | None, status: int
) -> None:
    service = sqlite_service
    service.token("minjun.kim")
    before = _counts(service)
    r = service.submit("minjun.kim", **{**GOOD, **change})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    assert _counts(service) == before


def test_malformed_bodies(sqlite_service: Service) -> None:
    service = sqlite_service
    h = {**service.auth("minjun.kim"), "content-type": "application/json"}
    lone_surrogate = b'{"project": "\\ud800"}'
    for raw in (b"{", b"[]", b"null", b'"text"', lone_surrogate, b"\xff\xfe"):
        r = service.http.post("/v1/jobs", content=raw, headers=h)
        assert r.status_code == 422, (raw, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_413_before_parsing(sqlite_service: Service) -> None:
    service = sqlite_service
    service.token("minjun.kim")
    before = _counts(service)
    big = {**GOOD, "env": {f"V{i}": "x" * 30000 for i in range(40)}}
    r = service.call("POST", "/v1/jobs", "minjun.kim", json=big)
    assert r.status_code == 413 and r.json()["type"].endswith("/payload-too-large")

    def chunks() -> Any:  # no Content-Length: counted while it streams in
        yield b'{"project": "vision", "command": ["x"], "gpus": 1, "name": "'
        for _ in range(2048):
            yield b"x" * 1024
        yield b'"}'

    headers = {**service.auth("minjun.kim"), "content-type": "application/json"}
    r = service.http.post("/v1/jobs", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert _counts(service) == before


def test_bad_idempotency_key_and_ids(sqlite_service: Service) -> None:
    service = sqlite_service
    r = service.submit("minjun.kim", key="x" * 300, **GOOD)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "idempotency-key"
    for bad in ("nope", "j", "j99999999999999999999", "j-1", "j12"):
        assert service.call("GET", f"/v1/jobs/{bad}").status_code == 404
    assert service.call("GET", "/v1/jobs?limit=0").status_code == 422
    assert service.call("GET", "/v1/jobs?state=exploded").status_code == 422
    assert service.call("GET", "/v1/usage?start=yesterday").json()["errors"][0]["field"] == "start"
    assert service.call("GET", "/v1/usage?start=2030-01-02&end=2030-01-01").status_code == 422
    assert service.call("DELETE", "/v1/tokens/99999999999").status_code == 422
    assert service.call("PATCH", "/v1/allocations/0", json={"state": "active"}).status_code == 422


def test_text_no_database_can_store_is_refused(service: Service) -> None:
    """A lone surrogate is valid JSON but not UTF-8: 422, on SQLite and PostgreSQL alike."""
    h = {**service.auth("minjun.kim"), "content-type": "application/json"}
    raw = b'{"project": "vision", "command": ["x"], "gpus": 1, "name": "\\ud800"}'
    r = service.http.post("/v1/jobs", content=raw, headers=h)
    assert r.status_code == 422 and "Unicode" in r.json()["detail"]
    r = service.http.post(
        "/v1/tenants", content=b'{"key": "k", "name": "\\udfff"}', headers=service.auth("admin")
    )
    assert r.status_code == 422
    for path in (
        "/v1/jobs?project=%ED%A0%80",
        "/v1/jobs?user=%ff",
        "/v1/tenants/%ED%A0%80",
        "/v1/jobs/%ED%A0%80",
    ):
        assert service.call("GET", path).status_code in (200, 404), path


def test_nul_characters_are_refused_not_a_server_error(service: Service) -> None:
    """PostgreSQL's text columns refuse NUL: found by the OpenAPI fuzzing run as a 500."""
    admin = {**service.auth("admin"), "content-type": "application/json"}
    h = {**service.auth("minjun.kim"), "content-type": "application/json"}
    before = _counts(service)
    for path, raw in (
        ("/v1/tenants", b'{"key": "k", "name": "a\\u0000b"}'),
        ("/v1/tenants", b'{"key": "k\\u0000", "name": "n"}'),
    ):
        r = service.http.post(path, content=raw, headers=admin)
        assert r.status_code == 422, (path, raw, r.text)
        assert "NUL" in r.json()["detail"]
    h = {**service.auth("minjun.kim"), "content-type": "application/json"}
    for body in (
        b'{"project": "vision", "command": ["x"], "gpus": 1, "name": "\\u0000"}',
        b'{"project": "vision", "command": ["x", "a\\u0000"], "gpus": 1}',
        b'{"project": "vision", "command": ["x"], "gpus": 1, "cwd": "/tmp\\u0000"}',
    ):
        r = service.http.post("/v1/jobs", content=body, headers=h)
        assert r.status_code == 422 and "NUL" in r.json()["detail"], body
    for path in ("/v1/tenants/a%00b", "/v1/jobs/j%001", "/v1/jobs?project=%00", "/v1/usage?sector=x%00"):
        r = service.call("GET", path)
        assert r.status_code == 422 and "NUL" in r.json()["detail"], path
    assert _counts(service) == before
