"""The core across restarts: rebuilt from the database, reconciled with the executors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpupool.core.policy import PREEMPTION_QUANTUM_MS
from gpupool.service.api.app import create_app
from gpupool.service.db import JobRow
from gpupool.service.journal import Journal
from tests.service.conftest import Service, make_service
from tests.service.fakes import RecordingExecutor


def _three_jobs(service: Service) -> list[str]:
    ids = [
        service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"] for _ in range(3)
    ]
    service.cycle()
    return ids


def _restart(
    service: Service, tmp_path: Path, url: str, executor: RecordingExecutor, **settings: object
) -> Service:
    service.http.__exit__(None, None, None)
    runtime, clock, _ = make_service(tmp_path, url, **settings)
    runtime._executors = {"*": executor}
    clock.ms = service.clock.ms
    executor.clock = clock
    client = TestClient(create_app(runtime))
    client.__enter__()
    again = Service(runtime, client, clock, executor)
    again.admin_token = service.admin_token
    again._tokens = dict(service._tokens)
    return again


def _states(service: Service, ids: list[str]) -> list[str]:
    return [service.call("GET", f"/v1/jobs/{j}").json()["state"] for j in ids]


def test_restart_restores_running_and_pending_jobs(
    service: Service, tmp_path: Path, database_url: str
) -> None:
    ids = _three_jobs(service)
    assert _states(service, ids) == ["running", "running", "pending"]
    before = {r.allocation_id for r in service.executor.launches}
    # the executor survived (it adopted its processes): it still runs both allocations
    again = _restart(service, tmp_path, database_url, service.executor)
    try:
        again.runtime.loop.scheduler.validate()
        assert len(again.runtime.loop.scheduler.running) == 2
        assert again.cycle().starts == 0  # the pending job still waits: nothing freed up
        assert len(again.executor.launches) == 2  # nothing relaunched
        first = before.pop()
        again.executor.finish(first)
        report = again.cycle()
        assert report.finishes == 1 and report.starts == 1
        assert sorted(_states(again, ids)) == ["completed", "running", "running"]
        again.runtime.loop.scheduler.validate()
    finally:
        again.http.__exit__(None, None, None)


@pytest.mark.parametrize("policy", ["relaunch", "fail"])
def test_reconcile_allocations_no_executor_runs(
    service: Service, tmp_path: Path, database_url: str, policy: str
) -> None:
    ids = _three_jobs(service)
    fresh = RecordingExecutor()
    fresh.launch(
        service.executor.launches[0].__class__(**{**_launch_kw(service), "allocation_id": "stray.1"})
    )
    again = _restart(service, tmp_path, database_url, fresh, reconcile=policy)
    try:
        assert "stray.1" in fresh.terminated  # the database does not run it
        if policy == "relaunch":
            relaunched = sorted(
                launch.allocation_id for launch in fresh.launches if launch.allocation_id != "stray.1"
            )
            assert relaunched == sorted(launch.allocation_id for launch in service.executor.launches)
        else:
            again.cycle()
            states = _states(again, ids)
            assert states.count("failed") == 2
            jobs = [again.call("GET", f"/v1/jobs/{j}").json() for j in ids]
            assert any("lost" in j["detail"] for j in jobs)
        again.runtime.loop.scheduler.validate()
    finally:
        again.http.__exit__(None, None, None)


def _launch_kw(service: Service) -> dict[str, object]:
    launch = service.executor.launches[0]
    return {f: getattr(launch, f) for f in launch.__dataclass_fields__}


def test_a_failed_cycle_rebuilds_the_core_and_loses_nothing(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        assert service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).status_code == 201
    real = Journal._apply

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("the database went away mid-transaction")

    monkeypatch.setattr(Journal, "_apply", broken)
    with pytest.raises(RuntimeError):
        service.cycle()
    assert service.executor.launches == []  # nothing was dispatched from an uncommitted cycle
    monkeypatch.setattr(Journal, "_apply", real)
    report = service.cycle()
    assert report.starts == 2 and len(service.executor.launches) == 2
    with service.runtime.factory() as s:
        assert [r.state for r in s.scalars(select(JobRow).order_by(JobRow.seq))] == ["running", "running"]
    service.runtime.loop.scheduler.validate()


def test_a_preempted_pending_job_keeps_its_service_across_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    """Restored with ``restore_pending``: attained service, run time, attempts and preemptions
    survive (a re-submission would start them at zero, and ``las`` would put it first)."""
    runtime, clock, executor = make_service(tmp_path, database_url, policy="las")
    client = TestClient(create_app(runtime))
    client.__enter__()
    service = Service(runtime, client, clock, executor)
    ids = [
        service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"] for _ in range(4)
    ]
    service.cycle()
    # vision may hold 16 (borrow limit "*": 16): two run, two wait. Past las's quantum (its
    # minimum run time) and onto its next round, the two waiting jobs take their turn
    clock.advance(PREEMPTION_QUANTUM_MS + 60_000)
    assert service.cycle().preemptions == 2
    before = {j: service.runtime.loop.scheduler.job(j) for j in ids}
    preempted, _ = [j for j, st in before.items() if st is not None and st.preemptions == 1]
    held = before[preempted]
    assert held is not None and held.attained > 0 and held.run_ms > 0
    kept = (held.attained, held.run_ms, held.attempt, held.preemptions)
    again = _restart(service, tmp_path, database_url, executor, policy="las")
    try:
        sched = again.runtime.loop.scheduler
        restored = sched.job(preempted)
        assert restored is not None and restored.status == held.status  # pending
        assert (restored.attained, restored.run_ms, restored.attempt, restored.preemptions) == kept
        assert again.runtime.loop._state.replay == []  # restored, not re-submitted
        sched.validate()
        report = again.cycle()  # the first cycle runs the core even without events
        assert report.events == 1  # only las's Tick: no JobSubmitted for restored jobs
        got = again.call("GET", f"/v1/jobs/{preempted}").json()
        assert got["preemptions"] == 1 and got["attempt"] == 1
    finally:
        again.http.__exit__(None, None, None)
