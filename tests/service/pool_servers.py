"""Several real ``gpupool serve`` on one database: start, kill, a burst over all, and the checks.

Shared by ``tests/service/test_failover.py`` and ``benchmarks/failover.py``. The servers share
a data directory (the local executor's state, so a new leader adopts the processes the old
one started) and a database (SQLite in that directory, or a PostgreSQL URL). Jobs append
``job allocation pid`` to a marker file when they start, so that "started twice" is checked
from what ran, not only from what the database says.

``check_event_log`` replays the event log: every ``Start`` decision takes its accelerators,
every ``Preempt``/``Stop`` decision and ``JobFinished`` event gives them back; an accelerator
taken twice at any instant, or a job started while it still holds accelerators, is reported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from gpupool.service.admin_banner import printed_token
from gpupool.service.db import EventLogRow, JobRow, make_engine
from gpupool.service.leader import read_lease
from tests.service.conftest import free_port

GPUPOOL = Path(sys.executable).parent / "gpupool"
USERS = {"minjun.kim": "vision", "hayoon.choi": "nlp", "jiwoo.han": "llm", "jungmin.park": "climate"}


class ServeProcess:
    """One ``gpupool serve`` (its API process and its scheduler child) on a free port."""

    def __init__(self, data_dir: Path, url: str, name: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.url = url
        self.name = name
        self.env = env or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 90) -> None:
        self.port = free_port()
        env = {**os.environ, "GPUPOOL_DATABASE_URL": self.url, **self.env}
        log = open(self.data_dir / f"{self.name}-{self.port}.log", "wb")  # noqa: SIM115 - the server's
        self.proc = subprocess.Popen(
            [str(GPUPOOL), "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
             "--cycle-interval-ms", "100", "--log-level", "info"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready() is not None:
                return
            if self.proc.poll() is not None:
                raise AssertionError(self.log_text())
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not become ready:\n{self.log_text()}")

    def wait_standing_by(self, timeout_s: float = 60) -> None:
        """Until this server's scheduler process contends for the lease (it logs so)."""
        deadline = time.monotonic() + timeout_s
        while "standby, waiting for the leader lease" not in self.log_text():
            assert time.monotonic() < deadline, f"{self.name}'s scheduler did not start:\n{self.log_text()}"
            time.sleep(0.05)

    def scheduler_pid(self) -> int:
        """The pid of this server's scheduler process (a child of its API process)."""
        assert self.proc is not None
        kids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(p) for p in (task / "children").read_text().split()]
        assert len(kids) == 1, f"{self.name}: scheduler processes {kids}"
        return kids[0]

    def ready(self) -> dict[str, Any] | None:
        """``/v1/ready`` when it answers 200 (the pool is scheduled), else None."""
        try:
            r = httpx.get(f"{self.base}/v1/ready", timeout=2)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = r.json()
        return body if r.status_code == 200 else None

    def role(self) -> str | None:
        body = self.ready()
        return str(body["role"]) if body else None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.data_dir.glob(f"{self.name}-*.log"))
        )


def marker_command(markers: Path, sleep_s: float) -> list[str]:
    return [
        "sh",
        "-c",
        f'echo "$GPUPOOL_JOB_ID $GPUPOOL_ALLOCATION_ID $$" >> {markers}; exec sleep {sleep_s}',
    ]


def admin_token(server: ServeProcess) -> str:
    """The first pool admin's token, printed once by the first start (only its hash is stored)."""
    found = printed_token(server.log_text())
    assert found, "serve printed no admin token:\n" + server.log_text()
    return found


def mint_tokens(server: ServeProcess) -> dict[str, str]:
    admin = admin_token(server)
    tokens = {}
    for user in USERS:
        r = httpx.post(
            f"{server.base}/v1/tokens", json={"user": user}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert r.status_code == 201, r.text
        tokens[user] = r.json()["token"]
    return tokens


@dataclass
class Burst:
    """Threads that submit jobs round-robin over the servers, remembering every 2xx."""

    servers: list[ServeProcess]
    tokens: dict[str, str]
    command: list[str]
    per_thread: int = 40
    #: pause between one thread's submissions (a steady load rather than a flood)
    pause_s: float = 0.0
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, threads_per_user: int = 2, tag: str = "") -> None:
        for user in USERS:
            for t in range(threads_per_user):
                th = threading.Thread(target=self._run, args=(user, f"{tag}{t}"), daemon=True)
                th.start()
                self._threads.append(th)

    def _run(self, user: str, tag: str) -> None:
        with httpx.Client(timeout=5) as client:
            for i in range(self.per_thread):
                if self._stop.is_set():
                    return
                server = self.servers[i % len(self.servers)]
                key = f"{user}-{tag}-{i}"
                body = {"project": USERS[user], "command": self.command, "gpus": 1 + i % 2, "walltime_s": 600}
                headers = {"Authorization": f"Bearer {self.tokens[user]}", "Idempotency-Key": key}
                try:
                    r = client.post(f"{server.base}/v1/jobs", json=body, headers=headers)
                except httpx.HTTPError:
                    with self._lock:
                        self.errors += 1  # in flight when its server died: not acknowledged
                    continue
                if r.status_code in (200, 201):
                    with self._lock:
                        self.acked[key] = r.json()["id"]
                        self.bodies[key] = body
                if self.pause_s:
                    time.sleep(self.pause_s)

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        for t in self._threads:
            t.join()
        self._threads = []


#: the log rows that give a job's accelerators back
_RELEASES = {("decision", "Preempt"), ("decision", "Stop"), ("event", "JobFinished")}


def check_event_log(url: str) -> list[str]:
    """Accelerators taken twice at one instant, and jobs started while running, per the event log."""
    engine = make_engine(url, writer=False)
    problems: list[str] = []
    held: dict[tuple[str, int], str] = {}  # (node, index) -> job
    holding: dict[str, list[tuple[str, int]]] = {}  # job -> its accelerators
    try:
        with engine.connect() as c:
            rows = c.execute(
                select(EventLogRow.kind, EventLogRow.type, EventLogRow.job_id, EventLogRow.payload).order_by(
                    EventLogRow.id
                )
            ).all()
    finally:
        engine.dispose()
    for kind, type_, job, payload in rows:
        if kind == "decision" and type_ == "Start":
            if job in holding:
                problems.append(f"{job} started again while it held {holding[job]}")
            taken = [(str(n), int(i)) for n, ids in payload["placement"] for i in ids]
            for acc in taken:
                if acc in held:
                    problems.append(f"{acc} given to {job} while {held[acc]} held it")
                held[acc] = str(job)
            holding[str(job)] = taken
        elif (kind == "decision" and type_ in ("Preempt", "Stop")) or (
            kind == "event" and type_ == "JobFinished"
        ):
            for acc in holding.pop(str(job), []):
                if held.get(acc) == job:
                    del held[acc]
    return problems


def starts_per_allocation(markers: Path) -> tuple[dict[str, list[str]], list[int]]:
    """Jobs whose allocation was launched more than once, and the pids of every job process."""
    runs: dict[str, list[str]] = {}
    pids: list[int] = []
    for line in markers.read_text().splitlines():
        job, alloc, pid = line.split()
        runs.setdefault(job, []).append(alloc)
        pids.append(int(pid))
    twice = {j: a for j, a in runs.items() if len(set(a)) < len(a)}
    return twice, pids


def kill_jobs(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def jobs_by_key(url: str) -> dict[str, list[int]]:
    """Job seqs by idempotency key (each key must name exactly one job)."""
    engine = make_engine(url, writer=False)
    try:
        with engine.connect() as c:
            rows = c.execute(select(JobRow.idempotency_key, JobRow.seq)).all()
    finally:
        engine.dispose()
    out: dict[str, list[int]] = {}
    for key, seq in rows:
        if key is not None:
            out.setdefault(key, []).append(seq)
    return out


def wait_for_new_leader(url: str, old_epoch: int, timeout_s: float) -> tuple[int, int]:
    """(epoch, first cycle in ms since the epoch) of the leader that followed ``old_epoch``."""
    engine = make_engine(url, writer=False)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            state = read_lease(engine)
            if state is not None and state.epoch > old_epoch and state.last_cycle_ms is not None:
                return state.epoch, state.last_cycle_ms
            time.sleep(0.02)
    finally:
        engine.dispose()
    raise AssertionError(f"no new leader after epoch {old_epoch} within {timeout_s} s")


def lease_epoch(url: str) -> int:
    engine = make_engine(url, writer=False)
    try:
        state = read_lease(engine)
    finally:
        engine.dispose()
    assert state is not None
    return state.epoch
