"""The Slurm executor without Slurm: parsers, the sbatch line, the REST calls, and a fake controller
that is unreachable, refuses, answers garbage or loses jobs (every one a clear event, never a crash)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpupool.service.executors.base import AllocationExited, AllocationFailed, AllocationStarted, Launch
from gpupool.service.executors.registry import ExecutorRegistry, build_executors
from gpupool.service.executors.slurm import SlurmExecutor, batch_request
from gpupool.service.executors.slurm_client import (
    BatchRequest,
    SlurmCli,
    SlurmError,
    SlurmJob,
    SlurmNode,
    SlurmOptions,
    SlurmRest,
    expand_hostlist,
    parse_jobs,
    parse_nodes,
)

SQUEUE = {
    "meta": {"plugin": {"type": "openapi/v0.0.38"}},
    "errors": [],
    "jobs": [
        {"job_id": 7, "name": "gpupool-j1", "comment": "gpupool:j1.1", "job_state": "RUNNING",
         "state_reason": "None", "exit_code": 0, "nodes": "n[1-2]", "start_time": 100, "end_time": 0,
         "het_job_id": 0, "het_job_offset": 0},
        {"job_id": 8, "name": "gpupool-j2", "comment": "gpupool:j2.1", "job_state": "FAILED",
         "state_reason": "NonZeroExitCode", "exit_code": 768, "nodes": "n3", "start_time": 100,
         "end_time": 110, "het_job_id": 8, "het_job_offset": 0},
        {"job_id": 9, "name": "gpupool-j2", "comment": "gpupool:j2.1", "job_state": "FAILED",
         "state_reason": "None", "exit_code": 0, "nodes": "n4", "start_time": 100, "end_time": 110,
         "het_job_id": 8, "het_job_offset": 1},
    ],
}  # fmt: skip


def test_squeue_json_is_parsed_and_heterogeneous_components_fold_into_one_job() -> None:
    jobs = {j.job_id: j for j in parse_jobs(SQUEUE)}
    assert set(jobs) == {7, 8}
    assert jobs[7].nodes == ("n1", "n2") and jobs[7].state == "RUNNING"
    assert jobs[8].nodes == ("n3", "n4") and jobs[8].exit_code == 3 and jobs[8].signal is None
    assert SlurmJob(1, "", "", "FAILED", "", 9, (), 0, 0).signal == 9


def test_an_error_document_or_a_malformed_one_is_a_transient_slurm_error() -> None:
    down = {
        "errors": [{"description": "Failed while looking for jobs", "source": "slurm_load_jobs"}],
        "jobs": [],
    }
    for doc in (down, {"jobs": "nope"}, {"jobs": [{"name": "no id"}]}, {"nodes": None}):
        with pytest.raises(SlurmError) as err:
            parse_jobs(doc) if "nodes" not in doc else parse_nodes(doc)
        assert err.value.transient


def test_hostlists_expand_like_slurm() -> None:
    assert expand_hostlist("n[1-3,5],gpu07") == ("n1", "n2", "n3", "n5", "gpu07")
    assert expand_hostlist("a[08-10]") == ("a08", "a09", "a10")
    assert expand_hostlist("") == ()


def launch(aid: str = "j1.1", placement: Iterable[tuple[str, tuple[int, ...]]] = (("n1", (0, 1)),)) -> Launch:
    return Launch(
        allocation_id=aid,
        job_id=aid.split(".")[0],
        argv=("python", "train.py", "--lr", "3e-4; rm -rf /"),
        placement=tuple(placement),
        log_dir=Path("/tmp/gp/logs"),
        env={"WANDB_MODE": "offline"},
        walltime_s=90.5,
    )


def test_a_placement_becomes_one_sbatch_line_pinned_to_its_nodes() -> None:
    opts = SlurmOptions.parse({"slurm_conf": "/etc/slurm/a.conf", "partition": "gpu", "mem": "8G",
                               "gres_types": "H100=h100_80g", "sbatch_args": "--reservation=r1"})  # fmt: skip
    gang = (("n1", (0, 1, 2, 3)), ("n2", (0, 1, 2, 3)), ("n3", (4, 5)))
    req = batch_request(launch("j4.2", gang), {"n1": "H100", "n2": "H100", "n3": "H100"}, opts)
    assert isinstance(req, BatchRequest)
    argv = SlurmCli(opts).sbatch_argv(req)
    assert argv[:2] == ["sbatch", "--parsable"]
    first = argv[argv.index("--job-name=gpupool-j4") : argv.index(":")]
    assert first == [
        "--job-name=gpupool-j4", "--comment=gpupool:j4.2", "--no-requeue", "--nodelist=n1,n2", "--nodes=2",
        "--ntasks-per-node=1", "--gres=gpu:h100_80g:4", "--time=0-00:01:31", "--partition=gpu", "--mem=8G",
        "--reservation=r1",
    ]  # fmt: skip
    assert "--nodelist=n3" in argv[argv.index(":") :] and "--gres=gpu:h100_80g:2" in argv
    assert "--output=/tmp/gp/logs/j4.2.out" in argv and "--chdir=/tmp/gp/logs" in argv
    # the argv is quoted into the script, never interpreted by the shell
    assert "exec python train.py --lr '3e-4; rm -rf /'" in req.script
    assert "export WANDB_MODE=offline" in req.script and "export GPUPOOL_PLACEMENT='n1:0,1,2,3;" in req.script
    assert SlurmCli(opts)._env["SLURM_CONF"] == "/etc/slurm/a.conf"


def test_bad_options_are_refused_with_the_key_named() -> None:
    with pytest.raises(ValueError, match="parition"):
        SlurmOptions.parse({"parition": "gpu"})
    with pytest.raises(ValueError, match="poll_interval_s"):
        SlurmOptions.parse({"poll_interval_s": "soon"})


class FakeSlurm:
    """A controller in memory: submit/list/cancel, with failures to order."""

    def __init__(self) -> None:
        self.jobs: dict[int, SlurmJob] = {}
        self.nodes = [SlurmNode("n1", "idle"), SlurmNode("n2", "mixed")]
        self.submitted: list[BatchRequest] = []
        self.cancelled: list[tuple[int, str | None]] = []
        self.fail_submit: list[SlurmError] = []
        self.fail_list: SlurmError | None = None
        self.next_id = 100

    def submit(self, request: BatchRequest) -> int:
        if self.fail_submit:
            raise self.fail_submit.pop(0)
        self.submitted.append(request)
        self.next_id += 1
        nodes = tuple(n for c in request.components for n in c.nodes)
        self.jobs[self.next_id] = SlurmJob(
            self.next_id, request.comment, request.name, "PENDING", "None", 0, nodes, 0, 0
        )
        return self.next_id

    def set(self, job_id: int, state: str, reason: str = "None", status: int = 0) -> None:
        j = self.jobs[job_id]
        start = j.start_s or (1000 if state != "PENDING" else 0)
        self.jobs[job_id] = SlurmJob(job_id, j.comment, j.name, state, reason, status, j.nodes, start, 1010)

    def jobs_(self) -> list[SlurmJob]:
        if self.fail_list:
            raise self.fail_list
        return list(self.jobs.values())

    def nodes_(self) -> list[SlurmNode]:
        if self.fail_list:
            raise self.fail_list
        return list(self.nodes)

    def cancel(self, job_id: int, signal: str | None = None) -> None:
        self.cancelled.append((job_id, signal))

    def accounting(self, job_ids: Iterable[int]) -> list[SlurmJob]:
        return []

    def ended_since(self, since_s: float) -> list[SlurmJob]:
        return []


class Client:
    """FakeSlurm as a SlurmClient (jobs/nodes are methods there, data here)."""

    def __init__(self, fake: FakeSlurm) -> None:
        self.fake = fake
        self.submit = fake.submit
        self.cancel = fake.cancel
        self.accounting = fake.accounting
        self.ended_since = fake.ended_since
        self.jobs = fake.jobs_
        self.nodes = fake.nodes_


def executor(fake: FakeSlurm, **opts: str) -> SlurmExecutor:
    options = SlurmOptions.parse({"poll_interval_s": "0.001", "submit_retry_s": "60", **opts})
    return SlurmExecutor("c", {"n1": "H100", "n2": "H100"}, options, client=Client(fake), start=False)


def step(ex: SlurmExecutor, times: int = 1) -> list[Any]:
    out: list[Any] = []
    for _ in range(times):
        time.sleep(0.002)
        ex._retry_at = 0.0  # no backoff waits in a unit test
        ex.step()
        out += ex.poll()
    return out


def test_lifecycle_against_a_fake_controller(tmp_path: Path) -> None:
    fake = FakeSlurm()
    ex = executor(fake)
    ln = Launch("j1.1", "j1", ("true",), (("n1", (0,)),), tmp_path)
    ex.launch(ln)
    ex.launch(ln)
    step(ex)
    assert len(fake.submitted) == 1 and ex.allocations() == {"j1.1"}
    fake.set(101, "RUNNING")
    assert step(ex) == [AllocationStarted("j1.1", 1_000_000)]
    fake.set(101, "FAILED", status=2 << 8)
    assert step(ex) == [AllocationExited("j1.1", 1_010_000, 2, None)]
    assert ex.allocations() == set()
    fake.set(101, "FAILED", status=2 << 8)
    assert step(ex) == []  # reported once


def test_an_unreachable_controller_is_retried_then_the_job_fails_clearly(tmp_path: Path) -> None:
    fake = FakeSlurm()
    ex = executor(fake, submit_retry_s="0.05")
    fake.fail_submit = [SlurmError("sbatch: Unable to contact slurm controller", transient=True)] * 50
    ex.launch(Launch("j1.1", "j1", ("true",), (("n1", (0,)),), tmp_path))
    events: list[Any] = []
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        events = [e for e in step(ex) if isinstance(e, AllocationFailed)]
    assert events and "Unable to contact slurm controller" in events[0].reason


def test_a_refused_submission_and_a_hopeless_pending_job_fail_with_slurms_words(tmp_path: Path) -> None:
    fake = FakeSlurm()
    ex = executor(fake, hopeless_after_s="0")
    fake.fail_submit = [SlurmError("sbatch: Invalid generic resource (gres) specification", transient=False)]
    ex.launch(Launch("j1.1", "j1", ("true",), (("n1", (0,)),), tmp_path))
    ex.launch(Launch("j2.1", "j2", ("true",), (("n2", (0,)),), tmp_path))
    (failed,) = step(ex)
    assert isinstance(failed, AllocationFailed) and "Invalid generic resource" in failed.reason
    fake.set(101, "PENDING", reason="BadConstraints")
    (hopeless,) = step(ex, 2)
    assert isinstance(hopeless, AllocationFailed) and "BadConstraints" in hopeless.reason
    assert (101, None) in fake.cancelled


def test_garbage_from_the_controller_never_crashes_and_state_resumes(tmp_path: Path) -> None:
    fake = FakeSlurm()
    ex = executor(fake)
    ex.launch(Launch("j1.1", "j1", ("true",), (("n1", (0,)),), tmp_path))
    step(ex)
    fake.fail_list = SlurmError("squeue: squeue printed no JSON ('<html>')", transient=True)
    fake.set(101, "COMPLETED")
    assert step(ex, 3) == []
    fake.fail_list = None
    assert [type(e).__name__ for e in step(ex)] == ["AllocationStarted", "AllocationExited"]


def test_a_job_that_vanishes_before_it_started_is_submitted_again(tmp_path: Path) -> None:
    fake = FakeSlurm()
    ex = executor(fake)
    ex.launch(Launch("j1.1", "j1", ("true",), (("n1", (0,)),), tmp_path))
    step(ex)
    del fake.jobs[101]  # slurmctld lost it
    step(ex, 4)
    assert [r.comment for r in fake.submitted] == ["gpupool:j1.1", "gpupool:j1.1"]
    fake.set(102, "RUNNING")
    step(ex)
    del fake.jobs[102]  # lost after it started: may have run partly, so it is failed, not rerun
    failed = [e for e in step(ex, 4) if isinstance(e, AllocationFailed)]
    assert failed and "no longer knows" in failed[0].reason and len(fake.submitted) == 2


def test_terminate_is_term_then_kill_after_the_grace(tmp_path: Path) -> None:
    fake = FakeSlurm()
    ex = executor(fake)
    ex.launch(Launch("j1.1", "j1", ("sleep", "9"), (("n1", (0,)),), tmp_path))
    step(ex)
    fake.set(101, "RUNNING")
    step(ex)
    ex.terminate("j1.1", 0.05)
    step(ex)
    assert fake.cancelled == [(101, "TERM")]
    time.sleep(0.06)
    step(ex)
    assert fake.cancelled == [(101, "TERM"), (101, "KILL"), (101, None)]
    fake.set(101, "CANCELLED")
    (e,) = step(ex)
    assert isinstance(e, AllocationExited) and e.cause == "terminated"


def test_nodes_drained_or_down_in_slurm_are_reported_once() -> None:
    fake = FakeSlurm()
    ex = executor(fake)
    fake.nodes = [SlurmNode("n1", "idle", ("DRAIN",), "bad fan"), SlurmNode("n2", "down", (), "dead")]
    fake.nodes.append(SlurmNode("other", "down"))  # not in this cluster's fleet: never reported
    events = step(ex)
    assert [(e.node, e.state, e.reason) for e in events] == [
        ("n1", "drained", "Slurm: bad fan"),
        ("n2", "down", "Slurm: dead"),
    ]
    assert step(ex) == []
    fake.nodes = [SlurmNode("n1", "unknown"), SlurmNode("n2", "idle", ("NOT_RESPONDING",))]
    assert step(ex) == []  # what a restarting slurmctld shows: no news
    fake.nodes = [SlurmNode("n1", "idle"), SlurmNode("n2", "idle")]
    assert [(e.node, e.state) for e in step(ex)] == [("n1", "up"), ("n2", "up")]


def test_rest_submits_with_the_jwt_and_a_refused_token_is_not_retried(tmp_path: Path) -> None:
    token = tmp_path / "jwt"
    token.write_text("tok-1\n")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers["X-SLURM-USER-TOKEN"] == "expired":
            return httpx.Response(401, text="Authentication failure")
        assert "/slurm/v0.0.39/" in request.url.path
        if request.url.path.endswith("/job/submit"):
            return httpx.Response(200, json={"errors": [], "job_id": 42})
        return httpx.Response(200, json=SQUEUE)

    opts = SlurmOptions.parse(
        {"rest_url": "http://slurm.test:6820", "jwt_token_file": str(token), "rest_user": "gp", "mem": "1G"}
    )
    rest = SlurmRest(opts, transport=httpx.MockTransport(handler))
    req = batch_request(launch(), {"n1": "H100"}, opts)
    assert isinstance(req, BatchRequest)
    assert rest.submit(req) == 42
    body = json.loads(seen[0].content)
    assert seen[0].headers["X-SLURM-USER-NAME"] == "gp" and seen[0].headers["X-SLURM-USER-TOKEN"] == "tok-1"
    assert body["job"]["comment"] == "gpupool:j1.1" and body["job"]["required_nodes"] == ["n1"]
    assert body["job"]["gres"] == "gpu:h100:2" and body["job"]["time_limit"] == 2
    assert body["job"]["memory_per_node"] == 1024 and body["job"]["requeue"] is False
    assert len(rest.jobs()) == 2
    token.write_text("expired")  # read on every request: rotation needs no restart
    with pytest.raises(SlurmError) as err:
        rest.jobs()
    assert not err.value.transient and "expired or wrong JWT" in str(err.value)
    # Slurm 22.05's slurmrestd cannot pin nodes: refused when the service starts, not per job
    with pytest.raises(ValueError, match="cannot pin a job to nodes"):
        SlurmOptions.parse({"rest_url": "http://slurm.test:6820", "rest_api": "v0.0.38"})


def test_the_registry_builds_per_backend_and_names_the_cluster_on_bad_options(tmp_path: Path) -> None:
    from gpupool.fleetfile import load_fleet

    fleet = load_fleet("demo")  # kisti is slurm, sejong kubernetes
    local = build_executors(fleet, state_dir=tmp_path, per_cluster=False)
    assert list(local) == ["*"] and local["*"].backend == "local"
    with pytest.raises(ValueError, match="cluster 'kisti': no executor for backend 'slurm'"):
        build_executors(fleet, state_dir=tmp_path, registry=ExecutorRegistry())


def test_an_old_node_fail_found_at_start_takes_no_node_down(tmp_path: Path) -> None:
    fake = FakeSlurm()
    fake.jobs[5] = SlurmJob(5, "gpupool:j1.1", "gpupool-j1", "NODE_FAIL", "NodeDown", 0, ("n1",), 900, 950)
    ex = executor(fake)  # a restart: the job ended (and was handled) long ago
    assert not [e for e in ex.poll() if hasattr(e, "node")]  # no NodeChanged for a node long back
    assert ex.allocations() == set()
    fake.jobs[6] = SlurmJob(6, "gpupool:j2.1", "gpupool-j2", "RUNNING", "None", 0, ("n2",), 1000, 0)
    step(ex)
    fake.set(6, "NODE_FAIL", "NodeDown")
    assert [(e.node, e.state) for e in step(ex) if hasattr(e, "node")] == [("n2", "down"), ("n2", "up")]


def test_a_mapped_account_is_in_every_component_with_its_home_and_work_dir() -> None:
    from gpupool.service.executors.job_account import JobAccount

    alice = JobAccount("alice", 2001, 3001, frozenset({3001}), "/home/alice")
    opts = SlurmOptions()
    gang = (("n1", (0, 1)), ("n2", (0,)))  # unequal counts: two components
    req = batch_request(launch("j5.1", gang), {"n1": "H100", "n2": "H100"}, opts, alice)
    assert isinstance(req, BatchRequest) and (req.uid, req.gid) == (2001, 3001)
    argv = SlurmCli(opts).sbatch_argv(req)
    assert argv.count("--uid=2001") == 2 and argv.count("--gid=3001") == 2
    assert "--chdir=/tmp/gp/logs/work" in argv  # the account's own directory, not the log dir
    assert "export HOME=/home/alice" in req.script and "export USER=alice" in req.script
    plain = batch_request(launch("j5.1"), {"n1": "H100"}, opts)
    assert isinstance(plain, BatchRequest) and plain.uid is None
    assert not [a for a in SlurmCli(opts).sbatch_argv(plain) if a.startswith(("--uid", "--gid"))]


def test_slurmrestd_refuses_a_mapped_account_rather_than_run_it_as_the_token_user() -> None:
    opts = SlurmOptions.parse({"rest_url": "http://x", "jwt_token_file": "/nonexistent"})
    req = BatchRequest("n", "c", "#!/bin/sh\n", (), "/o", "/e", "/", uid=2001, gid=2001)
    with pytest.raises(SlurmError, match="mapped Unix account") as err:
        SlurmRest(opts).submit(req)
    assert not err.value.transient


def test_a_relaunch_of_a_job_accounting_saw_end_reports_that_end_and_submits_nothing() -> None:
    fake = FakeSlurm()
    ended = [
        SlurmJob(50, "gpupool:j1.1", "gpupool-j1", "FAILED", "", 7 << 8, ("n1",), 1000, 1010),
        SlurmJob(51, "gpupool:j2.1", "gpupool-j2", "FAILED", "", 9, ("n1",), 1000, 1012),
        SlurmJob(52, "other:j3.1", "x", "COMPLETED", "", 0, ("n1",), 1000, 1012),  # not ours
    ]
    fake.ended_since = lambda since_s: ended  # type: ignore[method-assign]
    ex = executor(fake, accounting="true")
    ex.launch(launch("j1.1"))
    ex.launch(launch("j2.1"))
    ex.launch(launch("j3.1"))
    ex.step()
    evs = {e.allocation_id: e for e in ex.poll() if isinstance(e, AllocationExited)}
    assert (evs["j1.1"].exit_code, evs["j1.1"].signal, evs["j1.1"].at_ms) == (7, None, 1_010_000)
    assert (evs["j2.1"].exit_code, evs["j2.1"].signal) == (None, 9)
    assert [r.comment for r in fake.submitted] == ["gpupool:j3.1"]  # only the one never run
