"""Serving this machine: ``--simulated-gpus N`` and ``--real-gpus`` make the fleet this machine.

A job placed on this machine's fleet names a node the local executor has, so it runs pinned to
the very devices (with the demo fleet a real GPU job was refused: "node ... is not this
machine"). The default tenancy is one project whose member is the user running the service.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gpupool.core.fleet import FleetError
from gpupool.service import local_fleet
from gpupool.service.api.app import create_app
from gpupool.service.executors import sandbox
from gpupool.service.executors.gpus import GpuDevice, LocalMachine
from gpupool.service.local_fleet import DEFAULT_PROJECT, machine_user
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings

GPUPOOL = Path(sys.executable).parent / "gpupool"


def test_simulated_machine_runs_a_job_pinned_on_its_own_node(tmp_path: Path) -> None:
    settings = ServiceSettings(data_dir=tmp_path, machine="simulated", machine_gpus=4, cycle_interval_ms=20)
    runtime = Runtime(settings)
    assert runtime.machine is not None
    ((node, devices),) = runtime.machine.nodes
    assert [n.name for n in runtime.fleet.nodes] == [node] and runtime.fleet.gpus_by_model() == {"H100": 4}
    with TestClient(create_app(runtime)) as http:
        admin = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=admin, json={"user": machine_user()}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}
        body = {"project": "default", "gpus": 2, "command": ["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"]}
        r = http.post("/v1/jobs", headers=me, json=body)
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["project"] == DEFAULT_PROJECT
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and job["state"] not in ("completed", "failed"):
            time.sleep(0.05)
            job = http.get(f"/v1/jobs/{job['id']}", headers=me).json()
        assert job["state"] == "completed", job
        (place,) = job["placement"]
        assert place["node"] == node
        want = ",".join(devices[i].visible_id for i in place["accelerators"])
        assert http.get(f"/v1/jobs/{job['id']}/logs", headers=me).text.strip() == want


def test_real_gpus_make_the_fleet_of_what_nvml_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    devices = tuple(GpuDevice(i, f"GPU-{i}", "NVIDIA H100 80GB HBM3", "H100", 81559) for i in range(2))
    found = LocalMachine(nodes=(("gpuhost", devices),))
    monkeypatch.setattr(local_fleet, "local_machine", lambda gpus, model: found)
    fleet, tenancy, machine = local_fleet.machine_scenario(ServiceSettings(data_dir=tmp_path, machine="real"))
    assert machine is found
    assert [(n.name, n.model, n.gpus) for n in fleet.nodes] == [("gpuhost", "H100", 2)]
    project = tenancy.resolve(DEFAULT_PROJECT)
    assert project is not None and machine_user() in tenancy.nodes[project].members


def test_real_gpus_without_a_gpu_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_fleet, "local_machine", lambda gpus, model: LocalMachine(nodes=()))
    with pytest.raises(FleetError, match="NVML"):
        Runtime(ServiceSettings(data_dir=tmp_path, machine="real"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--real-gpus", "--simulated-gpus", "2"], "not both"),
        (["--simulated-gpus", "2", "--fleet", "demo"], "leave out --fleet"),
    ],
)
def test_serve_refuses_contradicting_machine_options(tmp_path: Path, args: list[str], says: str) -> None:
    r = subprocess.run(
        [str(GPUPOOL), "serve", "--data-dir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_two_half_gpu_jobs_run_at_once_on_the_one_gpu(tmp_path: Path) -> None:
    """The local fleet's one H100 may be shared: two 0.5 jobs run on it together, pinned to the
    same device (time-slicing: nothing enforces the halves, the scheduler accounts for them)."""
    settings = ServiceSettings(data_dir=tmp_path, machine="simulated", machine_gpus=1, cycle_interval_ms=20)
    runtime = Runtime(settings)
    assert runtime.machine is not None
    ((node, devices),) = runtime.machine.nodes
    # each job holds its half for a few seconds and says which device it was given
    code = "import os, time; print(os.environ.get('CUDA_VISIBLE_DEVICES', '')); time.sleep(4)"
    with TestClient(create_app(runtime)) as http:
        admin = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=admin, json={"user": machine_user()}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}
        ids = []
        for mark in ("a", "b"):
            body = {
                "project": "default",
                "gpus": 1,
                "gpu_fraction": 0.5,
                "name": mark,
                "command": [sandbox.job_python(), "-c", code],
            }
            r = http.post("/v1/jobs", headers=me, json=body)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 30
        together = False
        jobs = [http.get(f"/v1/jobs/{i}", headers=me).json() for i in ids]
        while time.monotonic() < deadline and any(j["state"] not in ("completed", "failed") for j in jobs):
            together = together or all(j["state"] == "running" for j in jobs)
            time.sleep(0.05)
            jobs = [http.get(f"/v1/jobs/{i}", headers=me).json() for i in ids]
        assert together, "the two halves never ran at the same time"
        assert [j["state"] for j in jobs] == ["completed", "completed"], jobs
        for j in jobs:
            (place,) = j["placement"]
            assert place["node"] == node and place["accelerators"] == [0]
        # both were pinned to the one device
        for i in ids:
            assert http.get(f"/v1/jobs/{i}/logs", headers=me).text.strip() == devices[0].visible_id
