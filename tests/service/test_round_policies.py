"""Round-based policies in the live service: a setting checked against the registry, real jobs.

``gpupool serve --policy gavel-las`` (or ``GPUPOOL_POLICY``) runs Gavel's rounds in the
loop; a round stops or moves a running job only when that gains more than the stop costs
(``gpupool.core.round_leases``), so real processes are not killed every round for nothing,
and a job that waits because another kept its lease is told so, with the figures.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gpupool.core.policy import POLICIES
from gpupool.service.api.app import create_app
from gpupool.service.executors import sandbox
from gpupool.service.local_fleet import machine_user
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings

GPUPOOL = Path(sys.executable).parent / "gpupool"


def test_the_policy_setting_is_checked_against_the_registry(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:
        ServiceSettings(data_dir=tmp_path, policy="gavel-nope")
    msg = str(e.value)
    assert "unknown policy 'gavel-nope'" in msg and all(p in msg for p in POLICIES)
    ok = ServiceSettings(data_dir=tmp_path, policy="gavel-las", round_ms=2000, restart_overhead_s=5)
    runtime = Runtime(ok, run_loop=False)
    assert (runtime.config.policy, runtime.config.round_ms, runtime.config.restart_overhead_ms) == (
        "gavel-las",
        2000,
        5000,
    )
    # the policy's own round where none is given (Gavel's 6 minutes)
    own = Runtime(ServiceSettings(data_dir=tmp_path, policy="gavel-las"), run_loop=False)
    assert own.config.round_ms == 360_000


@pytest.mark.slow
def test_serve_refuses_an_unknown_policy_naming_the_registered_ones(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(GPUPOOL), "serve", "--data-dir", str(tmp_path), "--policy", "gavel-nope"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "400"},
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "policy" in r.stderr and "unknown policy 'gavel-nope'" in r.stderr and "gavel-las" in r.stderr
    assert "Traceback" not in r.stderr


def _job(http: TestClient, me: dict[str, str], job_id: str) -> Any:
    return http.get(f"/v1/jobs/{job_id}", headers=me).json()


@pytest.mark.slow
def test_gavel_las_runs_real_jobs_and_its_rounds_do_not_stop_them_for_nothing(tmp_path: Path) -> None:
    # two pretend GPUs, rounds of a second: three 1-GPU jobs of 4 s that never checkpoint.
    # Without the lease rule each round would stop a running job for the waiting one.
    settings = ServiceSettings(
        data_dir=tmp_path,
        machine="simulated",
        machine_gpus=2,
        cycle_interval_ms=20,
        policy="gavel-las",
        round_ms=1000,
    )
    runtime = Runtime(settings)
    with TestClient(create_app(runtime)) as http:
        admin = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=admin, json={"user": machine_user()}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}
        code = "import time; time.sleep(4); print('done')"
        ids = []
        for name in ("a", "b", "c"):
            body = {
                "project": "default",
                "name": name,
                "gpus": 1,
                "walltime_s": 60,
                "command": [sandbox.job_python(), "-c", code],
            }
            r = http.post("/v1/jobs", headers=me, json=body)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            time.sleep(0.1)  # a and b start first, c waits
        details: list[str] = []
        deadline = time.monotonic() + 45
        jobs = [_job(http, me, i) for i in ids]
        while time.monotonic() < deadline and any(j["state"] not in ("completed", "failed") for j in jobs):
            time.sleep(0.1)
            jobs = [_job(http, me, i) for i in ids]
            details += [j["detail"] for j in jobs if j["state"] == "pending"]
        assert [j["state"] for j in jobs] == ["completed"] * 3, jobs
        # every job ran once, to its end: no round stopped one
        assert [(j["attempt"], j["preemptions"]) for j in jobs] == [(1, 0)] * 3
        for j in jobs:
            assert http.get(f"/v1/jobs/{j['id']}/logs", headers=me).text.strip() == "done"
        # the waiting job was told why, with the figures that kept the running one
        kept = [d for d in details if "keeps its lease" in d]
        assert kept, details
        assert "hands a waiting job 1 s (one round) <= its cost" in kept[-1]
        assert "restart 30 s" in kept[-1]
