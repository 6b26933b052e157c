"""Kill the real server (uvicorn in a subprocess) with SIGKILL during a burst of submissions.

After a restart: every submission that got a 2xx is there; the rebuilt core validates and no
two running jobs share an accelerator; no job ran twice (each job's process prints a line to
its log when it starts, and the local executor adopts the processes that outlived the server;
jobs run sandboxed, so the test finds their processes by a mark in their environment).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gpupool.core.scheduler import SchedulerConfig
from gpupool.service.db import make_engine, session_factory
from gpupool.service.rebuild import rebuild
from gpupool.service.runtime import load_scenario
from gpupool.service.settings import ServiceSettings
from tests.service.conftest import free_port
from tests.service.live_server import printed_admin_token

pytestmark = pytest.mark.slow

USERS = {"minjun.kim": "vision", "hayoon.choi": "nlp", "jiwoo.han": "llm", "jungmin.park": "climate"}
GPUPOOL = Path(sys.executable).parent / "gpupool"


class Server:
    def __init__(self, data_dir: Path, url: str) -> None:
        self.data_dir = data_dir
        self.url = url
        self.logs: list[Path] = []
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "GPUPOOL_DATABASE_URL": self.url}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logs.append(self.data_dir.parent / f"server-{self.port}.log")
        log = open(self.logs[-1], "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [str(GPUPOOL), "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
             "--cycle-interval-ms", "50", "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/v1/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(self.logs[-1].read_text())
            time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    def admin_token(self) -> str:
        """The pool admin's token, as the first start printed it (once)."""
        return printed_admin_token(self.logs[0])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


@pytest.fixture
def job_processes(tmp_path: Path) -> Iterator[str]:
    """A mark for the jobs' environment; afterwards every job process still alive is killed."""
    mark = f"crash-{os.getpid()}-{tmp_path.name}"
    yield mark
    for pid in marked(mark):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def marked(mark: str) -> dict[int, str]:
    """Live job processes whose environment holds ``CRASH_TEST_MARK=mark``: pid -> allocation."""
    found: dict[int, str] = {}
    want = f"CRASH_TEST_MARK={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in env and _alive(int(entry.name)):
            alloc = [v for v in env if v.startswith(b"GPUPOOL_ALLOCATION_ID=")]
            found[int(entry.name)] = alloc[0].split(b"=", 1)[1].decode() if alloc else ""
    return found


def test_sigkill_during_a_burst(tmp_path: Path, database_url: str, job_processes: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, database_url)
    server.start()
    admin = server.admin_token()
    assert not (data / "admin-token").exists()  # shown once, stored only as a hash
    tokens = {}
    for user in USERS:
        r = httpx.post(f"{server.base}/v1/tokens", json={"user": user},
                       headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
        tokens[user] = r.json()["token"]
    command = ["sh", "-c", 'echo "$GPUPOOL_JOB_ID $GPUPOOL_ALLOCATION_ID"; exec sleep 120']
    job_env = {"CRASH_TEST_MARK": job_processes}
    acked: dict[str, str] = {}  # idempotency key -> job id, for every 2xx
    lock = threading.Lock()
    stop = threading.Event()

    def burst(user: str, n: int) -> None:
        client = httpx.Client(timeout=5)
        for i in range(n):
            if stop.is_set():
                return
            key = f"{user}-{i}"
            body = {"project": USERS[user], "command": command, "gpus": 1 + i % 2, "walltime_s": 600,
                    "env": job_env}  # fmt: skip
            headers = {"Authorization": f"Bearer {tokens[user]}", "Idempotency-Key": key}
            try:
                r = client.post(f"{server.base}/v1/jobs", json=body, headers=headers)
            except httpx.HTTPError:
                continue  # in flight when the server died: not acknowledged
            if r.status_code in (200, 201):
                with lock:
                    acked[key] = r.json()["id"]
        client.close()

    threads = [threading.Thread(target=burst, args=(u, 40)) for u in USERS for _ in range(2)]
    for t in threads:
        t.start()
    while len(acked) < 30:
        time.sleep(0.005)
    server.kill(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 30

    server.start()
    try:
        # every acknowledged submission survived, and repeating it returns the same job
        for key, job in acked.items():
            user = key.rsplit("-", 1)[0]
            h = {"Authorization": f"Bearer {tokens[user]}"}
            assert httpx.get(f"{server.base}/v1/jobs/{job}", headers=h).status_code == 200
            body = {"project": USERS[user], "command": command, "gpus": 1 + int(key.rsplit("-", 1)[1]) % 2,
                    "walltime_s": 600, "env": job_env}  # fmt: skip
            r = httpx.post(f"{server.base}/v1/jobs", json=body, headers={**h, "Idempotency-Key": key})
            assert (r.status_code, r.json()["id"]) == (200, job)
        time.sleep(1.0)  # a few cycles: launches dispatched, adopted processes reported
        running = httpx.get(f"{server.base}/v1/jobs?state=running&limit=500",
                            headers={"Authorization": f"Bearer {admin}"}).json()["items"]  # fmt: skip
        held: dict[tuple[str, int], str] = {}
        for j in running:
            for p in j["placement"]:
                for gpu in p["accelerators"]:
                    assert (p["node"], gpu) not in held, f"{j['id']} and {held[(p['node'], gpu)]} share a GPU"
                    held[(p["node"], gpu)] = j["id"]
    finally:
        server.kill(signal.SIGTERM)
    # the rebuilt core validates
    settings = ServiceSettings(data_dir=data, database_url=database_url)
    fleet, _ = load_scenario(settings)
    engine = make_engine(settings.url)
    with session_factory(engine)() as s:
        state = rebuild(s, fleet, SchedulerConfig(), int(time.time() * 1000))
    state.scheduler.validate()
    assert len(state.scheduler.running) == len(running)
    engine.dispose()
    # no job ran twice: an allocation is launched once (its log holds one start line), and at
    # most one process per job lives (a job preempted and restarted has two allocations, one
    # after the other)
    starts: dict[str, list[str]] = {}
    for out in (data / "logs").glob("*/*.out"):
        for line in out.read_text().splitlines():
            job, alloc = line.split()
            starts.setdefault(job, []).append(alloc)
    assert {j["id"] for j in running} <= set(starts)
    relaunched = {j: allocs for j, allocs in starts.items() if len(set(allocs)) < len(allocs)}
    # (the local executor records a launch before its process exists, so even a kill inside
    # Popen leaves a process that the restarted executor adopts instead of relaunching)
    assert not relaunched, f"allocations launched twice across the crash: {relaunched}"
    alive: dict[str, list[str]] = {}
    for alloc in marked(job_processes).values():
        alive.setdefault(alloc.split(".")[0], []).append(alloc)
    assert all(len(a) <= 1 for a in alive.values()), f"jobs running twice: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] not in "ZX"
