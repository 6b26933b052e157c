"""``POST /v1/jobs`` answers the same through the fast entrance and through the FastAPI route.

The same scripted session runs twice, on two fresh services with the same clock, once with
``fast_submit`` on and once off; every answer (status, content type, body) must be equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpupool.service.api import fast_submit
from gpupool.service.api.app import create_app
from gpupool.service.api.jobs import accept_job
from tests.service.conftest import Service, make_service

BODY = {"project": "vision", "gpus": 1, "models": ["H100"], "command": ["true"]}


def _session(service: Service) -> list[tuple[int, str, Any]]:
    member = service.auth("minjun.kim")
    outsider = service.auth("jungmin.park")
    json_type = {"Content-Type": "application/json"}
    calls: list[tuple[dict[str, str], Any]] = [
        ({**member}, BODY),  # accepted
        ({**member, "Idempotency-Key": "k1"}, BODY),  # accepted
        ({**member, "Idempotency-Key": "k1"}, BODY),  # the same job again: 200
        ({**member, "Idempotency-Key": "k1"}, {**BODY, "gpus": 2}),  # key reused: 409
        ({**member, "Idempotency-Key": "bad key"}, BODY),  # malformed key: 422
        ({**outsider}, BODY),  # not a member: 404 (the project is not visible)
        ({**member}, {**BODY, "project": "nowhere"}),  # 404
        ({**member}, {**BODY, "gpus": 0}),  # schema: 422
        ({**member}, {**BODY, "surprise": 1}),  # unknown field: 422
        ({**member}, {**BODY, "models": ["Z9"]}),  # fleet check: 422
        ({}, BODY),  # no token: 401
        ({"Authorization": "Bearer nope"}, BODY),  # unknown token: 401
        ({"Authorization": "Basic abc"}, BODY),  # not bearer: 401
    ]
    out = []
    for headers, body in calls:
        r = service.http.post("/v1/jobs", headers={**json_type, **headers}, json=body)
        out.append((r.status_code, r.headers["content-type"], r.json()))
    text = service.http.post("/v1/jobs", headers={**member, "Content-Type": "text/plain"}, content=b"{}")
    out.append((text.status_code, text.headers["content-type"], text.json()))
    broken = service.http.post("/v1/jobs", headers={**member, **json_type}, content=b'{"project": ')
    out.append((broken.status_code, broken.headers["content-type"], broken.json()))
    return out


def _run(tmp_path: Path, fast: bool) -> list[tuple[int, str, Any]]:
    runtime, clock, executor = make_service(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", fast_submit=fast)
    with TestClient(create_app(runtime)) as client:
        service = Service(runtime, client, clock, executor)
        service.token("minjun.kim"), service.token("jungmin.park")
        return _session(service)


def test_fast_entrance_answers_as_the_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str | None] = []

    def counted(rt: Any, caller: Any, req: Any, key: str | None) -> tuple[int, bytes]:
        taken.append(key)
        return accept_job(rt, caller, req, key)

    monkeypatch.setattr(fast_submit, "accept_job", counted)
    fast = _run(tmp_path / "fast", True)
    # well-formed ones of a cached caller took the fast way (and got its problems: 409, 404,
    # 422 from the fleet check); the first (the caller not cached yet), schema errors and
    # bad tokens went through the route
    assert taken == ["k1", "k1", "k1", None, None]
    taken.clear()
    slow = _run(tmp_path / "slow", False)
    assert taken == []
    assert [s for s, _, _ in fast] == [
        201,
        201,
        200,
        409,
        422,
        404,
        404,
        422,
        422,
        422,
        401,
        401,
        401,
        422,
        422,
    ]
    assert fast == slow
