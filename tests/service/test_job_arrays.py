"""Job arrays through the API and the loop, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gpupool.service.api.app import create_app
from gpupool.service.db import JobRow
from gpupool.service.executors import sandbox
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.service.conftest import Service
from tests.service.test_restart import _restart

TASK = {"project": "vision", "gpus": 8, "models": ["H100"]}


def _launched(service: Service) -> list[str]:
    return [x.job_id for x in service.executor.launches]


def _alloc(service: Service, tid: str) -> str:
    return next(x.allocation_id for x in reversed(service.executor.launches) if x.job_id == tid)


def _states(service: Service, jid: str) -> dict[str, str]:
    got = service.call("GET", f"/v1/jobs/{jid}", "minjun.kim").json()
    return {t["id"]: t["state"] for t in got["tasks"]}


def test_an_array_runs_its_tasks_within_its_limit_each_with_its_index(service: Service) -> None:
    r = service.submit("minjun.kim", **TASK, array="0-4%2", env={"SEED": "1"})
    assert r.status_code == 201, r.text
    a = r.json()["id"]
    assert r.json()["array"] == "0-4%2"
    service.cycle()
    assert _launched(service) == [f"{a}_0", f"{a}_1"]
    first = service.executor.launches[0]
    assert first.env == {"SEED": "1", "GPUPOOL_ARRAY_JOB_ID": a, "GPUPOOL_ARRAY_TASK_ID": "0"}
    assert first.allocation_id == f"{a}_0.1"
    states = _states(service, a)
    assert states == {f"{a}_0": "running", f"{a}_1": "running", f"{a}_2": "pending", f"{a}_3": "pending",
                      f"{a}_4": "pending"}  # fmt: skip
    assert service.call("GET", f"/v1/jobs/{a}", "minjun.kim").json()["state"] == "running"
    # explain answers for a task: a started one from its own row, one not started yet as the
    # array's window (it was a 404)
    got = service.call("GET", f"/v1/jobs/{a}_0/explain", "minjun.kim").json()
    assert got["job_id"] == f"{a}_0" and got["state"] == "running"
    got = service.call("GET", f"/v1/jobs/{a}_3/explain", "minjun.kim").json()
    assert got["state"] == "pending" and f"a task of array {a}" in got["detail"]
    assert service.call("GET", f"/v1/jobs/{a}_9/explain", "minjun.kim").status_code == 404
    service.executor.finish(_alloc(service, f"{a}_0"), 0)
    service.cycle()
    assert _launched(service)[2:] == [f"{a}_2"]
    task = service.call("GET", f"/v1/jobs/{a}_0", "minjun.kim").json()
    assert task["state"] == "completed" and task["exit_code"] == 0 and task["id"] == f"{a}_0"
    # cancel one task not started yet, then the rest run and the array completes... but for it
    assert service.call("POST", f"/v1/jobs/{a}_4/cancel", "minjun.kim").status_code == 202
    for tid in (f"{a}_1", f"{a}_2"):
        service.executor.finish(_alloc(service, tid), 0)
    service.cycle()
    assert _launched(service)[3:] == [f"{a}_3"]
    service.executor.finish(_alloc(service, f"{a}_3"), 0)
    service.cycle()
    assert _states(service, a)[f"{a}_4"] == "cancelled"
    assert service.call("GET", f"/v1/jobs/{a}", "minjun.kim").json()["state"] == "cancelled"
    service.runtime.loop.scheduler.validate()


def test_cancelling_the_array_stops_its_running_tasks_and_drops_the_rest(service: Service) -> None:
    a = service.submit("minjun.kim", **TASK, array="0-9%2").json()["id"]
    service.cycle()
    assert service.call("POST", f"/v1/jobs/{a}/cancel", "minjun.kim").status_code == 202
    service.cycle()
    assert sorted(service.executor.terminated) == [f"{a}_0.1", f"{a}_1.1"]
    got = service.call("GET", f"/v1/jobs/{a}", "minjun.kim").json()
    assert got["state"] == "cancelled" and set(_states(service, a).values()) == {"cancelled"}


def test_a_failed_task_fails_the_array_and_its_afterok_dependant(service: Service) -> None:
    a = service.submit("minjun.kim", **TASK, array="0-1").json()["id"]
    b = service.submit("minjun.kim", **TASK, dependency=f"afterok:{a}").json()["id"]
    service.cycle()
    service.executor.finish(_alloc(service, f"{a}_0"), 1)
    service.executor.finish(_alloc(service, f"{a}_1"), 0)
    service.cycle()
    assert service.call("GET", f"/v1/jobs/{a}", "minjun.kim").json()["state"] == "failed"
    assert service.call("GET", f"/v1/jobs/{b}", "minjun.kim").json()["state"] == "rejected"


def test_ten_thousand_tasks_submit_in_one_request_as_one_row(sqlite_service: Service) -> None:
    service = sqlite_service
    service.token("minjun.kim")
    r = service.submit("minjun.kim", project="vision", gpus=1, models=["H100"], array="0-9999%4")
    assert r.status_code == 201, r.text
    service.cycle()
    assert len(service.executor.launches) == 4
    with service.runtime.factory() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == 1
    assert len(service.call("GET", f"/v1/jobs/{r.json()['id']}", "minjun.kim").json()["tasks"]) == 10_000


@pytest.mark.parametrize("array", ["9-1", "0-9%0", "x", "0-1000000"])
def test_a_bad_array_is_422_naming_the_field_and_changes_nothing(sqlite_service: Service, array: str) -> None:
    service = sqlite_service
    service.token("minjun.kim")
    r = service.submit("minjun.kim", **TASK, array=array)
    assert r.status_code == 422 and "array" in [e["field"] for e in r.json()["errors"]], r.text
    with service.runtime.factory() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == 0


def test_a_task_of_another_tenants_array_is_404(service: Service) -> None:
    a = service.submit("minjun.kim", **TASK, array="0-1").json()["id"]
    assert service.call("GET", f"/v1/jobs/{a}_0", "jungmin.park").status_code == 404
    assert service.call("POST", f"/v1/jobs/{a}_0/cancel", "jungmin.park").status_code == 404
    assert service.call("GET", f"/v1/jobs/{a}_7", "minjun.kim").status_code == 404


def test_an_array_survives_a_restart(service: Service, tmp_path: Path, database_url: str) -> None:
    a = service.submit("minjun.kim", **TASK, array="0-3%2").json()["id"]
    service.cycle()
    service.executor.finish(_alloc(service, f"{a}_0"), 0)
    service.cycle()  # 1 and 2 run, 0 completed
    again = _restart(service, tmp_path, database_url, service.executor)
    try:
        again.runtime.loop.scheduler.validate()
        assert again.cycle().starts == 0
        again.executor.finish(_alloc(again, f"{a}_1"), 0)
        again.cycle()
        assert _launched(again)[-1] == f"{a}_3"
        for tid in (f"{a}_2", f"{a}_3"):
            again.executor.finish(_alloc(again, tid), 0)
        again.cycle()
        assert again.call("GET", f"/v1/jobs/{a}", "minjun.kim").json()["state"] == "completed"
        assert len(_launched(again)) == 4  # no task ran twice
    finally:
        again.http.__exit__(None, None, None)


@pytest.mark.slow
def test_real_local_tasks_see_their_index(tmp_path: Path) -> None:
    runtime = Runtime(ServiceSettings(data_dir=tmp_path / "data", cycle_interval_ms=20))
    py = sandbox.job_python()
    with TestClient(create_app(runtime)) as http:
        h = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=h, json={"user": "jungmin.park"}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}
        body = {
            "project": "climate",
            "gpus": 1,
            "models": ["H200"],
            "array": "3,5",
            "command": [
                py,
                "-c",
                "import os; print(os.environ['GPUPOOL_ARRAY_TASK_ID'], os.environ['GPUPOOL_JOB_ID'])",
            ],
        }
        a = http.post("/v1/jobs", headers=me, json=body).json()["id"]
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            state = http.get(f"/v1/jobs/{a}", headers=me).json()["state"]
            if state in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.05)
        assert state == "completed"
        for i in (3, 5):
            assert http.get(f"/v1/jobs/{a}_{i}/logs", headers=me).text.strip() == f"{i} {a}_{i}"
