"""The database goes away under a running ``gpupool serve``: 503 with ``Retry-After``, then recovery.

PostgreSQL: the test's own server is stopped (``pg_ctl stop -m fast``) while a real
``gpupool serve`` runs on it; every GET route and the writes (submissions on the fast path
and the route's, a cancel, a drain, a token, a user) are probed: no answer may be a 5xx
other than 503, the routes that read the database answer 503 with ``Retry-After`` as a
problem document, and ``/v1/ready`` says 503. The server is started again: without touching
gpupool, ``/v1/ready`` comes back, every probe answers below 500 and a new job is scheduled
(the loop outlived the outage).

SQLite: another process holds the write lock past the database timeout: every write answers
503 with ``Retry-After``, reads go on (WAL readers never wait for a writer), no 500; once the
lock is released, a submission is accepted and scheduled.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.live_server import LiveServer
from tests.service.pg_cluster import PgCluster

pytestmark = pytest.mark.slow
MEMBER = "minjun.kim"  # a member of the demo's vision project
FAST_ENV = {
    "GPUPOOL_EXECUTOR": "none",
    "GPUPOOL_CYCLE_INTERVAL_MS": "200",
    "GPUPOOL_DIRECTORY_CACHE_S": "600",  # tokens stay cached: the probes reach the database
}
Probe = tuple[str, str, dict[str, Any]]
Answer = tuple[str, int, httpx.Response]


def _ids(srv: LiveServer) -> dict[str, str]:
    """Real values for the routes' path parameters (a job, a node, a tenant, a token)."""
    with srv.client() as c:
        member = c.post("/v1/tokens", json={"user": MEMBER, "name": "outage"}).json()
        with srv.client(member["token"]) as m:
            job = m.post("/v1/jobs", json={"project": "vision", "command": ["true"], "gpus": 1}).json()
        node = c.get("/v1/fleet/nodes", params={"limit": 1}).json()["items"][0]["name"]
        tenant = next(t["path"] for t in c.get("/v1/tenants").json() if t["path"].endswith("vision"))
        c.get("/v1/users/me")  # the admin's token cached too
    return {"job_id": job["id"], "name": node, "path": tenant, "user": MEMBER,
            "token_id": str(member["id"]), "run_id": "r-none", "allocation_id": "1",
            "call_id": "1", "application_id": "1", "subscription_id": "1", "reservation_id": "1",
            "member": member["token"]}  # fmt: skip


def _probes(srv: LiveServer, ids: dict[str, str]) -> list[Probe]:
    """Every GET route of the OpenAPI document with its parameters filled, and the writes."""
    with srv.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    out: list[Probe] = []
    for path, ops in paths.items():
        if "get" in ops:
            out.append(("GET", path.format(**ids), {}))
    sub = {"project": "vision", "command": ["true"], "gpus": 1}
    out += [
        ("POST", "/v1/jobs", {"json": sub, "token": ids["member"]}),  # the fast path (cached caller)
        ("POST", "/v1/jobs#key", {"json": sub, "token": ids["member"], "headers": {"Idempotency-Key": "k1"}}),
        ("POST", "/v1/jobs#bad-json", {"content": b"{not json", "token": ids["member"]}),  # the route's 422
        ("POST", "/v1/jobs#unknown-token", {"json": sub, "token": "gpt_not-cached-so-the-directory-reads"}),
        ("POST", f"/v1/jobs/{ids['job_id']}/cancel", {}),
        ("POST", f"/v1/fleet/nodes/{ids['name']}/drain", {"json": {"reason": "probe"}}),
        ("POST", "/v1/tokens", {"json": {"user": MEMBER}}),
        ("POST", "/v1/users", {"json": {"name": f"probe{time.monotonic_ns()}", "role": "user"}}),
        ("GET", "/v1/dashboard/jobs?sort=gpus&state=all", {}),
    ]
    return out


def _run(srv: LiveServer, probes: list[Probe]) -> list[Answer]:
    got = []
    with srv.client() as c:
        for method, path, kw in probes:
            kw = dict(kw)
            headers = dict(kw.pop("headers", {}))
            if "token" in kw:
                headers["Authorization"] = f"Bearer {kw.pop('token')}"
            r = c.request(method, path.split("#")[0], headers=headers, **kw)
            got.append((f"{method} {path}", r.status_code, r))
    return got


def _check_outage(got: list[Answer], must_503: list[str]) -> collections.Counter[int]:
    statuses = collections.Counter(status for _, status, _ in got)
    bad = [(what, status, r.text[:200]) for what, status, r in got if status >= 500 and status != 503]
    assert not bad, bad
    for what, status, r in got:
        if status == 503:
            assert r.headers["content-type"] == "application/problem+json", what
            assert int(r.headers["retry-after"]) >= 1, what
            assert r.json()["status"] == 503, what
    answered = {what: status for what, status, _ in got}
    for what in must_503:
        assert answered[what] == 503, (what, answered[what])
    return statuses


def _recovered(srv: LiveServer, ids: dict[str, str], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while True:
        with httpx.Client(timeout=10) as c:
            r = c.get(f"{srv.url}/v1/ready")
        if r.status_code == 200:
            break
        assert time.monotonic() < deadline, f"not ready again: {r.text}\n{srv.log()}"
        time.sleep(0.5)
    got = _run(srv, _probes(srv, ids))
    assert all(status < 500 for _, status, _ in got), [(w, s, r.text[:200]) for w, s, r in got if s >= 500]
    with srv.client(ids["member"]) as m:
        job = m.post("/v1/jobs", json={"project": "vision", "command": ["true"], "gpus": 1})
        assert job.status_code == 201, job.text
        while m.get(f"/v1/jobs/{job.json()['id']}").json()["state"] == "pending":
            assert time.monotonic() < deadline + 30, "no cycle after the outage\n" + srv.log()
            time.sleep(0.2)


@pytest.fixture
def own_pg() -> Iterator[PgCluster]:
    pg = PgCluster.create()
    try:
        yield pg
    finally:
        pg.destroy()


def test_postgresql_down_answers_503_and_recovers(own_pg: PgCluster, tmp_path: Path) -> None:
    srv = LiveServer.start(tmp_path / "data", "--database-url", own_pg.url(),
                           env={**FAST_ENV, "GPUPOOL_DATABASE_TIMEOUT_S": "3"})  # fmt: skip
    try:
        ids = _ids(srv)
        probes = _probes(srv, ids)
        own_pg.stop()
        got = _run(srv, probes)
        ready = httpx.get(f"{srv.url}/v1/ready", timeout=30)
        assert ready.status_code == 503 and int(ready.headers["retry-after"]) >= 1, ready.text
        must = ["GET /v1/jobs", f"GET /v1/jobs/{ids['job_id']}", "GET /v1/dashboard/jobs", "POST /v1/jobs",
                "POST /v1/jobs#key", "POST /v1/jobs#unknown-token", "GET /v1/tenants", "POST /v1/tokens",
                "GET /v1/audit", f"POST /v1/jobs/{ids['job_id']}/cancel"]  # fmt: skip
        statuses = _check_outage(got, must)
        print(f"\nPostgreSQL stopped: {len(got)} probes, statuses {dict(sorted(statuses.items()))}")
        print(sorted((w, s) for w, s, _ in got if s != 503))
        time.sleep(1.5)  # the loop meets the outage too (cycles every 200 ms) and must outlive it
        assert srv.proc.poll() is None
        own_pg.start()
        _recovered(srv, ids)
        with srv.client() as c:  # the 503s are counted (pools reconnected: /metrics needs the token)
            text = c.get("/metrics").text
        assert 'gpupool_http_refused_total{reason="database_unavailable"}' in text, text[-2000:]
        log = srv.log()
        # one line each for the loop and the API, no traceback: an outage is not a bug
        assert "cycle failed: the database is unavailable" in log, log
        assert "answering 503" in log and "Traceback" not in log, log
    finally:
        srv.stop()


HOLDER = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.read()
c.execute("ROLLBACK")
"""


def test_sqlite_locked_answers_503_and_recovers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = LiveServer.start(data, env={**FAST_ENV, "GPUPOOL_DATABASE_TIMEOUT_S": "0.5"})
    holder: subprocess.Popen[str] | None = None
    try:
        ids = _ids(srv)
        probes = _probes(srv, ids)
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(data / "gpupool.db")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        got = _run(srv, probes)
        # every write that gets as far as the database (a bad body is refused before; an
        # unknown token is found unknown by a read, and reads go on)
        must = [w for w, _, _ in got if w.startswith("POST") and "#bad-json" not in w and "#unknown" not in w]
        statuses = _check_outage(got, must)
        reads = [(w, s) for w, s, _ in got if w.startswith("GET") and "/v1/ready" not in w]
        assert all(s < 500 for _, s in reads), reads
        print(f"\nSQLite locked: {len(got)} probes, statuses {dict(sorted(statuses.items()))}")
        time.sleep(1.5)
        assert srv.proc.poll() is None
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        _recovered(srv, ids)
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        srv.stop()


def test_serve_says_the_database_is_unavailable_at_start(tmp_path: Path) -> None:
    from tests.service.conftest import free_port

    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/gpupool"  # nothing listens there
    r = subprocess.run(
        [sys.executable, "-c", "from gpupool.cli.main import app; app()", "serve",
         "--data-dir", str(tmp_path), "--database-url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "database is unavailable" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "secret" not in r.stderr  # the password is not printed


def test_the_loop_keeps_the_exits_it_could_not_record(own_pg: PgCluster, tmp_path: Path) -> None:
    """A job ends while PostgreSQL is down: failed cycles keep its exit, the first good one records it."""
    from fastapi.testclient import TestClient

    from gpupool.service.api.app import create_app
    from gpupool.service.db import unavailable
    from tests.service.conftest import Service, make_service

    runtime, clock, executor = make_service(tmp_path, own_pg.url(), database_timeout_s=3)
    with TestClient(create_app(runtime)) as http:
        svc = Service(runtime, http, clock, executor)
        job = svc.submit(MEMBER, project="vision", gpus=1).json()["id"]
        svc.cycle()
        svc.cycle()
        assert svc.call("GET", f"/v1/jobs/{job}").json()["state"] == "running"
        executor.finish(executor.launches[0].allocation_id, exit_code=3)
        own_pg.stop()
        for _ in range(3):  # the cycle fails, and so does the rebuild that follows it
            with pytest.raises(Exception) as failed:
                svc.cycle()
            assert unavailable(failed.value), repr(failed.value)
        own_pg.start()
        report = svc.cycle()
        assert report.finishes == 1
        done = svc.call("GET", f"/v1/jobs/{job}").json()
        assert done["state"] == "failed" and done["exit_code"] == 3, done
        runtime.loop.scheduler.validate()
