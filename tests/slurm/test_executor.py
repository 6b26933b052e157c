"""The Slurm executor against a real slurmctld and slurmd: submit, states, cancel, adopt, faults."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    ExecutorEvent,
    Launch,
    NodeChanged,
)
from gpupool.service.executors.local import log_paths
from gpupool.service.executors.slurm import SlurmExecutor
from gpupool.service.executors.slurm_client import SlurmOptions
from tests.slurm.conftest import SlurmCluster

pytestmark = pytest.mark.slurm
PREFIX = "gpupool-unit:"


def options(c: SlurmCluster, **more: object) -> SlurmOptions:
    return SlurmOptions.parse(
        {
            "slurm_conf": str(c.conf),
            "mem": "1G",
            "poll_interval_s": "0.2",
            "command_timeout_s": "20",
            # the service tests number their jobs j1... too; Slurm lists ended jobs for minutes
            "comment_prefix": PREFIX,
            **{k: str(v) for k, v in more.items()},
        }
    )


def nodes_of(c: SlurmCluster, model: str = "H100") -> dict[str, str]:
    return dict.fromkeys(c.node_names, model)


@pytest.fixture
def executor(alpha: SlurmCluster) -> Iterator[SlurmExecutor]:
    ex = SlurmExecutor("alpha", nodes_of(alpha), options(alpha), tick_s=0.02)
    yield ex
    ex.close()


def launch(
    tmp_path: Path, aid: str, argv: list[str], placement: list[tuple[str, list[int]]], **kw: object
) -> Launch:
    return Launch(
        allocation_id=aid,
        job_id=aid.split(".")[0],
        argv=tuple(argv),
        placement=tuple((n, tuple(ids)) for n, ids in placement),
        log_dir=tmp_path / "logs",
        **kw,  # type: ignore[arg-type]
    )


def collect(
    ex: SlurmExecutor, done: Callable[[list[ExecutorEvent]], bool], timeout: float = 30
) -> list[ExecutorEvent]:
    got: list[ExecutorEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.extend(ex.poll())
        if done(got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out; events so far: {got}")


def ended(aid: str) -> Callable[[list[ExecutorEvent]], bool]:
    return lambda evs: any(
        isinstance(e, AllocationExited | AllocationFailed) and e.allocation_id == aid for e in evs
    )


def started(aid: str) -> Callable[[list[ExecutorEvent]], bool]:
    return lambda evs: any(isinstance(e, AllocationStarted) and e.allocation_id == aid for e in evs)


def final(evs: list[ExecutorEvent], aid: str) -> ExecutorEvent:
    (e,) = [e for e in evs if isinstance(e, AllocationExited | AllocationFailed) and e.allocation_id == aid]
    return e


def test_a_placement_runs_pinned_with_its_gres_and_environment(
    executor: SlurmExecutor, alpha: SlurmCluster, tmp_path: Path
) -> None:
    script = 'echo "node=$SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES job=$GPUPOOL_JOB_ID x=$X"'
    ln = launch(tmp_path, "j1.1", ["bash", "-c", script], [("a2", [0, 1])], env={"X": "it's"})
    executor.launch(ln)
    executor.launch(ln)  # idempotent by allocation id
    evs = collect(executor, ended("j1.1"))
    assert started("j1.1")(evs)
    e = final(evs, "j1.1")
    assert isinstance(e, AllocationExited) and e.succeeded
    out, _ = log_paths(tmp_path / "logs", "j1.1")
    assert out.read_text().strip() == "node=a2 gpus=0,1 job=j1 x=it's"
    rows = alpha.run("squeue", "-t", "all", "-h", "-o", "%N|%b|%k|%j").splitlines()
    assert rows == [f"a2|gres:gpu:h100:2|{PREFIX}j1.1|gpupool-j1"]


def test_exit_codes_and_a_multi_node_gang_with_unequal_shares(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    executor.launch(launch(tmp_path, "j2.1", ["bash", "-c", "exit 3"], [("a1", [0])]))
    gang = [("a1", [1, 2, 3]), ("a3", [0])]  # 3 + 1 accelerators: a heterogeneous job
    executor.launch(launch(tmp_path, "j3.1", ["bash", "-c", 'echo "$GPUPOOL_PLACEMENT"'], gang))
    evs = collect(executor, lambda evs: ended("j2.1")(evs) and ended("j3.1")(evs))
    e2, e3 = final(evs, "j2.1"), final(evs, "j3.1")
    assert isinstance(e2, AllocationExited) and e2.exit_code == 3 and e2.cause == "exited"
    assert isinstance(e3, AllocationExited) and e3.succeeded
    assert log_paths(tmp_path / "logs", "j3.1")[0].read_text().strip() == "a1:1,2,3;a3:0"


def test_terminate_sends_term_then_the_job_ends_terminated(executor: SlurmExecutor, tmp_path: Path) -> None:
    script = "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    executor.launch(launch(tmp_path, "j4.1", ["bash", "-c", script], [("a1", [0])]))
    collect(executor, started("j4.1"))
    out = log_paths(tmp_path / "logs", "j4.1")[0]
    deadline = time.monotonic() + 10
    while "ready" not in (out.read_text() if out.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    executor.terminate("j4.1", 5.0)
    e = final(collect(executor, ended("j4.1")), "j4.1")
    assert isinstance(e, AllocationExited) and e.cause == "terminated"
    assert "got TERM" in out.read_text()
    assert "j4.1" not in executor.allocations()


def test_slurm_refusing_a_job_is_a_failure_on_that_job(alpha: SlurmCluster, tmp_path: Path) -> None:
    # a node gpupool believes in but Slurm does not know, and a GRES type the nodes lack
    ex = SlurmExecutor("alpha", {**nodes_of(alpha), "a9": "H100"}, options(alpha), tick_s=0.02)
    bad_gres = SlurmExecutor("alpha", nodes_of(alpha, "B200"), options(alpha), tick_s=0.02)
    try:
        ex.launch(launch(tmp_path, "j5.1", ["true"], [("a9", [0])]))
        ex.launch(launch(tmp_path, "j6.1", ["true"], [("zz", [0])]))  # not even in the fleet
        bad_gres.launch(launch(tmp_path, "j7.1", ["true"], [("a1", [0])]))
        evs = collect(ex, lambda evs: ended("j5.1")(evs) and ended("j6.1")(evs))
        e5, e6 = final(evs, "j5.1"), final(evs, "j6.1")
        assert isinstance(e5, AllocationFailed) and "Invalid node name" in e5.reason
        assert isinstance(e6, AllocationFailed) and "not a node of this Slurm cluster" in e6.reason
        e7 = final(collect(bad_gres, ended("j7.1")), "j7.1")
        assert isinstance(e7, AllocationFailed) and "Slurm" in e7.reason
    finally:
        ex.close()
        bad_gres.close()


def test_a_new_executor_adopts_running_jobs_and_reports_exits_it_missed(
    alpha: SlurmCluster, tmp_path: Path
) -> None:
    first = SlurmExecutor("alpha", nodes_of(alpha), options(alpha), tick_s=0.02)
    first.launch(launch(tmp_path, "j8.1", ["sleep", "2"], [("a1", [0])]))
    first.launch(launch(tmp_path, "j9.1", ["true"], [("a2", [0])]))
    collect(first, lambda evs: ended("j9.1")(evs) and started("j8.1")(evs))
    job8 = first.slurm_job_id("j8.1")
    first.close()  # gpupool restarts; Slurm keeps the job
    second = SlurmExecutor("alpha", nodes_of(alpha), options(alpha), tick_s=0.02)
    try:
        assert second.allocations() == {"j8.1"}  # right after construction: reconcile needs it
        second.launch(launch(tmp_path, "j8.1", ["sleep", "2"], [("a1", [0])]))  # a relaunch adopts
        evs = collect(second, ended("j8.1"))
        assert isinstance(final(evs, "j8.1"), AllocationExited)
        ids = alpha.run("squeue", "-t", "all", "-h", "-o", "%i|%k").split()
        assert [i for i in ids if i.endswith(f"|{PREFIX}j8.1")] == [f"{job8}|{PREFIX}j8.1"]  # never twice
        # j9.1's exit was already handed out by the first executor; the second reports it again
        # (the loop ignores a stale exit), so nothing is lost across the restart either way
    finally:
        second.close()


def test_an_unreachable_controller_delays_but_never_blocks_or_loses(
    alpha: SlurmCluster, tmp_path: Path
) -> None:
    ex = SlurmExecutor("alpha", nodes_of(alpha), options(alpha, command_timeout_s=5), tick_s=0.02)
    try:
        alpha.stop_controller()
        t0 = time.monotonic()
        ex.launch(launch(tmp_path, "j10.1", ["true"], [("a1", [0])]))
        assert not [e for e in ex.poll() if getattr(e, "allocation_id", "") == "j10.1"]
        assert "j10.1" in ex.allocations()
        assert time.monotonic() - t0 < 0.5  # the protocol methods never wait on Slurm
        time.sleep(2)
        alpha.start_controller(reregister=True)
        e = final(collect(ex, ended("j10.1"), timeout=60), "j10.1")
        assert isinstance(e, AllocationExited) and e.succeeded
        ids = alpha.run("squeue", "-t", "all", "-h", "-o", "%k").split()
        assert ids.count(f"{PREFIX}j10.1") == 1
    finally:
        ex.close()


def test_a_node_marked_down_is_reported_and_its_job_is_not_a_failure(
    executor: SlurmExecutor, alpha: SlurmCluster, tmp_path: Path
) -> None:
    executor.launch(launch(tmp_path, "j11.1", ["sleep", "30"], [("a3", [0, 1])]))
    collect(executor, started("j11.1"))
    alpha.set_node("a3", "down", "test")
    evs = collect(executor, lambda evs: any(isinstance(e, NodeChanged) for e in evs))
    assert next((e.node, e.state) for e in evs if isinstance(e, NodeChanged)) == ("a3", "down")
    time.sleep(1.0)
    evs += executor.poll()
    assert not [e for e in evs if isinstance(e, AllocationFailed | AllocationExited)]
    assert "j11.1" not in executor.allocations()  # Slurm ended it NODE_FAIL: the core requeues it
    # ReturnToService=2 brings a responding node back at once; resume it if it is not yet
    alpha.run("scontrol", "update", "nodename=a3", "state=resume", check=False)
    evs = collect(
        executor, lambda more: any(isinstance(e, NodeChanged) and e.state == "up" for e in evs + more)
    )


def test_import_slurm_reads_a_real_clusters_conf(alpha: SlurmCluster, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gpupool.cli.main import app
    from gpupool.fleetfile import load_fleet

    r = CliRunner().invoke(app, ["fleet", "import-slurm", "--slurm-conf", str(alpha.conf)])
    assert r.exit_code == 0, r.output
    (tmp_path / "fleet.yaml").write_text(r.stdout)
    fleet = load_fleet(str(tmp_path / "fleet.yaml"))
    assert {n.name: (n.model, n.gpus) for n in fleet.nodes} == dict.fromkeys(alpha.node_names, ("H100", 4))
    assert fleet.clusters[0].name == "alpha" and fleet.clusters[0].backend == "slurm"
