"""The leader lease on both databases: one leader, a dead holder replaced at once, and fencing.

A fenced old leader (its lease expired while it was paused, and a standby took it) cannot
commit a cycle nor dispatch: its decisions never reach the database or an executor.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gpupool.service.api.app import create_app
from gpupool.service.db import EventLogRow, InboxRow, JobRow, OutboxRow, make_engine
from gpupool.service.leader import LeaderLease, LeaseLost, read_lease
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.service.conftest import Service
from tests.service.fakes import Clock, RecordingExecutor


def _migrated(tmp_path: Path, url: str) -> ServiceSettings:
    settings = ServiceSettings(data_dir=tmp_path, database_url=url)
    seeding = Runtime(settings, run_loop=False)
    seeding.start()  # migrate and seed, no loop thread
    seeding.stop()
    return settings


def test_one_contender_leads_and_a_release_hands_over(tmp_path: Path, database_url: str) -> None:
    settings = _migrated(tmp_path, database_url)
    engine = make_engine(settings.url)
    a = LeaderLease.for_database(engine, tmp_path, "a", ttl_ms=60_000)
    b = LeaderLease.for_database(engine, tmp_path, "b", ttl_ms=60_000)
    try:
        assert a.try_acquire()
        first = a.epoch
        assert first is not None
        assert not b.try_acquire()  # a holds the lock and a fresh lease
        assert a.renew(123)
        state = read_lease(engine)
        assert state is not None and state.held_by("a") and state.last_cycle_ms == 123
        a.release()
        assert b.try_acquire() and b.epoch == first + 1
        assert not a.renew()  # a's epoch is gone
    finally:
        a.release()
        b.release()
        engine.dispose()


HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from gpupool.service.db import make_engine
    from gpupool.service.leader import LeaderLease
    lease = LeaderLease.for_database(make_engine(sys.argv[1]), Path(sys.argv[2]), "doomed", ttl_ms=60_000)
    assert lease.try_acquire()
    print("leading", flush=True)
    time.sleep(120)
    """
)


def test_a_killed_holder_is_replaced_before_its_lease_expires(tmp_path: Path, database_url: str) -> None:
    settings = _migrated(tmp_path, database_url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, settings.url, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    engine = make_engine(settings.url)
    standby = LeaderLease.for_database(engine, tmp_path, "standby", ttl_ms=60_000)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "leading"
        assert not standby.try_acquire()  # alive, locked, 60 s left on its lease
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 5
        while not standby.try_acquire():  # the lock went with the process: no TTL to wait
            assert time.monotonic() < deadline, "the standby did not take over from a dead holder"
            time.sleep(0.05)
        state = read_lease(engine)
        assert state is not None and state.held_by("standby") and state.epoch == 2
    finally:
        holder.kill()
        standby.release()
        engine.dispose()


@pytest.fixture
def fenced(tmp_path: Path, database_url: str) -> Iterator[tuple[Service, LeaderLease, Runtime]]:
    """A service whose loop leads under a short lease, and the engine of a rival."""
    settings = _migrated(tmp_path, database_url)
    engine = make_engine(settings.url)
    lease = LeaderLease.for_database(engine, tmp_path, "old", ttl_ms=1000)
    assert lease.try_acquire()
    clock = Clock()
    executor = RecordingExecutor(clock)
    runtime = Runtime(settings, executors={"*": executor}, clock=clock, run_loop=False, lease=lease)
    with TestClient(create_app(runtime)) as client:
        service = Service(runtime, client, clock, executor)
        service.admin_token = runtime.mint_admin_token("test")  # the first was shown once, to nobody
        service._tokens["admin"] = service.admin_token
        yield service, lease, runtime
    lease.release()
    engine.dispose()


def test_an_old_leader_whose_lease_was_taken_cannot_commit_a_cycle(
    fenced: tuple[Service, LeaderLease, Runtime], tmp_path: Path
) -> None:
    service, old, runtime = fenced
    assert service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).status_code == 201
    assert service.cycle().starts == 1  # leading: the cycle commits
    assert old.renew(service.clock())
    assert service.call("GET", "/v1/ready").json()["role"] == "leader"
    # the old leader is paused past its lease; a standby (without the lock, which the paused
    # process still holds) takes the lease on expiry
    time.sleep(1.1)
    rival = LeaderLease.for_database(make_engine(runtime.settings.url), tmp_path, "new", ttl_ms=60_000)
    try:
        assert rival.try_acquire()
        assert service.call("GET", "/v1/ready").json()["role"] == "standby"
        job = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"]
        logged = _count(runtime, EventLogRow)
        outbox = _count(runtime, OutboxRow)
        launches = len(service.executor.launches)
        # the old leader wakes up: its next cycle decides in memory but cannot commit
        with pytest.raises(LeaseLost):
            service.cycle()
        assert _count(runtime, EventLogRow) == logged  # no event and no decision logged
        assert _count(runtime, OutboxRow) == outbox  # nothing to dispatch
        assert len(service.executor.launches) == launches  # nothing dispatched
        assert service.call("GET", f"/v1/jobs/{job}").json()["state"] == "pending"
        assert _count(runtime, InboxRow) == 1  # the submission waits for the new leader
        assert old.epoch is None and not old.renew()
        # and it cannot dispatch what an earlier cycle left in the outbox either
        runtime.loop.dispatcher.dirty = True
        with pytest.raises(LeaseLost):
            runtime.loop.dispatch()
    finally:
        rival.release()
        rival.engine.dispose()


def test_a_loop_in_another_process_hears_of_tenancy_changes_through_the_inbox(
    fenced: tuple[Service, LeaderLease, Runtime],
) -> None:
    service, _, runtime = fenced
    assert (
        service.call("POST", "/v1/tenants", json={"parent": "academia/snu", "key": "robotics"}).status_code
        == 201
    )
    assert service.call("POST", "/v1/users", json={"name": "grad.kim"}).status_code == 201
    r = service.call("POST", "/v1/projects/academia/snu/robotics/members", json={"user": "grad.kim"})
    assert r.status_code == 201
    with runtime.factory() as s:
        assert s.scalar(select(func.count()).select_from(InboxRow).where(InboxRow.kind == "rebuild")) == 1
    assert service.submit("grad.kim", project="robotics", gpus=1).status_code == 201
    # the first cycle meets the rebuild row and stops reading there; the second rebuilds
    # the core (it now knows the project) and starts the job submitted after the change
    service.cycle()
    assert service.cycle().starts == 1
    with runtime.factory() as s:
        assert s.scalar(select(JobRow.state).where(JobRow.spec["gpus"].as_integer() == 1)) == "running"


def _count(runtime: Runtime, table: type[EventLogRow] | type[OutboxRow] | type[InboxRow]) -> int:
    with runtime.factory() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)
