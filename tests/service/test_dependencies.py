"""Job dependencies through the API and the loop, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gpupool.service.api.app import create_app
from gpupool.service.db import InboxRow, JobRow
from gpupool.service.executors import sandbox
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.service.conftest import Service
from tests.service.test_restart import _restart

WHOLE = {"project": "vision", "gpus": 16, "models": ["H100"]}  # two never fit the 24 H100 at once


def _job(service: Service, jid: str, user: str = "minjun.kim") -> dict[str, object]:
    got: dict[str, object] = service.call("GET", f"/v1/jobs/{jid}", user).json()
    return got


def _launch_of(service: Service, jid: str) -> str:
    return next(x.allocation_id for x in reversed(service.executor.launches) if x.job_id == jid)


def test_an_afterok_chain_runs_in_order_and_explain_says_why_it_waits(service: Service) -> None:
    a = service.submit("minjun.kim", **WHOLE).json()["id"]
    b = service.submit("minjun.kim", **WHOLE, dependency=f"afterok:{a}").json()
    assert b["dependency"] == f"afterok:{a}"
    c = service.submit("minjun.kim", **WHOLE, dependency=f"afterok:{b['id']}").json()["id"]
    service.cycle()
    assert [x.job_id for x in service.executor.launches] == [a]
    why = service.call("GET", f"/v1/jobs/{c}/explain", "minjun.kim").json()
    assert why["state"] == "pending" and why["reason"] == "dependency"
    assert why["detail"] == f"waiting for dependency {b['id']} (afterok)"
    service.executor.finish(_launch_of(service, a), 0)
    service.cycle()
    assert [x.job_id for x in service.executor.launches] == [a, b["id"]]
    assert _job(service, c)["reason"] == "dependency"
    service.executor.finish(_launch_of(service, b["id"]), 0)
    service.cycle()
    assert [x.job_id for x in service.executor.launches] == [a, b["id"], c]


def test_a_failed_dependency_ends_the_dependant_with_the_reason(service: Service) -> None:
    a = service.submit("minjun.kim", **WHOLE).json()["id"]
    b = service.submit("minjun.kim", **WHOLE, dependency=f"afterok:{a}").json()["id"]
    service.cycle()
    service.executor.finish(_launch_of(service, a), 3)
    service.cycle()
    got = _job(service, b)
    assert got["state"] == "rejected" and got["reason"] == "dependency-never-met"
    assert got["detail"] == f"dependency afterok:{a} can never be met: {a} did not complete"


def test_a_dependency_on_a_job_that_ended_before_submission(service: Service) -> None:
    a = service.submit("minjun.kim", **WHOLE).json()["id"]
    service.cycle()
    service.executor.finish(_launch_of(service, a), 0)
    service.cycle()  # the core has forgotten a; its row says completed
    ok = service.submit("minjun.kim", **WHOLE, dependency=f"afterok:{a}").json()["id"]
    never = service.submit("minjun.kim", **WHOLE, dependency=f"afternotok:{a}").json()["id"]
    service.cycle()
    assert _job(service, ok)["state"] == "running"
    assert _job(service, never)["state"] == "rejected"


@pytest.mark.parametrize(
    ("dependency", "field"),
    [("afterwards:j1", "dependency"), ("afterok", "dependency"), ("afterok:j1;rm", "dependency")],
)
def test_bad_dependency_text_is_422_naming_the_field_and_changes_nothing(
    sqlite_service: Service, dependency: str, field: str
) -> None:
    service = sqlite_service
    service.token("minjun.kim")
    r = service.submit("minjun.kim", **WHOLE, dependency=dependency)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]], r.json()
    with service.runtime.factory() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == 0


def test_dependencies_only_on_jobs_the_submitter_may_see(service: Service) -> None:
    theirs = service.submit("jungmin.park", project="climate", gpus=1, models=["H200"]).json()["id"]
    with service.runtime.factory() as s:
        before = (
            s.scalar(select(func.count()).select_from(JobRow)),
            s.scalar(select(func.count()).select_from(InboxRow)),
        )
    for target in (theirs, "j999999", "nojob"):
        r = service.submit("minjun.kim", **WHOLE, dependency=f"afterany:{target}")
        assert r.status_code == 404, r.text
        assert target in r.json()["detail"] and "dependency" in r.json()["detail"]
    with service.runtime.factory() as s:
        after = (
            s.scalar(select(func.count()).select_from(JobRow)),
            s.scalar(select(func.count()).select_from(InboxRow)),
        )
    assert after == before
    # its owner's project may name it
    mine = service.submit("jungmin.park", project="climate", gpus=1, dependency=f"afterany:{theirs}")
    assert mine.status_code == 201, mine.text


def test_held_jobs_survive_a_restart(service: Service, tmp_path: Path, database_url: str) -> None:
    a = service.submit("minjun.kim", **WHOLE).json()["id"]
    b = service.submit("minjun.kim", **WHOLE, dependency=f"afterok:{a}").json()["id"]
    c = service.submit("minjun.kim", **WHOLE, dependency=f"afterany:{b}").json()["id"]
    service.cycle()
    again = _restart(service, tmp_path, database_url, service.executor)
    try:
        again.cycle()
        assert {_job(again, j)["reason"] for j in (b, c)} == {"dependency"}
        assert len(again.runtime.loop.scheduler.held) == 2
        again.executor.finish(_launch_of(again, a), 0)
        again.cycle()
        assert _job(again, b)["state"] == "running" and _job(again, c)["state"] == "pending"
        again.runtime.loop.scheduler.validate()
    finally:
        again.http.__exit__(None, None, None)


@pytest.mark.slow
def test_real_local_jobs_run_after_each_other(tmp_path: Path) -> None:
    """Two real processes: the second (afterok) starts only after the first wrote its file."""
    mark = tmp_path / "work"
    mark.mkdir()
    mark.chmod(0o777)
    runtime = Runtime(ServiceSettings(data_dir=tmp_path / "data", cycle_interval_ms=20))
    py = sandbox.job_python()
    with TestClient(create_app(runtime)) as http:
        h = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=h, json={"user": "jungmin.park"}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}
        first = {
            "project": "climate",
            "gpus": 1,
            "models": ["H200"],
            "cwd": str(mark),
            "command": [py, "-c", "import time; time.sleep(0.5); open('first', 'w').write('done')"],
        }
        a = http.post("/v1/jobs", headers=me, json=first).json()["id"]
        second = {
            **first,
            "dependency": f"afterok:{a}",
            "command": [py, "-c", "print(open('first').read())"],
        }
        b = http.post("/v1/jobs", headers=me, json=second).json()["id"]
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            state = http.get(f"/v1/jobs/{b}", headers=me).json()["state"]
            if state in ("completed", "failed", "rejected"):
                break
            time.sleep(0.05)
        assert state == "completed"
        assert http.get(f"/v1/jobs/{b}/logs", headers=me).text.strip() == "done"
        ja, jb = (http.get(f"/v1/jobs/{j}", headers=me).json() for j in (a, b))
        assert jb["start_ms"] >= ja["end_ms"]


def test_the_event_log_codec_keeps_dependencies_arrays_and_settled_milestones() -> None:
    from gpupool.core.array_spec import parse_array
    from gpupool.core.dependencies import Milestone, parse_dependencies
    from gpupool.core.events import JobSubmitted
    from gpupool.core.job import JobSpec
    from gpupool.service.event_codec import decode, encode

    spec = JobSpec(
        "j9",
        "p",
        1,
        0,
        dependencies=parse_dependencies("afterok:j1:j2,after:j3"),
        array=parse_array("0-9:3%2"),
    )
    ev = JobSubmitted(spec, (("j1", Milestone.SUCCEEDED),))
    assert decode("JobSubmitted", encode(ev)) == ev
    plain = JobSubmitted(JobSpec("j1", "p", 1, 0))
    assert "settled" not in encode(plain) and decode("JobSubmitted", encode(plain)) == plain
