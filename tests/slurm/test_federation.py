"""Federation end to end: the real service over two real Slurm clusters, with faults.

50 jobs of mixed sizes from four tenants go in through the HTTP API (the real app over a
``Runtime`` with ``executor=fleet``); gpupool picks the cluster (alpha: H100, beta: H200) and
nodes, Slurm runs them. Meanwhile alpha's slurmctld is killed (SIGKILL) and restarted, and a
node of beta is marked DOWN and resumed. Every job must complete exactly once, and the
GPU-hours gpupool bills each tenant must match what sacct (slurmdbd) recorded.
"""

from __future__ import annotations

import pwd
import random
import signal
import stat
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from gpupool.service.identity import project_account_name
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.slurm.conftest import SlurmCluster, SlurmSite

pytestmark = pytest.mark.slurm
PREFIX = "gpupool-fed:"

TENANTS = """
name: federation
sectors:
  academia:
    name: Academia
    organisations:
      snu:
        name: SNU
        projects:
          vision: {name: Vision, members: [minjun]}
          nlp: {name: NLP, members: [hayoon]}
  industry:
    name: Industry
    organisations:
      upstage:
        name: Upstage
        projects:
          solar: {name: Solar, members: [hwan]}
      naver:
        name: NAVER
        projects:
          hyperclova: {name: HyperCLOVA, members: [sujin]}
"""
USERS = {"minjun": "vision", "hayoon": "nlp", "hwan": "solar", "sujin": "hyperclova"}
#: gpupool bills an allocation from Slurm's start_time to its end_time (the loop takes the
#: engine's times) and sacct's ElapsedRaw is the same difference; both are whole seconds, and
#: gpupool's start is never before its own decision: up to 1 s per allocation. A preempted
#: allocation (the DOWN node) is closed at gpupool's decision, up to a cycle or two after
#: Slurm's NODE_FAIL.
SLACK_S = 1.0
PREEMPTED_SLACK_S = 2.0


def fleet_yaml(site: SlurmSite, prefix: str) -> str:
    """Both clusters; ``prefix`` marks this service's Slurm jobs (each test's database starts
    at j1, and Slurm still lists the jobs of earlier tests). No accounts file: the jobs run as
    their projects' own accounts, which this site's nodes know (they are this host), hence
    ``project_accounts: true``."""

    def cluster(c: SlurmCluster, model: str) -> str:
        return f"""
      - name: {c.name}
        backend: slurm
        options: {{slurm_conf: "{c.conf}", mem: 1G, poll_interval_s: 0.3, command_timeout_s: 10,
                   comment_prefix: "{prefix}",
                   project_accounts: true}}
        blocks:
          - name: ib0
            racks:
              - name: r0
                nodes: {{count: {c.nodes}, model: {model}, gpus: 4, name: "{c.prefix}{{1..{c.nodes}}}"}}"""

    return (
        "name: federation\nsites:\n  - name: KISTI\n    clusters:"
        + cluster(site.clusters["alpha"], "H100")
        + cluster(site.clusters["beta"], "H200")
        + "\n"
    )


@pytest.fixture
def service(slurm_site: SlurmSite, site_dir: Path) -> Iterator[tuple[TestClient, Runtime]]:
    (site_dir / "fleet.yaml").write_text(fleet_yaml(slurm_site, PREFIX))
    (site_dir / "tenants.yaml").write_text(TENANTS)
    settings = ServiceSettings(
        data_dir=site_dir / "data",
        fleet=str(site_dir / "fleet.yaml"),
        tenants=str(site_dir / "tenants.yaml"),
        executor="fleet",
        cycle_interval_ms=100,
        terminate_grace_s=2,
    )
    runtime = Runtime(settings)
    with TestClient(create_app(runtime)) as http:
        yield http, runtime
    for c in slurm_site.clusters.values():
        if "UP" not in c.run("scontrol", "ping", check=False):
            c.start_controller(reregister=True)
        for n in c.node_names:
            c.run("scontrol", "update", f"nodename={n}", "state=resume", check=False)
        c.cancel_all()


def assert_job_files_private(runtime: Runtime, jobs: dict[str, dict[str, Any]]) -> None:
    """The data directory and logs/ are searchable, not listable (0711), for the jobs' accounts
    to reach their log directories; the database stays 0600; each job's directory is 0710 to
    its project's account's group and its output 0600 owned by that account (ADR 0005)."""
    data = runtime.settings.data_dir

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert (mode(data), mode(data / "logs"), mode(data / "gpupool.db")) == (0o711, 0o711, 0o600)
    for j, x in jobs.items():
        acct = pwd.getpwnam(project_account_name(x["project"]))
        log_dir = data / "logs" / j
        st = log_dir.stat()
        assert (mode(log_dir), st.st_uid, st.st_gid) == (0o710, 0, acct.pw_gid), j
        out = (log_dir / f"{x['allocation_id']}.out").stat()
        assert (stat.S_IMODE(out.st_mode), out.st_uid) == (0o600, acct.pw_uid), j


def sacct(site: SlurmSite) -> list[dict[str, str]]:
    c = site.clusters["alpha"]
    fmt = "JobID,Cluster,Comment,State,ElapsedRaw,AllocTRES,Start,End"
    out = c.run(
        "sacct", "-a", "-X", "-P", "-n", "-M", "alpha,beta", "-S", "now-3hours", "-E", "now+1hours", "-o", fmt
    )
    keys = fmt.split(",")
    return [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines() if line.strip()]


def gpus_of(tres: str) -> int:
    for part in tres.split(","):
        k, _, v = part.partition("=")
        if k == "gres/gpu":
            return int(v)
    return 0


def test_fifty_jobs_over_two_slurm_clusters_with_faults(
    slurm_site: SlurmSite, service: tuple[TestClient, Runtime]
) -> None:
    if slurm_site.accounting is None:
        pytest.skip("no MariaDB/slurmdbd here: sacct, which this test compares against, needs them")
    http, runtime = service
    alpha, beta = slurm_site.clusters["alpha"], slurm_site.clusters["beta"]
    admin = {"Authorization": f"Bearer {runtime.new_admin_token}"}
    auth = {}
    for user in USERS:
        tok = http.post("/v1/tokens", headers=admin, json={"user": user}).json()["token"]
        auth[user] = {"Authorization": f"Bearer {tok}"}
    rng = random.Random(5)
    jobs: dict[str, str] = {}  # job id -> user
    t_start = time.time()
    for i in range(50):
        user = rng.choice(sorted(USERS))
        body: dict[str, Any] = {
            "project": USERS[user],
            "gpus": rng.choice([1, 1, 2, 2, 3, 4, 4, 6, 8]),
            "command": ["sleep", str(rng.choice([2, 3, 4]))],
            "walltime_s": 300,
        }
        if i % 5 == 0:
            body["models"] = [rng.choice(["H100", "H200"])]
        r = http.post("/v1/jobs", headers={**auth[user], "Idempotency-Key": f"k{i}"}, json=body)
        assert r.status_code == 201, r.text
        jobs[r.json()["id"]] = user

    def states() -> dict[str, dict[str, Any]]:
        return {j: http.get(f"/v1/jobs/{j}", headers=auth[u]).json() for j, u in jobs.items()}

    def wait(cond: Any, timeout: float, what: str) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = states()
            if cond(now):
                return now
            time.sleep(0.2)
        raise AssertionError(
            f"timed out waiting for {what}: {Counter(s['state'] for s in states().values())}"
        )

    # Fault 1: alpha's controller dies while its jobs run, and comes back 4 s later.
    wait(
        lambda s: sum(j["state"] == "running" and j["cluster"] == "alpha" for j in s.values()) >= 3,
        60,
        "alpha",
    )
    down_from = time.time()
    alpha.stop_controller(signal.SIGTERM)
    time.sleep(4)
    down_to = time.time()
    alpha.start_controller(reregister=True)

    # Fault 2: a busy node of beta is marked DOWN: its jobs go back to the queue and run elsewhere.
    def on_b2(s: dict[str, dict[str, Any]]) -> list[str]:
        return [
            j
            for j, x in s.items()
            if x["state"] == "running" and any(p["node"] == "b2" for p in x["placement"])
        ]

    hit = on_b2(wait(lambda s: bool(on_b2(s)), 60, "a job on b2"))
    b2_down_at = time.time()
    beta.set_node("b2", "down", "test")
    time.sleep(1.5)
    beta.run("scontrol", "update", "nodename=b2", "state=resume", check=False)

    final = wait(
        lambda s: all(x["state"] in ("completed", "failed", "cancelled") for x in s.values()), 150, "all"
    )
    elapsed = time.time() - t_start
    assert Counter(x["state"] for x in final.values()) == {"completed": 50}, {
        j: (x["state"], x["detail"]) for j, x in final.items() if x["state"] != "completed"
    }
    assert {x["cluster"] for x in final.values()} == {"alpha", "beta"}
    assert_job_files_private(runtime, final)

    # sacct: each gpupool job completed exactly once, on the cluster gpupool says, and no
    # allocation was ever submitted twice.
    by_alloc: dict[str, list[dict[str, str]]] = defaultdict(list)
    deadline = time.monotonic() + 30
    while True:
        rows = [r for r in sacct(slurm_site) if r["Comment"].startswith(PREFIX)]
        by_alloc = defaultdict(list)
        for r in rows:
            by_alloc[r["Comment"].removeprefix(PREFIX)].append(r)
        done = {a for a, rs in by_alloc.items() if any(r["State"] == "COMPLETED" for r in rs)}
        if all(x["allocation_id"] in done for x in final.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ours = {a: rs for a, rs in by_alloc.items() if a.split(".")[0] in jobs}
    # a heterogeneous job (unequal GPUs per node) is one Slurm job of several components: 12+0, 12+1
    slurm_jobs = {a: {(r["Cluster"], r["JobID"].split("+")[0]) for r in rs} for a, rs in ours.items()}
    assert all(len(ids) == 1 for ids in slurm_jobs.values()), {
        a: i for a, i in slurm_jobs.items() if len(i) > 1
    }
    completed_per_job = Counter(
        a.split(".")[0] for a, rs in ours.items() if all(r["State"] == "COMPLETED" for r in rs)
    )
    assert completed_per_job == dict.fromkeys(jobs, 1)
    # The jobs running on b2 were requeued off it, unless they had just completed there (they
    # sleep 2-4 s): then they completed once, before the node went down.
    down_stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(b2_down_at + 1))
    for j in hit:
        if final[j]["preemptions"] == 0:
            first = ours[f"{j}.1"]  # its first allocation (one record per component)
            assert all(r["State"] == "COMPLETED" and r["End"] <= down_stamp for r in first), (j, first)
    for x in final.values():
        assert {r["Cluster"] for r in ours[x["allocation_id"]]} == {x["cluster"]}
    # the other cluster kept working while alpha's controller was down
    beta_recs = [r for rs in ours.values() for r in rs if r["Cluster"] == "beta"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(down_from))
    stamp_to = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(down_to))
    assert any(stamp <= r["Start"] <= stamp_to or stamp <= r["End"] <= stamp_to for r in beta_recs)

    # usage: gpupool's GPU-hours per tenant against sacct's elapsed x GPUs
    usage = http.get("/v1/usage?by=project", headers=admin).json()
    ours_by_project: dict[str, float] = defaultdict(float)
    slack: dict[str, float] = defaultdict(float)
    for a, recs in ours.items():
        project = final[a.split(".")[0]]["project"]
        for rec in recs:
            ours_by_project[project] += int(rec["ElapsedRaw"]) * gpus_of(rec["AllocTRES"]) / 3600
            extra = PREEMPTED_SLACK_S if rec["State"] != "COMPLETED" else 0.0
            slack[project] += (SLACK_S + extra) * gpus_of(rec["AllocTRES"]) / 3600
    billed = {i["key"]: i["gpu_hours"] for i in usage["items"] if i["gpu_hours"] > 0}
    assert set(billed) == set(ours_by_project)
    report = []
    for project, hours in sorted(billed.items()):
        diff = hours - ours_by_project[project]
        report.append(
            f"{project}: gpupool {hours * 3600:.0f} GPU-s, sacct {ours_by_project[project] * 3600:.0f}"
        )
        assert abs(diff) <= slack[project], report
    print(f"\n50 jobs in {elapsed:.1f} s over alpha and beta; " + "; ".join(report))
