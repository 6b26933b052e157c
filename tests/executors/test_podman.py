"""Container jobs on the local executor, with real rootless Podman and an image the tests build.

The image is made here from a local root file system (a static busybox: ``podman import`` of
its tarball, then ``podman save`` to an OCI archive); no registry is reached. The job runs as
the unprivileged job account, rootless: its container's root is that account on the host.
Skipped, saying why, where Podman or a static busybox is missing (``apt-get install podman
busybox-static``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpupool.service import identity
from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    ExecutorEvent,
    Launch,
)
from gpupool.service.executors.gpus import simulated_machine
from gpupool.service.executors.local import LocalExecutor
from gpupool.service.executors.podman import Podman, container_devices, container_name

NODE = "box"
BUSYBOX = shutil.which("busybox")
PODMAN = shutil.which("podman")


def _static(path: str | None) -> bool:
    if path is None:
        return False
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
    return "not a dynamic executable" in out.stdout + out.stderr


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PODMAN is None, reason="podman is not installed (apt-get install podman)"),
    pytest.mark.skipif(not _static(BUSYBOX), reason="no static busybox (apt-get install busybox-static)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="jobs run as the job account: the tests need root"),
]


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """An OCI archive of a busybox root file system, readable by every account."""
    assert BUSYBOX is not None and PODMAN is not None
    top = Path(tempfile.mkdtemp(prefix="gpupool-image-"))
    try:
        top.chmod(0o755)
        rootfs = top / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
        for applet in ("sh", "echo", "cat", "id", "ls", "sleep", "env"):
            (rootfs / "bin" / applet).symlink_to("busybox")
        with tarfile.open(top / "rootfs.tar", "w") as tar:
            tar.add(rootfs, arcname=".")
        store = ["--root", str(top / "store"), "--runroot", str(top / "run"), "--cgroup-manager=cgroupfs",
                 "--events-backend=file", "--log-level=error"]  # fmt: skip
        run = {"check": True, "capture_output": True}
        subprocess.run([PODMAN, *store, "import", str(top / "rootfs.tar"), "localhost/gpupool-test:1"], **run)  # type: ignore[call-overload]
        archive = top / "busybox.oci.tar"
        subprocess.run(
            [PODMAN, *store, "save", "--format=oci-archive", "-o", str(archive), "localhost/gpupool-test:1"],
            **run,
        )  # type: ignore[call-overload]
        archive.chmod(0o644)
        yield f"oci-archive:{archive}"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def end_pause_processes(root: Path) -> None:
    """End the rootless Podman pause processes (one per runtime directory, holding its user
    namespace) that this test's storage under ``root`` started: they would outlive the test."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "podman pause":
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(f"XDG_RUNTIME_DIR={root}/".encode()) for v in env):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[LocalExecutor]:
    # The containers' storage must be reachable by the job accounts (as under a 0711 data
    # directory); pytest's own directory is 0700 root.
    containers = Path(tempfile.mkdtemp(prefix="gpupool-data-")) / "containers"
    ex = LocalExecutor(
        tmp_path / "data" / "state",
        machine=simulated_machine(2, node_name=NODE),
        walltime_grace_s=1.0,
        tick_s=0.02,
        container_dir=containers,
    )
    yield ex
    for aid in ex.allocations():
        ex.terminate(aid, 0)
    ex.close()
    end_pause_processes(containers.parent)
    subprocess.run(["rm", "-rf", "--one-file-system", str(containers.parent)], check=False)


def launch(tmp_path: Path, aid: str, image: str, script: str, env: dict[str, str] | None = None) -> Launch:
    return Launch(aid, aid.split(".")[0], ("/bin/sh", "-c", script), ((NODE, (1,)),), tmp_path / "logs",
                  env=env or {}, image=image)  # fmt: skip


def wait_for(
    ex: LocalExecutor, done: Callable[[list[ExecutorEvent]], bool], timeout: float = 60.0
) -> list[ExecutorEvent]:
    got: list[ExecutorEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.extend(ex.poll())
        if done(got):
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out; events so far: {got}")


def exited(got: list[ExecutorEvent]) -> bool:
    return any(isinstance(e, AllocationExited) for e in got)


def test_a_job_runs_in_its_image_as_the_unprivileged_job_account_with_only_its_environment(
    executor: LocalExecutor, image: str, tmp_path: Path
) -> None:
    script = (
        "echo root=$(ls / | tr '\\n' ' '); cat /proc/self/uid_map; "
        "echo job=$GPUPOOL_JOB_ID cuda=$CUDA_VISIBLE_DEVICES wandb=$WANDB_MODE; env | sort; exit 3"
    )
    executor.launch(launch(tmp_path, "j1.1", image, script, {"WANDB_MODE": "offline"}))
    got = wait_for(executor, exited)
    assert isinstance(got[0], AllocationStarted)
    end = got[-1]
    assert isinstance(end, AllocationExited) and end.exit_code == 3 and end.cause == "exited"
    out = (tmp_path / "logs" / "j1.1.out").read_text()
    err = (tmp_path / "logs" / "j1.1.err").read_text()
    assert err == "", err  # Podman's pull and warnings are not the job's output
    # The image's file system, not the host's: no /usr, no /work, no service data directory.
    assert "root=bin dev etc proc run sys" in out, out
    # Rootless: the container's root is the job account's uid on the host, never root.
    job_uid = identity.account(identity.FALLBACK_ACCOUNT).uid
    assert job_uid != 0
    assert out.split("\n")[1].split() == ["0", str(job_uid), "1"]
    assert "job=j1 cuda=1 wandb=offline" in out
    # Only its own and the platform's variables: nothing of the service's nor Podman's.
    names = {line.split("=", 1)[0] for line in out.splitlines()[3:] if "=" in line}
    assert "WANDB_MODE" in names and "GPUPOOL_ALLOCATION_ID" in names
    leaked = names & {
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "DATABASE_URL",
        "GPUPOOL_TOKEN",
        "PYTEST_CURRENT_TEST",
    }
    assert not leaked, leaked
    # Exactly: the submitter's, the platform's, and what Podman and the shell set themselves.
    podman_and_shell = {"PATH", "HOME", "HOSTNAME", "TERM", "container", "PWD", "SHLVL"}
    own = {"WANDB_MODE", "CUDA_VISIBLE_DEVICES", "LANG"}
    assert {n for n in names if not n.startswith("GPUPOOL_")} <= own | podman_and_shell, names


@pytest.mark.parametrize("grace_s", [0.5, 0.0])
def test_terminate_stops_the_container_and_leaves_none_behind(
    executor: LocalExecutor, image: str, tmp_path: Path, grace_s: float
) -> None:
    # grace 0: SIGKILL of the group kills the podman client at once; conmon would keep the
    # container running, so the executor removes it before reporting the exit.
    executor.launch(launch(tmp_path, "j2.1", image, "echo up; trap 'exit 0' TERM; sleep 300 & wait"))
    wait_for(executor, lambda got: any(isinstance(e, AllocationStarted) for e in got))
    deadline = time.monotonic() + 60
    while "up" not in (tmp_path / "logs" / "j2.1.out").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    executor.terminate("j2.1", grace_s)
    got = wait_for(executor, exited)
    end = got[-1]
    assert isinstance(end, AllocationExited) and end.cause == "terminated"
    assert container_name("j2.1") not in _containers(executor)


def _containers(ex: LocalExecutor) -> str:
    """The names of the job account's containers, as Podman lists them."""
    podman = ex._podman
    assert podman is not None
    acct = identity.account(identity.FALLBACK_ACCOUNT)
    home = podman.storage / str(acct.uid)
    argv = podman.remove_argv("x", home)
    listed = subprocess.run(
        [*argv[: argv.index("rm")], "ps", "-a", "--format={{.Names}}"],
        env={"PATH": "/usr/bin:/bin", **podman.environment(home)},
        user=acct.uid,
        group=acct.gid,
        extra_groups=[],
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout


def test_a_restarted_executor_adopts_a_container_job_and_removes_its_container_at_the_end(
    executor: LocalExecutor, image: str, tmp_path: Path
) -> None:
    executor.launch(launch(tmp_path, "j5.1", image, "echo up; sleep 300"))
    wait_for(executor, lambda got: any(isinstance(e, AllocationStarted) for e in got))
    deadline = time.monotonic() + 60
    while "up" not in (tmp_path / "logs" / "j5.1.out").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    executor.close()  # the service restarts: the job runs on
    assert executor._podman is not None
    second = LocalExecutor(
        executor.state_dir, machine=simulated_machine(2, node_name=NODE), tick_s=0.02,
        container_dir=executor._podman.storage,
    )  # fmt: skip
    try:
        assert second.allocations() == {"j5.1"}
        second.terminate("j5.1", 0.0)  # SIGKILL: only the recorded container name can stop it
        end = wait_for(second, exited)[-1]
        assert isinstance(end, AllocationExited) and end.cause == "terminated"
        assert container_name("j5.1") not in _containers(second)
    finally:
        second.close()


def test_an_image_file_the_job_account_cannot_read_fails_the_job(
    executor: LocalExecutor, image: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.tar"  # under pytest's 0700 root directory
    shutil.copy(image.split(":", 1)[1], secret)
    executor.launch(launch(tmp_path, "j3.1", f"oci-archive:{secret}", "echo ran"))
    end = wait_for(executor, exited)[-1]
    assert isinstance(end, AllocationExited) and end.exit_code == 125  # Podman's own failure
    assert "ran" not in (tmp_path / "logs" / "j3.1.out").read_text()


def test_a_data_directory_the_job_account_cannot_reach_fails_the_job_saying_why(
    image: str, tmp_path: Path
) -> None:
    machine = simulated_machine(2, node_name=NODE)
    with LocalExecutor(tmp_path / "data" / "state", machine=machine, tick_s=0.02) as ex:
        ex.launch(launch(tmp_path, "j4.1", image, "echo ran"))
        (e,) = wait_for(ex, lambda got: bool(got))
    assert isinstance(e, AllocationFailed)
    assert "cannot pass /tmp/pytest-of-root" in e.reason and "container storage" in e.reason, e.reason


def test_npus_get_their_device_files_and_visible_device_variables() -> None:
    # No NPU on this machine: the variables hold; the device list is what exists (none here).
    files, env = container_devices("rbln", [0, 2])
    assert env == {"RBLN_DEVICES": "0,2"} and files == [
        f for f in ("/dev/rbln0", "/dev/rbln2") if Path(f).exists()
    ]
    files, env = container_devices("furiosa", [1])
    assert env == {"FURIOSA_DEVICES": "1"}
    assert container_devices("cuda", []) == ([], {})
    assert Podman.find(Path("/nonexistent")) is not None


def test_a_job_submitted_with_an_image_runs_in_it_end_to_end(image: str) -> None:
    """Through the API and the loop to the real local executor, as the project's own account."""
    from fastapi.testclient import TestClient

    from gpupool.service.api.app import create_app
    from gpupool.service.runtime import Runtime
    from gpupool.service.settings import ServiceSettings

    data = Path(tempfile.mkdtemp(prefix="gpupool-e2e-"))  # below /tmp: job accounts can pass
    try:
        runtime = Runtime(ServiceSettings(data_dir=data, cycle_interval_ms=20))
        with TestClient(create_app(runtime)) as http:
            h = {"Authorization": f"Bearer {runtime.new_admin_token}"}
            tok = http.post("/v1/tokens", headers=h, json={"user": "jungmin.park"}).json()["token"]
            me = {"Authorization": f"Bearer {tok}"}
            script = 'echo "in=$(ls / | tr "\\n" " ")gpus=$CUDA_VISIBLE_DEVICES job=$GPUPOOL_JOB_ID"'
            body = {"project": "climate", "gpus": 1, "image": image, "command": ["/bin/sh", "-c", script]}
            r = http.post("/v1/jobs", headers=me, json=body)
            assert r.status_code == 201, r.text
            job = r.json()["id"]
            deadline = time.monotonic() + 60
            state = ""
            while time.monotonic() < deadline:
                state = http.get(f"/v1/jobs/{job}", headers=me).json()["state"]
                if state in ("completed", "failed"):
                    break
                time.sleep(0.05)
            out = http.get(f"/v1/jobs/{job}/logs", headers=me).text
            err = http.get(f"/v1/jobs/{job}/logs?stream=stderr", headers=me).text
            assert state == "completed", (state, out, err)
            assert out.startswith("in=bin dev etc proc run sys ") and f"job={job}" in out, out
    finally:
        end_pause_processes(data)
        subprocess.run(["rm", "-rf", "--one-file-system", str(data)], check=False)
