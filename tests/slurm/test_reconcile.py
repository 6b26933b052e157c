"""Reconcile after gpupool restarts over a real Slurm: orphans cancelled, lost jobs run again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.slurm.conftest import SlurmCluster, SlurmSite, wait_for
from tests.slurm.test_federation import TENANTS, fleet_yaml

pytestmark = pytest.mark.slurm
PREFIX = "gpupool-rec:"


def squeue(c: SlurmCluster) -> dict[str, list[tuple[str, str]]]:
    """comment -> [(job id, state)] for every job Slurm still lists."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in c.run("squeue", "-t", "all", "-h", "-o", "%i|%k|%T").splitlines():
        jid, comment, state = line.split("|")
        out.setdefault(comment, []).append((jid, state))
    return out


def test_restart_cancels_orphans_reports_missed_exits_and_reruns_lost_jobs(
    slurm_site: SlurmSite, alpha: SlurmCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "fleet.yaml").write_text(fleet_yaml(slurm_site, PREFIX))
    (tmp_path / "tenants.yaml").write_text(TENANTS)
    settings = ServiceSettings(
        data_dir=tmp_path / "data",
        fleet=str(tmp_path / "fleet.yaml"),
        tenants=str(tmp_path / "tenants.yaml"),
        executor="fleet",
        cycle_interval_ms=100,
    )
    first = Runtime(settings)
    with TestClient(create_app(first)) as http:
        admin = {"Authorization": f"Bearer {first.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=admin, json={"user": "minjun"}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}

        def submit(seconds: int) -> str:
            body = {"project": "vision", "gpus": 1, "models": ["H100"], "command": ["sleep", str(seconds)]}
            r = http.post("/v1/jobs", headers=me, json=body)
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        done_while_down, lost = submit(2), submit(5)

        def job(j: str) -> dict[str, Any]:
            return dict(http.get(f"/v1/jobs/{j}", headers=me).json())

        wait_for(
            lambda: all(job(j)["state"] == "running" for j in (done_while_down, lost)), 30, "both running"
        )
        alloc_done, alloc_lost = job(done_while_down)["allocation_id"], job(lost)["allocation_id"]
        wait_for(lambda: f"{PREFIX}{alloc_lost}" in squeue(alpha), 30, "the Slurm job")
    # gpupool is down. Meanwhile: one job ends, one Slurm job stops being gpupool's (as if
    # slurmctld had lost it), and a gpupool-looking job appears that gpupool never made.
    ((lost_id, _),) = squeue(alpha)[f"{PREFIX}{alloc_lost}"]
    alpha.run("scontrol", "update", f"jobid={lost_id}", "comment=not-gpupool-any-more")
    alpha.run("scancel", lost_id)
    orphan = alpha.run(
        "sbatch",
        "--parsable",
        f"--comment={PREFIX}j999.1",
        "--mem=1G",
        "--nodelist=a3",
        "--output=/dev/null",
        "--wrap",
        "sleep 60",
    ).strip()
    wait_for(lambda: squeue(alpha)[f"{PREFIX}{alloc_done}"][0][1] == "COMPLETED", 30, "the exit while down")

    caplog.set_level(logging.INFO)
    second = Runtime(settings)
    with TestClient(create_app(second)) as http:
        token = {"Authorization": f"Bearer {tok}"}

        def state(j: str) -> Callable[[], bool]:
            return lambda: http.get(f"/v1/jobs/{j}", headers=token).json()["state"] == "completed"

        wait_for(state(done_while_down), 30, "the missed exit")
        wait_for(state(lost), 60, "the lost job to run again and complete")
        jobs = squeue(alpha)
        # the orphan got TERM (it dies of it: FAILED) or was cancelled outright
        assert [s for _, s in jobs[f"{PREFIX}j999.1"]] in (["CANCELLED"], ["FAILED"])
        assert [s for _, s in jobs[f"{PREFIX}{alloc_lost}"]] == ["COMPLETED"]  # run once more, once
        assert len(jobs[f"{PREFIX}{alloc_done}"]) == 1  # never run twice
        assert orphan == jobs[f"{PREFIX}j999.1"][0][0]
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"reconcile: relaunching {alloc_lost}" in m for m in messages)
    assert any("reconcile: terminating j999.1" in m for m in messages)
