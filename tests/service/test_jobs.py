"""Jobs through the API and the loop, on SQLite and PostgreSQL: submit, run, finish, cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gpupool.core.policy import PREEMPTION_QUANTUM_MS
from gpupool.service.db import EventLogRow, InboxRow, JobRow, OutboxRow
from tests.service.conftest import Service, make_service

HOUR = 3_600_000


def test_submit_runs_and_finishes(service: Service) -> None:
    r = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"], env={"SEED": "1"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert (
        job["state"] == "pending" and job["project"] == "academia/snu/vision" and job["user"] == "minjun.kim"
    )
    report = service.cycle()
    assert report.starts == 1 and report.dispatched == 1
    (launch,) = service.executor.launches
    assert launch.job_id == job["id"] and launch.argv == ("true",) and launch.env == {"SEED": "1"}
    assert sum(len(ids) for _, ids in launch.placement) == 8
    got = service.call("GET", f"/v1/jobs/{job['id']}", "minjun.kim").json()
    assert (
        got["state"] == "running" and got["model"] == "H100" and got["allocation_id"] == launch.allocation_id
    )
    service.clock.advance(HOUR)
    service.executor.finish(launch.allocation_id, 0)
    assert service.cycle().finishes == 1
    got = service.call("GET", f"/v1/jobs/{job['id']}", "minjun.kim").json()
    assert got["state"] == "completed" and got["exit_code"] == 0 and got["end_ms"] == service.clock()
    usage = service.call("GET", "/v1/usage", "minjun.kim").json()
    assert usage["items"] == [
        {"key": "academia/snu/vision", "gpu_hours": 8.0, "effective_gpu_hours": 8.0, "allocations": 1}
    ]
    with service.runtime.factory() as s:
        kinds = [r.type for r in s.scalars(select(EventLogRow).order_by(EventLogRow.id))]
        # the start's rebuild logs its restore point with the first cycle (ADR 0017)
        assert kinds[:3] == ["RestorePoint", "JobSubmitted", "Start"] and "JobFinished" in kinds
        assert s.scalar(select(func.count()).select_from(InboxRow)) == 0
        assert all(o.dispatched_ms is not None for o in s.scalars(select(OutboxRow)))
    service.runtime.loop.scheduler.validate()


def test_effective_gpu_hours_weigh_the_model(service: Service) -> None:
    r = service.submit("jungmin.park", project="climate", gpus=8, models=["H200"], workload_class="train-cnn")
    assert r.status_code == 201, r.text
    service.cycle()
    (launch,) = service.executor.launches
    service.clock.advance(HOUR)
    service.executor.finish(launch.allocation_id, 3)
    service.cycle()
    job = service.call("GET", f"/v1/jobs/{r.json()['id']}", "jungmin.park").json()
    assert job["state"] == "failed" and job["exit_code"] == 3
    by_sector = service.call("GET", "/v1/usage?by=sector").json()["items"]
    assert by_sector[0]["key"] == "public-research"
    assert by_sector[0]["gpu_hours"] == 8.0
    assert abs(by_sector[0]["effective_gpu_hours"] - 8.0 * 1.127) < 1e-6  # H200 on train-cnn


def test_idempotency_key_returns_the_same_job(service: Service) -> None:
    body = {"project": "vision", "gpus": 1}
    first = service.submit("minjun.kim", key="abc", **body)
    again = service.submit("minjun.kim", key="abc", **body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = service.submit("minjun.kim", key="abc", project="vision", gpus=2)
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    # another user may use the same key for their own job
    assert service.submit("seoyeon.lee", key="abc", **body).status_code == 201


def test_concurrent_submissions_with_one_key_make_one_job(service: Service) -> None:
    service.token("minjun.kim")
    codes: list[int] = []
    ids: set[str] = set()

    def go() -> None:
        r = service.submit("minjun.kim", key="same", project="vision", gpus=1)
        codes.append(r.status_code)
        ids.add(r.json()["id"])

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 5 + [201] and len(ids) == 1
    with service.runtime.factory() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == 1


def test_cancel_pending_and_running(service: Service) -> None:
    a = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"]
    service.cycle()
    # vision's borrowing limit (16) keeps a third 8-GPU job pending
    b = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"]
    c = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"]
    service.cycle()
    states = {j: service.call("GET", f"/v1/jobs/{j}", "minjun.kim").json()["state"] for j in (a, b, c)}
    assert states == {a: "running", b: "running", c: "pending"}
    assert service.call("POST", f"/v1/jobs/{c}/cancel", "minjun.kim").status_code == 202
    assert service.call("POST", f"/v1/jobs/{a}/cancel", "seoyeon.lee").status_code == 202
    service.cycle()
    got = {j: service.call("GET", f"/v1/jobs/{j}", "minjun.kim").json() for j in (a, c)}
    assert got[a]["state"] == "cancelled" and got[c]["state"] == "cancelled"
    assert service.executor.terminated == [got[a]["allocation_id"]]
    again = service.call("POST", f"/v1/jobs/{a}/cancel", "minjun.kim")
    assert again.status_code == 409
    service.cycle()  # the terminate's exit report is stale and changes nothing
    assert service.call("GET", f"/v1/jobs/{a}", "minjun.kim").json()["state"] == "cancelled"
    service.runtime.loop.scheduler.validate()


def test_explain_gives_reason_and_estimated_start(service: Service) -> None:
    first = service.submit("jungmin.park", project="climate", gpus=8, models=["H200"], walltime_s=7200)
    service.cycle()
    waiting = service.submit("jungmin.park", project="climate", gpus=8, models=["H200"]).json()["id"]
    service.cycle()
    ex = service.call("GET", f"/v1/jobs/{waiting}/explain", "jungmin.park").json()
    assert ex["state"] == "pending" and ex["reason"] in ("resources", "reserved")
    assert ex["estimated_start_ms"] == first.json()["submit_ms"] + 7200 * 1000
    assert "H200" in ex["detail"]


def test_list_filters_and_cursor_pages(service: Service) -> None:
    for i in range(5):
        service.submit("minjun.kim", project="vision", gpus=1, name=f"v{i}")
    service.submit("hayoon.choi", project="nlp", gpus=1)
    service.cycle()
    seen: list[str] = []
    cursor = None
    while True:
        q = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = service.call("GET", q).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"j{i}" for i in range(6, 0, -1)]
    mine = service.call("GET", "/v1/jobs?project=academia/snu/nlp").json()["items"]
    assert [j["user"] for j in mine] == ["hayoon.choi"]
    assert service.call("GET", "/v1/jobs?user=hayoon.choi&state=running").json()["items"][0]["id"] == "j6"
    assert service.call("GET", "/v1/jobs?cursor=bogus").status_code == 422


def test_metrics_after_a_cycle(service: Service) -> None:
    service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    service.cycle()
    text = service.call("GET", "/metrics").text
    assert 'gpupool_utilisation{cluster="kisti",model="H100"} 0.333' in text
    assert "gpupool_jobs_running 1.0" in text
    assert 'gpupool_submissions_total{outcome="accepted"} 1.0' in text
    assert "gpupool_cycle_duration_seconds_count" in text


def test_las_gets_rounds_like_the_twin(tmp_path: Path) -> None:
    runtime, clock, _ = make_service(tmp_path, f"sqlite:///{tmp_path / 'db'}", policy="las")
    assert runtime.config.round_ms == 60_000 and runtime.config.min_runtime_ms == PREEMPTION_QUANTUM_MS
    runtime.start()
    try:
        runtime.loop.cycle()
        clock.advance(30_000)
        assert runtime.loop.cycle().events == 0
        clock.advance(30_000)
        assert runtime.loop.cycle().events == 1  # a Tick once a round
    finally:
        runtime.stop()


def test_sqlite_synchronous_follows_the_setting(tmp_path: Path) -> None:
    from sqlalchemy import text

    from gpupool.service.db import make_engine

    for mode, code in (("NORMAL", 1), ("FULL", 2)):
        engine = make_engine(f"sqlite:///{tmp_path / mode}.db", synchronous=mode)
        with engine.connect() as c:
            assert c.execute(text("PRAGMA synchronous")).scalar() == code
        engine.dispose()


def test_executor_none_runs_nothing_and_still_decides(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from gpupool.service.api.app import create_app
    from gpupool.service.dry_run import DryRunExecutor
    from gpupool.service.runtime import Runtime
    from gpupool.service.settings import ServiceSettings

    runtime = Runtime(ServiceSettings(data_dir=tmp_path, executor="none"), run_loop=False)
    with TestClient(create_app(runtime)) as http:
        (ex,) = set(runtime.loop.executors.values())
        assert isinstance(ex, DryRunExecutor)
        admin = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=admin, json={"user": "minjun.kim"}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}
        job = http.post(
            "/v1/jobs", headers=me, json={"project": "vision", "gpus": 1, "command": ["true"]}
        ).json()
        assert runtime.loop.cycle().starts == 1
        assert http.get(f"/v1/jobs/{job['id']}", headers=me).json()["state"] == "running"
        assert ex.allocations() == {f"{job['id']}.1"} and ex.poll() == []


def test_many_starts_in_one_cycle_are_dispatched_once_and_marked_in_batches(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gpupool.service.dispatch as dispatch_module

    monkeypatch.setattr(dispatch_module, "DISPATCH_MARK_BATCH", 3)
    for _ in range(7):
        assert service.submit("minjun.kim", project="vision", gpus=1, models=["H100"]).status_code == 201
    report = service.cycle()
    assert report.starts == 7 and report.dispatched == 7
    assert len({launch.allocation_id for launch in service.executor.launches}) == 7
    with service.runtime.factory() as s:
        assert all(o.dispatched_ms is not None for o in s.scalars(select(OutboxRow)))
    assert service.cycle().dispatched == 0  # nothing is sent twice
    assert len(service.executor.launches) == 7


def test_a_job_that_finished_as_its_node_went_down_is_not_run_again(service: Service) -> None:
    # The engine's poll says "node down" first and "the job exited 0" second (Slurm reported
    # both in one scan): the job completed; requeueing it would run it twice.
    from gpupool.service.executors.base import NodeChanged

    r = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"])
    assert service.cycle().starts == 1
    (launch,) = service.executor.launches
    node = launch.placement[0][0]
    service.clock.advance(60_000)
    with service.executor._lock:
        service.executor._events.append(NodeChanged(node, service.clock(), "down", "test"))
    service.executor.finish(launch.allocation_id, 0)
    report = service.cycle()
    assert report.finishes == 1 and report.starts == 0
    got = service.call("GET", f"/v1/jobs/{r.json()['id']}", "minjun.kim").json()
    assert got["state"] == "completed" and got["preemptions"] == 0
    assert len(service.executor.launches) == 1
    service.runtime.loop.scheduler.validate()
