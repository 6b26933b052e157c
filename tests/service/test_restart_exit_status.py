"""A real ``gpupool serve`` restarted (SIGTERM, then SIGKILL) while jobs run and finish: every job
ends with the status its process had, read from what the sandbox's wrapper recorded."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.security.test_local_attacks import Serve

pytestmark = pytest.mark.slow

#: job -> (command, the state and exit code it must end with)
JOBS = {
    "ok": ("sleep 2; exit 0", "completed", 0),
    "three": ("sleep 2; exit 3", "failed", 3),
    "late": ("sleep 4; exit 42", "failed", 42),
}


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_jobs_that_finish_while_the_service_is_down_keep_their_exit_status(
    tmp_path: Path, how: signal.Signals
) -> None:
    srv = Serve(tmp_path / "data", tmp_path / "serve-1.log")
    try:
        h = srv.token("minjun.kim")
        ids = {}
        for name, (cmd, _, _) in JOBS.items():
            r = httpx.post(f"{srv.base}/v1/jobs", headers=h,
                           json={"project": "vision", "gpus": 1, "command": ["sh", "-c", cmd]})  # fmt: skip
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        for job in ids.values():
            srv.wait(job, h, ("running",))
    finally:
        srv.proc.send_signal(how)
        srv.proc.wait(timeout=30)
    time.sleep(2.5)  # "ok" and "three" end while no service runs; "late" ends after the restart
    again = Serve(tmp_path / "data", tmp_path / "serve-2.log", admin=srv.admin)
    try:
        for name, (_, state, code) in JOBS.items():
            got = again.wait(ids[name], h, ("completed", "failed"), timeout=30)
            assert (got["state"], got["exit_code"]) == (state, code), (name, got)
    finally:
        again.stop()
