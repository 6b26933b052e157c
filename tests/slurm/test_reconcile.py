"""Reconcile after gpupool restarts over a real Slurm: orphans cancelled, lost jobs run again."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from gpupool.service.executors.base import AllocationExited
from gpupool.service.executors.slurm import SlurmExecutor
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.slurm.conftest import SlurmCluster, SlurmSite, wait_for
from tests.slurm.test_executor import collect, ended, final, launch, nodes_of, options, started
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
    slurm_site: SlurmSite, alpha: SlurmCluster, site_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (site_dir / "fleet.yaml").write_text(fleet_yaml(slurm_site, PREFIX))
    (site_dir / "tenants.yaml").write_text(TENANTS)
    settings = ServiceSettings(
        data_dir=site_dir / "data",
        fleet=str(site_dir / "fleet.yaml"),
        tenants=str(site_dir / "tenants.yaml"),
        executor="fleet",
        cycle_interval_ms=100,
    )
    first = Runtime(settings)
    with TestClient(create_app(first)) as http:
        admin = {"Authorization": f"Bearer {first.new_admin_token}"}
        tok = http.post("/v1/tokens", headers=admin, json={"user": "minjun"}).json()["token"]
        me = {"Authorization": f"Bearer {tok}"}

        def submit(seconds: int, status: int = 0) -> str:
            command = ["bash", "-c", f"sleep {seconds}; exit {status}"]
            body = {"project": "vision", "gpus": 1, "models": ["H100"], "command": command}
            r = http.post("/v1/jobs", headers=me, json=body)
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        done_while_down, lost, failed_while_down = submit(2), submit(5), submit(2, 7)

        def job(j: str) -> dict[str, Any]:
            return dict(http.get(f"/v1/jobs/{j}", headers=me).json())

        wait_for(
            lambda: all(job(j)["state"] == "running" for j in (done_while_down, lost, failed_while_down)),
            30,
            "all running",
        )
        alloc_failed = job(failed_while_down)["allocation_id"]
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
    wait_for(lambda: squeue(alpha)[f"{PREFIX}{alloc_failed}"][0][1] == "FAILED", 30, "the failure while down")

    caplog.set_level(logging.INFO)
    second = Runtime(settings)
    with TestClient(create_app(second)) as http:
        token = {"Authorization": f"Bearer {tok}"}

        def state(j: str) -> Callable[[], bool]:
            return lambda: http.get(f"/v1/jobs/{j}", headers=token).json()["state"] == "completed"

        wait_for(state(done_while_down), 30, "the missed exit")
        # its true status, from Slurm: never "exit status unknown"
        wait_for(
            lambda: http.get(f"/v1/jobs/{failed_while_down}", headers=token).json()["state"] == "failed",
            30,
            "the missed failure",
        )
        assert http.get(f"/v1/jobs/{failed_while_down}", headers=token).json()["exit_code"] == 7
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


def test_exits_while_down_keep_their_true_status_from_squeue_then_from_sacct(
    slurm_site: SlurmSite, alpha: SlurmCluster, tmp_path: Path
) -> None:
    """A restarted executor reports the exit code and signal each job really had, never unknown.

    First from ``squeue -t all`` (within MinJobAge), then, once slurmctld has forgotten the
    jobs (its job state removed, as after MinJobAge), from ``sacct``: and never runs them again.
    """
    if slurm_site.accounting is None:
        pytest.skip("no MariaDB/slurmdbd here: the sacct half needs them")
    prefix = f"gpupool-rec-{secrets.token_hex(2)}:"
    opts = options(alpha, accounting="true", comment_prefix=prefix)
    runs = {
        "j1.1": ("sleep 1; exit 7", 7, None),
        "j2.1": ("sleep 1; kill -9 $$", None, 9),
        "j3.1": ("sleep 1", 0, None),
    }
    launches = {
        aid: launch(tmp_path, aid, ["bash", "-c", cmd], [(f"a{k + 1}", [0])])
        for k, (aid, (cmd, _, _)) in enumerate(runs.items())
    }

    def restarted_reports() -> dict[str, tuple[int | None, int | None]]:
        ex = SlurmExecutor("alpha", nodes_of(alpha), opts, tick_s=0.02)
        try:
            for ln in launches.values():  # reconcile relaunches what the database calls running
                ex.launch(ln)
            evs = collect(ex, lambda evs: all(ended(aid)(evs) for aid in runs))
            got = {}
            for aid in runs:
                e = final(evs, aid)
                assert isinstance(e, AllocationExited), e
                assert e.cause == "exited" and e.at_ms > 0
                got[aid] = (e.exit_code, e.signal)
            return got
        finally:
            ex.close()

    def ours() -> list[tuple[str, str]]:
        rows = alpha.run("squeue", "-t", "all", "-h", "-o", "%k|%T").split()
        return [(c.removeprefix(prefix), s) for c, s in (r.split("|") for r in rows) if c.startswith(prefix)]

    first = SlurmExecutor("alpha", nodes_of(alpha), opts, tick_s=0.02)
    for ln in launches.values():
        first.launch(ln)
    collect(first, lambda evs: all(started(aid)(evs) for aid in runs))
    first.close()  # gpupool goes down while the jobs run
    wait_for(lambda: len(ours()) == 3 and all(s in ("COMPLETED", "FAILED") for _, s in ours()), 30, "ends")
    want = {aid: (code, sig) for aid, (_, code, sig) in runs.items()}

    assert restarted_reports() == want  # from squeue
    assert sorted(a for a, _ in ours()) == sorted(runs)  # adopted, not submitted again

    # slurmctld forgets them (as after MinJobAge); only slurmdbd remembers. A young slurmdbd
    # may store a job's start record (which holds the comment) after its end: wait for it.
    def accounted() -> set[str]:
        out = alpha.run("sacct", "-a", "-X", "-n", "-P", "-o", "Comment,State", "--starttime=now-1hour")
        comments = (r.split("|", 1)[0] for r in out.split())
        return {c.removeprefix(prefix) for c in comments if c.startswith(prefix)}

    wait_for(lambda: accounted() >= set(runs), 60, "slurmdbd to record the jobs' comments")
    alpha.stop_controller()
    for f in (alpha.base / "state").glob("job_state*"):
        f.unlink()
    alpha.start_controller(reregister=True)
    assert ours() == []
    assert restarted_reports() == want  # from sacct
    assert ours() == []  # nothing ran again
