"""The loop with the real local executor (simulated GPUs): a process runs pinned, its logs come back."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings


def test_a_job_runs_as_a_process_and_its_logs_are_served(tmp_path: Path) -> None:
    runtime = Runtime(ServiceSettings(data_dir=tmp_path, cycle_interval_ms=20))
    with TestClient(create_app(runtime)) as http:
        h = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=h, json={"user": "jungmin.park"}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}
        body = {
            "project": "climate",
            "gpus": 2,
            "models": ["H200"],
            "command": ["sh", "-c", 'echo "gpus=$CUDA_VISIBLE_DEVICES job=$GPUPOOL_JOB_ID"; echo oops >&2'],
        }
        job = http.post("/v1/jobs", headers=me, json=body).json()["id"]
        deadline = time.monotonic() + 20
        state = ""
        while time.monotonic() < deadline:
            state = http.get(f"/v1/jobs/{job}", headers=me).json()["state"]
            if state in ("completed", "failed"):
                break
            time.sleep(0.05)
        assert state == "completed"
        out = http.get(f"/v1/jobs/{job}/logs", headers=me)
        assert out.status_code == 200 and out.headers["content-type"].startswith("text/plain")
        assert out.text.strip() == f"gpus=0,1 job={job}"
        assert http.get(f"/v1/jobs/{job}/logs?stream=stderr", headers=me).text == "oops\n"
        assert http.get(f"/v1/jobs/{job}/logs?attempt=2", headers=me).status_code == 404
        assert http.get("/v1/ready").json()["loop"] is True
