"""A PostgreSQL server of a test's own, that the test may stop and start again.

The session's server (``conftest.postgres``) is shared by every test; a test that takes the
database away needs its own: ``PgCluster.create`` runs ``initdb`` in a temporary directory
(as the ``postgres`` user when run as root) and starts it on a free port; ``stop`` and
``start`` are ``pg_ctl``'s; ``destroy`` stops it for good and removes its files.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.conftest import free_port, pg_bin


@dataclass
class PgCluster:
    root: Path
    port: int
    bindir: Path
    prefix: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    @classmethod
    def create(cls) -> PgCluster:
        bindir = pg_bin()
        if bindir is None:
            pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
        root = Path(tempfile.mkdtemp(prefix="gpupool-pg-own-"))
        prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            prefix = ["runuser", "-u", "postgres", "--"]
        pg = cls(root, free_port(), bindir, prefix)
        initdb = [str(bindir / "initdb"), "-D", str(pg.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync"]  # fmt: skip
        subprocess.run([*prefix, *initdb], check=True, capture_output=True)
        pg.start()
        return pg

    def _ctl(self, *args: str) -> list[str]:
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        return [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                "-l", str(self.root / "pg.log"), "-w", "-o", opts, *args]  # fmt: skip

    def start(self) -> None:
        subprocess.run(self._ctl("start"), check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are ended, as when a server is shut down."""
        subprocess.run(self._ctl("-m", "fast", "-t", "30", "stop"), check=True, capture_output=True)

    def destroy(self) -> None:
        pidfile = self.data / "postmaster.pid"
        pid = int(pidfile.read_text().split()[0]) if pidfile.exists() else 0
        subprocess.run(self._ctl("-m", "immediate", "-t", "10", "stop"), capture_output=True)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
