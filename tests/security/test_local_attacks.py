# ruff: noqa: E501 - the attacks are one line each, as the job log reports them
"""Attacks from inside a job, against a real ``gpupool serve`` with the local executor (ADR 0005).

A member of ``vision`` submits a job that tries to reach the service's secrets and another
tenant's (``nlp``) output, working directory, environment and processes, directly and by path
tricks. Each attempt prints one JSON line to the job's log: what it tried, whether it got
anything, and what it saw. The test asserts on that log: every attempt is refused, and no
secret (the service's environment, the victim's token and output) appears anywhere in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpupool.service.executors.sandbox import job_python
from gpupool.service.identity import account, ensure_project_account
from tests.service.conftest import free_port
from tests.service.live_server import printed_admin_token

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates per-project accounts: needs root"),
]

GPUPOOL = Path(sys.executable).parent / "gpupool"
PY = job_python()  # jobs run as unprivileged accounts (ADR 0005)
SERVICE_SECRET = "service-secret-7d1f0c"  # in the server's environment
VICTIM_TOKEN = "hf_victim_token_93ab2e"  # in the victim job's environment
VICTIM_OUTPUT = "victim-private-output-55c1"  # in the victim's log and working directory

ATTACKS = r"""
import glob, json, os, signal, sqlite3, sys
DATA, VICTIM_PID, SERVER_PID = os.environ["DATA"], int(os.environ["VICTIM_PID"]), int(os.environ["SERVER_PID"])
VICTIM_LOG, VICTIM_CWD = os.environ["VICTIM_LOG"], os.environ["VICTIM_CWD"]
SECRETS = %(secrets)r  # given in this file, not the environment, which the job searches

def attempt(name, fn):
    try:
        saw = fn()
        ok = saw is not None and saw is not False
    except Exception as e:
        saw, ok = f"{type(e).__name__}: {e}", False
    print(json.dumps({"attempt": name, "ok": ok, "saw": str(saw)[:300]}), flush=True)

def read(path):
    with open(path, "rb") as f:
        return f.read(200).decode(errors="replace")

def environ_hits():
    hits = []
    for p in glob.glob("/proc/[0-9]*/environ"):
        try:
            data = open(p, "rb").read().decode(errors="replace")
        except OSError:
            continue
        hits += [f"{p}:{s}" for s in SECRETS if s in data]
    return hits or None

def symlinked(target, name):
    os.symlink(target, name)
    return read(os.path.join(name, "gpupool.db")) if os.path.isdir(name) else read(name)

attempt("read the admin token file", lambda: read(f"{DATA}/admin-token"))
attempt("list the data directory", lambda: os.listdir(DATA) or None)
attempt("read the database", lambda: read(f"{DATA}/gpupool.db"))
attempt("read the database's WAL", lambda: read(f"{DATA}/gpupool.db-wal"))
attempt("write a pool-admin token into the database", lambda: sqlite3.connect(f"file:{DATA}/gpupool.db?mode=rw", uri=True).execute("INSERT INTO tokens (user_id, name, hash, created_ms, revoked) VALUES (1, 'x', 'x', 0, 0)").rowcount)
attempt("list every job's logs", lambda: os.listdir(f"{DATA}/logs") or None)
attempt("read another tenant's log", lambda: read(VICTIM_LOG))
attempt("read the executor's state files", lambda: [read(p) for p in glob.glob(f"{DATA}/executor/*")] or None)
attempt("list another tenant's working directory", lambda: os.listdir(VICTIM_CWD) or None)
attempt("read another tenant's working directory", lambda: read(f"{VICTIM_CWD}/result.txt"))
attempt("find secrets in /proc/*/environ", environ_hits)
attempt("read the server's environment", lambda: read(f"/proc/{SERVER_PID}/environ"))
attempt("read the parent's environment", lambda: read(f"/proc/{os.getppid()}/environ"))
attempt("see other processes in /proc", lambda: [p for p in glob.glob("/proc/[0-9]*") if int(p[6:]) > 50] or None)
attempt("signal another tenant's process", lambda: os.kill(VICTIM_PID, signal.SIGKILL) or "sent")
attempt("signal the server", lambda: os.kill(SERVER_PID, signal.SIGTERM) or "sent")
attempt("find secrets in its own environment", lambda: [s for s in SECRETS if s in repr(dict(os.environ))] or None)
attempt("follow a symlink planted in its working directory", lambda: read("planted/gpupool.db"))
attempt("follow a symlink it makes to the data directory", lambda: symlinked(DATA, "made"))
attempt("follow a symlink it makes to another tenant's log", lambda: symlinked(VICTIM_LOG, "made-log"))
attempt("reach the data directory with ..", lambda: read(os.getcwd() + "/" + "../" * 12 + DATA.lstrip("/") + "/gpupool.db"))
attempt("gain a capability", lambda: [l for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm")) and l.split()[1] != "0000000000000000"] or None)
attempt("run as root", lambda: os.getuid() == 0 or os.geteuid() == 0 or None)
print("uid", os.getuid(), "cwd", os.getcwd(), flush=True)
"""


class Serve:
    """``gpupool serve`` in a subprocess, with a secret in its environment."""

    def __init__(self, data: Path, log: Path, admin: str | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {"PATH": "/usr/bin:/bin", "SERVICE_SECRET": SERVICE_SECRET, "HOME": "/root"}
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(GPUPOOL), "serve", "--data-dir", str(data), "--port", str(self.port),
                 "--cycle-interval-ms", "100", "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/v1/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "gpupool serve did not become ready"
            time.sleep(0.1)
        self.admin = admin or printed_admin_token(log)

    def token(self, user: str) -> dict[str, str]:
        r = httpx.post(
            f"{self.base}/v1/tokens", json={"user": user}, headers={"Authorization": f"Bearer {self.admin}"}
        )
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def wait(
        self, job: str, h: dict[str, str], states: tuple[str, ...], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got: dict[str, Any] = httpx.get(f"{self.base}/v1/jobs/{job}", headers=h).json()
            if got["state"] in states:
                return got
            assert time.monotonic() < deadline, got
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(params=["tmp", "elsewhere"])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The service's data directory: under /tmp (each job has its own /tmp, so it is absent
    there) or elsewhere on the host (the sandbox covers it with an empty tmpfs)."""
    if request.param == "tmp":
        yield (tmp_path / "data").resolve()
        return
    where = Path(tempfile.mkdtemp(prefix=".gpupool-attack-", dir=Path.cwd())).resolve()
    where.chmod(0o755)  # only the sandbox's tmpfs (and the data directory's 0700) stand in the way
    try:
        yield where / "data"
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def serve(data_dir: Path, tmp_path: Path) -> Iterator[Serve]:
    srv = Serve(data_dir, tmp_path / "serve.log")
    try:
        yield srv
    finally:
        srv.stop()


def _job_pid(mark: str) -> int:
    """The host pid of the job process whose environment holds ``ATTACK_MARK=mark``."""
    want = f"ATTACK_MARK={mark}".encode()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if want in (entry / "environ").read_bytes().split(b"\0"):
                        return int(entry.name)
        time.sleep(0.1)
    raise AssertionError("the victim's process never appeared")


def test_a_members_job_reaches_nothing_of_the_service_or_another_tenant(
    serve: Serve, data_dir: Path, tmp_path: Path
) -> None:
    data = data_dir
    victim_acct = account(ensure_project_account("academia/snu/nlp"))
    attacker_acct = account(ensure_project_account("academia/snu/vision"))
    victim_cwd = tmp_path / "victim"
    victim_cwd.mkdir(mode=0o700)
    os.chown(victim_cwd, victim_acct.uid, victim_acct.gid)
    attacker_cwd = tmp_path / "attacker"
    attacker_cwd.mkdir(mode=0o755)
    (attacker_cwd / "attacks.py").write_text(
        ATTACKS % {"secrets": [SERVICE_SECRET, VICTIM_TOKEN, VICTIM_OUTPUT]}
    )
    (attacker_cwd / "planted").symlink_to(data)  # planted before the job starts
    os.chown(attacker_cwd, attacker_acct.uid, attacker_acct.gid)

    # The victim: a job of nlp with a token in its environment, private output in its log and
    # working directory; it sleeps while the attacker runs.
    victim_h = serve.token("hayoon.choi")
    victim_cmd = f"echo {VICTIM_OUTPUT}; echo {VICTIM_OUTPUT} > result.txt; exec sleep 120"
    r = httpx.post(f"{serve.base}/v1/jobs", headers=victim_h, json={
        "project": "nlp", "gpus": 1, "command": ["sh", "-c", victim_cmd], "cwd": str(victim_cwd),
        "env": {"HF_TOKEN": VICTIM_TOKEN, "ATTACK_MARK": "victim"}})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["project"] == "academia/snu/nlp"
    victim = serve.wait(r.json()["id"], victim_h, ("running",))
    victim_pid = _job_pid("victim")
    victim_log = data / "logs" / victim["id"] / f"{victim['allocation_id']}.out"
    deadline = time.monotonic() + 10
    while VICTIM_OUTPUT not in (victim_log.read_text() if victim_log.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    attacker_h = serve.token("minjun.kim")
    env = {"DATA": str(data), "VICTIM_PID": str(victim_pid), "SERVER_PID": str(serve.proc.pid),
           "VICTIM_LOG": str(victim_log), "VICTIM_CWD": str(victim_cwd)}  # fmt: skip
    r = httpx.post(f"{serve.base}/v1/jobs", headers=attacker_h, json={
        "project": "vision", "gpus": 1, "command": [PY, "attacks.py"], "cwd": str(attacker_cwd), "env": env})  # fmt: skip
    assert r.status_code == 201, r.text
    attacker = serve.wait(r.json()["id"], attacker_h, ("completed", "failed"), timeout=60)
    logs = httpx.get(f"{serve.base}/v1/jobs/{attacker['id']}/logs", headers=attacker_h).text
    errs = httpx.get(f"{serve.base}/v1/jobs/{attacker['id']}/logs?stream=stderr", headers=attacker_h).text
    assert attacker["state"] == "completed", (attacker, logs, errs)
    attempts = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    got_through = [a for a in attempts if a["ok"]]
    assert not got_through, got_through
    assert len(attempts) == 23, logs
    for secret in (SERVICE_SECRET, VICTIM_TOKEN, VICTIM_OUTPUT):
        assert secret not in logs and secret not in errs
    # what the job saw, attempt by attempt (the log says it; these pin the reasons)
    saw = {a["attempt"]: a["saw"] for a in attempts}
    # absent (under the job's own /tmp), or behind an empty tmpfs / a folder it may not enter
    gone = ("No such file", "Permission denied")
    assert any(g in saw["read the admin token file"] for g in gone)
    if str(data).startswith("/tmp/"):
        assert "No such file" in saw["list the data directory"]  # the job's /tmp is its own
    else:
        assert saw["list the data directory"] == "None"  # an empty tmpfs covers it
    assert any(g in saw["read another tenant's log"] for g in gone)
    assert "No such file" in saw["read another tenant's working directory"]
    assert "ProcessLookupError" in saw["signal another tenant's process"]
    assert "ProcessLookupError" in saw["signal the server"]
    assert f"uid {attacker_acct.uid} " in logs
    # the victim ran on, untouched
    assert serve.wait(victim["id"], victim_h, ("running",))["state"] == "running"
    assert victim_log.read_text().strip() == VICTIM_OUTPUT
    # logs belong to their tenant's account and are readable by it alone
    st = victim_log.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, victim_acct.uid)
    assert (data.stat().st_mode & 0o777, (data / "gpupool.db").stat().st_mode & 0o777) == (0o700, 0o600)
    print(f"\n{len(attempts)} attempts, all refused")
    os.kill(victim_pid, signal.SIGKILL)  # (the service leaves jobs running when it stops)


def test_a_working_directory_reaching_the_service_by_dotdot_is_refused(
    serve: Serve, data_dir: Path, tmp_path: Path
) -> None:
    data = data_dir
    h = serve.token("minjun.kim")
    sneaky = str(data.parent / "x" / ".." / "data")
    (data.parent / "x").mkdir()
    r = httpx.post(f"{serve.base}/v1/jobs", headers=h, json={
        "project": "vision", "gpus": 1, "command": ["sh", "-c", "cat gpupool.db"], "cwd": sneaky})  # fmt: skip
    assert r.status_code == 201, r.text
    job = serve.wait(r.json()["id"], h, ("completed", "failed"))
    assert job["state"] == "failed"
    assert "inside the service's own files" in job["detail"] and str(data) in job["detail"]
