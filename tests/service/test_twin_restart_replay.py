"""A live ``gpupool serve`` with jobs, restarted mid-way: its snapshot replays to the same decisions.

Before restore points were logged, the replay broke at a restart: the restarted service
rebuilds its core from the database (new core allocation ids, usage re-derived from the
intervals), so a replay that carried on with its own core was fed ``JobFinished`` events
naming allocations it never made. The test runs jobs through a real server, restarts it
while some run and some wait, runs more, then takes ``gpupool twin snapshot`` and checks
``gpupool twin replay`` end to end (from the folder and from the URL), and that the same log
without its restore points does not replay (the check can fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpupool.service.replay import check, cycles_of
from gpupool.service.twin_snapshot import Snapshot
from tests.service.live_server import LiveServer

pytestmark = pytest.mark.slow


def _cli(srv: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    env.update(GPUPOOL_URL=srv.url, GPUPOOL_TOKEN=srv.admin, GPUPOOL_LANG="en")
    return subprocess.run(
        [sys.executable, "-c", "from gpupool.cli.main import app; app()", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def _wait(c: httpx.Client, job: str, states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, Any] = c.get(f"/v1/jobs/{job}").json()
        if got["state"] in states:
            return got
        assert time.monotonic() < deadline, got
        time.sleep(0.1)


def _submit(c: httpx.Client, gpus: int, seconds: float) -> str:
    r = c.post("/v1/jobs", json={"project": "vision", "gpus": gpus, "models": ["H100"],
                                 "walltime_s": 600, "command": ["sleep", str(seconds)]})  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_restarted_live_service_replays_to_the_same_decisions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = LiveServer.start(data, "--fleet", "demo", "--cycle-interval-ms", "100")
    admin = srv.admin
    try:
        tok = srv.client().post("/v1/tokens", json={"user": "minjun.kim", "name": "t"}).json()["token"]
        with srv.client(tok) as c:
            short = _submit(c, 8, 1)
            long = [_submit(c, 8, 30) for _ in range(2)]
            waiting = _submit(c, 16, 1)  # waits for the 24 H100 held by the others
            _wait(c, short, ("completed",))
            for j in long:
                _wait(c, j, ("running",))
    finally:
        srv.stop()
    # the same data: running jobs are restored on their accelerators, the waiting one re-queued
    srv = LiveServer.start(data, "--fleet", "demo", "--cycle-interval-ms", "100")
    srv.admin = admin
    try:
        with srv.client(tok) as c:
            assert c.get(f"/v1/jobs/{waiting}").json()["state"] in ("pending", "running", "completed")
            for j in long:
                assert c.post(f"/v1/jobs/{j}/cancel").status_code == 202
            _wait(c, waiting, ("completed",))
            after = _submit(c, 4, 1)
            _wait(c, after, ("completed",))
        out = tmp_path / "snap"
        taken = _cli(srv, "twin", "snapshot", "--out", str(out), "--since", "0")
        assert taken.returncode == 0, taken.stderr
        assert "snapshot at" in taken.stdout
        replayed = _cli(srv, "twin", "replay", "--from", str(out), "--since", "0", "--json")
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        report = json.loads(replayed.stdout)
        print("replay check:", json.dumps(report))
        assert report["matches"] and report["restores"] >= 2 and report["decisions"] >= 6, report
        by_url = _cli(srv, "twin", "replay", "--from", srv.url, "--since", "0")
        assert by_url.returncode == 0 and "decisions match" in by_url.stdout, by_url.stdout + by_url.stderr
        # each start's rebuild is logged; without the restart's point the replay diverges
        snap = Snapshot.read(out)
        cycles = cycles_of(snap.events())
        points = [i for i, cy in enumerate(cycles) if cy.restore is not None]
        assert len(points) >= 2
        cycles[points[1]].restore = None
        assert not check(cycles, snap.fleet, snap.config).matches
    finally:
        srv.stop()
