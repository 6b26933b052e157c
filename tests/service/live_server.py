"""A real ``gpupool serve`` in a subprocess, for tests that need its sockets, uvicorn and loop.

``LiveServer.start`` runs ``gpupool serve`` on a free port (its own session, its output in
``serve.log`` under the data directory), waits until ``/v1/ready`` answers 200 and reads the
admin token; ``stop`` ends it (SIGTERM to the session, SIGKILL if it lingers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gpupool.service.admin_banner import printed_token
from tests.service.conftest import free_port


def printed_admin_token(log: Path) -> str:
    """The first pool admin's token, as ``gpupool serve`` printed it once into ``log`` (only its
    hash is stored): the one reader of the banner for every test that starts a real server."""
    text = log.read_text(errors="replace")
    found = printed_token(text)
    assert found, f"serve did not print the admin token ({log}):\n{text[-3000:]}"
    return found


@dataclass
class LiveServer:
    proc: subprocess.Popen[bytes]
    url: str
    data: Path
    admin: str
    verify: ssl.SSLContext | bool = True

    @classmethod
    def start(
        cls,
        data: Path,
        *args: str,
        env: dict[str, str] | None = None,
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
        ready_s: float = 90,
    ) -> LiveServer:
        data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
        environ.update(env or {})
        log = open(data / "serve.log", "ab")  # noqa: SIM115 - handed to the child, closed at once
        cmd = [sys.executable, "-c", "from gpupool.cli.main import app; app()", "serve",
               "--data-dir", str(data), "--port", str(port), "--log-level", "warning", *args]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=environ, start_new_session=True
        )
        log.close()
        url = f"{scheme}://127.0.0.1:{port}"
        srv = cls(proc, url, data, "", verify)
        deadline = time.monotonic() + ready_s
        try:
            while True:
                assert proc.poll() is None, srv.log()
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/v1/ready", timeout=2, verify=verify).status_code == 200:
                        break
                assert time.monotonic() < deadline, "gpupool serve did not become ready\n" + srv.log()
                time.sleep(0.1)
        except BaseException:
            srv.stop()
            raise
        # printed once by the first start (only its hash is stored)
        srv.admin = printed_admin_token(data / "serve.log")
        return srv

    def log(self) -> str:
        path = self.data / "serve.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=self.verify, **kw)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
