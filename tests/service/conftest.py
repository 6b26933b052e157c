"""Fixtures of the service tests: real databases (SQLite and PostgreSQL), a service, callers.

``postgres`` starts a real PostgreSQL server for the session (``initdb`` and ``pg_ctl`` into a
temporary directory, as the ``postgres`` user when run as root, on a free port); every test
that asks for ``database_url`` runs once on SQLite and once on its own fresh PostgreSQL
database. Without the PostgreSQL binaries the PostgreSQL cases are skipped, saying so.

``service`` is a ``Runtime`` on the demo fleet and tenants with a settable clock and a
recording executor; the loop does not run by itself: tests call ``service.cycle()``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from gpupool.service.loop import CycleReport
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.service.fakes import Clock, RecordingExecutor

#: tokens the tests mint outlive a clock moved by a year (the default lifetime is 90 days)
LONG_TOKEN_S = 3 * 365 * 86_400

PG_DIRS = [
    Path("/usr/lib/postgresql/15/bin"),
    *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
]


def pg_bin() -> Path | None:
    for d in PG_DIRS:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PgServer:
    port: int
    _n: Any = None

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        import psycopg

        if self._n is None:
            self._n = itertools.count(1)
        name = f"t{os.getpid()}_{next(self._n)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class NoPostgres(Exception):
    """PostgreSQL cannot be started here (the message says why)."""


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A real PostgreSQL server for the test session."""
    try:
        with postgres_server() as server:
            yield server
    except NoPostgres as e:
        pytest.skip(str(e))


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """A real PostgreSQL server in a temporary directory (benchmarks use it too)."""
    bindir = pg_bin()
    if bindir is None:
        raise NoPostgres("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="gpupool-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise NoPostgres("running as root and there is no postgres user to run PostgreSQL as") from None
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    port = free_port()
    initdb = [
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]
    subprocess.run([*prefix, *initdb], check=True, capture_output=True)
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "-o", opts]
    subprocess.run([*prefix, *pg_ctl, "start"], check=True, capture_output=True)
    try:
        yield PgServer(port)
    finally:
        pidfile = data / "postmaster.pid"
        pid = int(pidfile.read_text().split()[0]) if pidfile.exists() else 0
        subprocess.run([*prefix, *pg_ctl[:3], "-m", "immediate", "-t", "10", "stop"], capture_output=True)
        if pid:  # never leave a server behind, even one that did not stop in time
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gpupool.db'}"
    server: PgServer = request.getfixturevalue("postgres")
    return server.new_database()


class Service:
    """A started service under test: the runtime, an HTTP client, the clock and the executor."""

    def __init__(
        self, runtime: Runtime, client: TestClient, clock: Clock, executor: RecordingExecutor
    ) -> None:
        self.runtime = runtime
        self.http = client
        self.clock = clock
        self.executor = executor
        self.admin_token = runtime.new_admin_token or ""
        self._tokens: dict[str, str] = {"admin": self.admin_token}

    def cycle(self) -> CycleReport:
        return self.runtime.loop.cycle()

    def long_lived_admin(self) -> None:
        """Swap the admin's token for one that outlives a test that moves the clock by a year."""
        r = self.http.post(
            "/v1/tokens", headers=self.auth("admin"), json={"name": "long", "expires_in": LONG_TOKEN_S}
        )
        assert r.status_code == 201, r.text
        self.admin_token = r.json()["token"]

    def token(self, user: str) -> str:
        """A token of ``user`` (minted by the admin through the API)."""
        if user not in self._tokens:
            r = self.http.post(
                "/v1/tokens",
                headers=self.auth("admin"),
                json={"user": user, "name": "test", "expires_in": LONG_TOKEN_S},
            )
            assert r.status_code == 201, r.text
            self._tokens[user] = r.json()["token"]
        return self._tokens[user]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user) if user != 'admin' else self.admin_token}"}

    def call(self, method: str, path: str, user: str = "admin", **kw: Any) -> Any:
        headers = {**self.auth(user), **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def submit(self, user: str, key: str | None = None, **body: Any) -> Any:
        body.setdefault("command", ["true"])
        headers = {"Idempotency-Key": key} if key else {}
        return self.call("POST", "/v1/jobs", user, json=body, headers=headers)


def make_service(data_dir: Path, url: str, **settings: Any) -> tuple[Runtime, Clock, RecordingExecutor]:
    clock = Clock()
    executor = RecordingExecutor(clock)
    cfg = ServiceSettings(data_dir=data_dir, database_url=url, **settings)
    runtime = Runtime(cfg, executors={"*": executor}, clock=clock, run_loop=False)
    return runtime, clock, executor


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[Service]:
    runtime, clock, executor = make_service(tmp_path, database_url)
    with TestClient(create_app(runtime)) as client:
        yield Service(runtime, client, clock, executor)


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[Service]:
    """The service on SQLite only (for tests about HTTP behaviour, not storage)."""
    runtime, clock, executor = make_service(tmp_path, f"sqlite:///{tmp_path / 'gpupool.db'}")
    with TestClient(create_app(runtime)) as client:
        yield Service(runtime, client, clock, executor)
