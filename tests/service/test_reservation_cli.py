"""``gpupool reservation create|list|delete`` end to end: the real command line as a process,
through the Python client over HTTP to a real ``gpupool serve`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import database_url  # noqa: F401 - a fixture, used by name
from tests.service.live_server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:  # noqa: F811
    srv = LiveServer.start(tmp_path / "data", "--database-url", database_url)
    try:
        yield srv
    finally:
        srv.stop()


def gpupool(srv: LiveServer, *args: str, code: int = 0) -> Any:
    """Run ``gpupool reservation ARGS`` as the pool admin; its JSON (with --json) or its text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    env |= {"GPUPOOL_URL": srv.url, "GPUPOOL_TOKEN": srv.admin, "GPUPOOL_LANG": "en", "COLUMNS": "200"}
    r = subprocess.run(
        [sys.executable, "-c", "from gpupool.cli.main import app; app()", "reservation", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    if "--json" in args and code == 0:
        return json.loads(r.stdout)
    return r.stdout if code == 0 else " ".join(r.stderr.split())


def test_reservations_from_the_command_line(server: LiveServer) -> None:
    made = gpupool(server, "create", "--start", "2099-01-01T00:00Z", "--duration", "4h", "--cluster", "kisti",
                   "--model", "H200", "--count", "8", "--note", "firmware", "--json")  # fmt: skip
    assert made["purpose"] == "maintenance" and made["end_ms"] - made["start_ms"] == 4 * 3_600_000
    workshop = gpupool(server, "create", "--start", "2099-01-01T00:00Z", "--end", "2099-01-02T00:00Z",
                       "--cluster", "kisti", "--model", "H100", "--count", "16",
                       "--tenant", "academia/snu/vision", "--json")  # fmt: skip
    assert workshop["tenants"] == ["academia/snu/vision"]
    listed = gpupool(server, "list", "--json")
    assert [r["id"] for r in listed] == [made["id"], workshop["id"]]
    table = gpupool(server, "list")
    assert "maintenance" in table and "academia/snu/vision" in table and "firmware" in table
    # bad input exits 2 naming the option; a refusal (overlap) exits 4 with the server's reason
    assert "--start" in gpupool(server, "create", "--start", "soon", "--duration", "1h", code=2)
    assert "--end" in gpupool(server, "create", "--start", "2099-01-01T00:00Z", code=2)
    clash = gpupool(server, "create", "--start", "2099-01-01T01:00Z", "--duration", "1h",
                    "--cluster", "kisti", "--model", "H200", "--count", "1", code=4)  # fmt: skip
    assert "overlapping" in clash
    assert gpupool(server, "delete", str(made["id"]), "--json") == {"id": made["id"], "deleted": True}
    assert [r["id"] for r in gpupool(server, "list", "--json")] == [workshop["id"]]
