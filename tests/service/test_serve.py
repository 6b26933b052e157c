"""``gpupool serve``: a real uvicorn on embedded SQLite, the URL and a first admin token printed once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import free_port

GPUPOOL = Path(sys.executable).parent / "gpupool"


def _serve(data: Path, port: int) -> tuple[str, str]:
    proc = subprocess.Popen(
        [str(GPUPOOL), "serve", "--data-dir", str(data), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("not ready")
        token = ""
        admin = data / "admin-token"
        if admin.exists():
            token = admin.read_text().strip()
            me = httpx.get(
                f"http://127.0.0.1:{port}/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert me.json()["role"] == "pool-admin"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    return out.decode(), token


@pytest.mark.slow
def test_serve_prints_url_and_the_first_admin_token_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    out, token = _serve(data, port)
    assert f"http://127.0.0.1:{port}" in out
    assert token.startswith("gpt_") and token in out
    assert (data / "admin-token").stat().st_mode & 0o777 == 0o600
    assert (data / "gpupool.db").exists()
    again, same = _serve(data, free_port())
    assert same == token and token not in again and "admin-token" in again


def test_serve_refuses_bad_options(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(GPUPOOL), "serve", "--data-dir", str(tmp_path), "--fleet", "atlantis"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "atlantis" in r.stderr and "Traceback" not in r.stderr
