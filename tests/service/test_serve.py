"""``gpupool serve``: a real uvicorn on embedded SQLite, the URL and a first admin token printed once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gpupool.service.admin_banner import banner, printed_token
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
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    return out.decode(), printed_token(out.decode()) or ""


@pytest.mark.slow
def test_serve_prints_url_and_the_first_admin_token_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    out, token = _serve(data, port)
    assert f"http://127.0.0.1:{port}" in out
    assert token.startswith("gpt_") and token in out
    # stored only as a hash: no file holds it; the data directory and database are private
    assert not (data / "admin-token").exists()
    assert not any(token in p.read_text(errors="replace") for p in data.rglob("*") if p.is_file())
    assert (data / "gpupool.db").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    again, shown = _serve(data, free_port())
    assert shown == "" and token not in again and "only its hash is stored" in again
    # the token printed on the first start still answers as the pool admin
    port = free_port()
    proc = subprocess.Popen(
        [str(GPUPOOL), "serve", "--data-dir", str(data), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                me = httpx.get(
                    f"http://127.0.0.1:{port}/v1/users/me", headers={"Authorization": f"Bearer {token}"}
                )
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert me.json()["role"] == "pool-admin"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_serve_refuses_bad_options(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(GPUPOOL), "serve", "--data-dir", str(tmp_path), "--fleet", "atlantis"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "atlantis" in r.stderr and "Traceback" not in r.stderr


def test_the_printed_banner_reads_back_and_nothing_else_does() -> None:
    """The one reader of the banner (tests and benchmarks use it) finds what ``banner`` prints."""
    log = "gpupool serving fleet demo at http://127.0.0.1:1\n" + banner("gpt_abc-123_x") + "\nmore\n"
    assert printed_token(log) == "gpt_abc-123_x"
    assert printed_token("admin token: shown on the first start (only its hash is stored)\n") is None
    assert printed_token("shown once:\nnot-a-token\n") is None
