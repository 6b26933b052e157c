"""The client and its CLI against the real service: uvicorn over ``create_app`` on SQLite.

One server for the module (demo fleet, the local executor on simulated GPUs, a 50 ms cycle);
jobs are real ``python -c`` processes. What the mock-transport tests assume about the API is
checked here against the API itself.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.client import BadRequest, GpupoolClient, NotFound, Unauthorized
from gpupool.service.api.app import create_app
from gpupool.service.executors.sandbox import job_python
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings

runner = CliRunner()
MEMBER = "minjun.kim"  # a member of academia/snu/vision in the demo tenants
PY = job_python()  # jobs run as unprivileged accounts (ADR 0005)


@dataclass
class Live:
    url: str
    admin: str
    token: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("service")
    settings = ServiceSettings(data_dir=data, fleet="demo", cycle_interval_ms=50, terminate_grace_s=1)
    runtime = Runtime(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    admin = runtime.new_admin_token or runtime.mint_admin_token("test")
    with GpupoolClient(url, admin) as c:
        token = str(c._json("POST", "/v1/tokens", json={"user": MEMBER})["token"])
    try:
        yield Live(url, admin, token)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def env(live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Live:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("GPUPOOL_CONFIG", raising=False)
    monkeypatch.setenv("GPUPOOL_URL", live.url)
    monkeypatch.setenv("GPUPOOL_TOKEN", live.token)
    return live


def wait_state(c: GpupoolClient, job_id: str, states: set[str], timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        job = c.job(job_id)
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stayed {job['state']}"
        time.sleep(0.05)


def test_submit_run_and_read_logs_through_the_cli(env: Live, tmp_path: Path) -> None:
    code = "import os; print('cvd=' + os.environ['CUDA_VISIBLE_DEVICES'], os.environ['GPUPOOL_GPUS'])"
    tmp_path.chmod(0o755)  # the job's account (not root: ADR 0005) must be able to enter its cwd
    got = runner.invoke(
        app,
        ["submit", "-p", "vision", "-g", "2", "-m", "H100", "-t", "5m", "--name", "첫 작업", "--json",
         "--cwd", str(tmp_path), "--", PY, "-c", code],
    )  # fmt: skip
    assert got.exit_code == 0, got.output
    job = json.loads(got.stdout)
    assert (job["project"], job["name"], job["gpus"], job["walltime_s"]) == (
        "academia/snu/vision",
        "첫 작업",
        2,
        300,
    )
    with GpupoolClient(env.url, env.token) as c:
        done = wait_state(c, job["id"], {"completed", "failed"})
    assert done["state"] == "completed" and done["exit_code"] == 0
    logs = runner.invoke(app, ["logs", job["id"]])
    assert logs.exit_code == 0
    ids = ",".join(str(i) for i in done["placement"][0]["accelerators"])  # type: ignore[index]
    assert logs.stdout == f"cvd={ids} 2\n"
    queue = runner.invoke(app, ["queue", "--project", "academia/snu/vision"])
    assert queue.exit_code == 0 and "첫 작업" in queue.output and "completed" in queue.output
    show = runner.invoke(app, ["show", job["id"]])
    assert show.exit_code == 0 and "academia/snu/vision" in show.output


def test_explain_and_cancel_a_running_job(env: Live) -> None:
    got = runner.invoke(
        app, ["submit", "-p", "vision", "--json", "--", PY, "-c", "import time; time.sleep(60)"]
    )
    job_id = json.loads(got.stdout)["id"]
    with GpupoolClient(env.url, env.token) as c:
        wait_state(c, job_id, {"running"})
        explain = runner.invoke(app, ["explain", job_id, "--json"])
        assert explain.exit_code == 0 and json.loads(explain.stdout)["state"] == "running"
        cancel = runner.invoke(app, ["cancel", job_id])
        assert cancel.exit_code == 0, cancel.output
        assert wait_state(c, job_id, {"cancelled"})["state"] == "cancelled"
        again = runner.invoke(app, ["cancel", job_id])
        assert again.exit_code == 4 and "409" in again.output


def test_idempotent_submission_against_the_server(env: Live) -> None:
    request = {"project": "vision", "gpus": 1, "command": [PY, "-c", "pass"]}
    with GpupoolClient(env.url, env.token) as c:
        first = c.submit(request, idempotency_key="live-key-1")
        again = c.submit(request, idempotency_key="live-key-1")
    assert first.created and not again.created and first.job["id"] == again.job["id"]


def test_the_servers_problem_documents_become_typed_errors(env: Live) -> None:
    with GpupoolClient(env.url, env.token) as c:
        with pytest.raises(BadRequest) as bad:
            c.submit({"project": "vision", "gpus": 1, "command": ["x"], "models": ["NOPE"]})
        assert bad.value.status == 422 and any(e.field.startswith("models") for e in bad.value.errors)
        with pytest.raises(NotFound):
            c.job("999999")
    with GpupoolClient(env.url, "not-a-token") as c, pytest.raises(Unauthorized):
        c.me()


def test_login_and_usage(env: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUPOOL_TOKEN")
    got = runner.invoke(app, ["login", "--url", env.url, "--token", env.token])
    assert got.exit_code == 0, got.output
    assert f"as {MEMBER}" in got.output
    usage = runner.invoke(app, ["usage", "--by", "organisation", "--json"])
    assert usage.exit_code == 0, usage.output
    assert json.loads(usage.stdout)["by"] == "organisation"


def test_tokens_create_list_and_revoke_through_the_cli(env: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    got = runner.invoke(
        app, ["tokens", "create", "--name", "노트북", "--scope", "read", "--expires-in", "30d"]
    )
    assert got.exit_code == 0, got.output
    secret = got.stdout.strip().splitlines()[-1]
    assert secret.startswith("gpt_") and "(read)" in got.stdout
    listed = runner.invoke(app, ["tokens", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    mine = [t for t in json.loads(listed.stdout)["items"] if t["name"] == "노트북"]
    assert len(mine) == 1 and mine[0]["scopes"] == ["read"] and "token" not in mine[0]
    assert mine[0]["expires_ms"] - mine[0]["created_ms"] == 30 * 86_400_000
    table = runner.invoke(app, ["tokens", "list"])
    assert table.exit_code == 0 and "노트북" in table.output and "active" in table.output
    # the read token reads and cannot submit
    monkeypatch.setenv("GPUPOOL_TOKEN", secret)
    assert runner.invoke(app, ["queue"]).exit_code == 0
    refused = runner.invoke(app, ["submit", "-p", "vision", "--", PY, "-c", "pass"])
    assert refused.exit_code == 4 and "403" in refused.output and "submit" in refused.output
    wider = runner.invoke(app, ["tokens", "create", "--scope", "admin"])
    assert wider.exit_code == 4
    # revoked with the member's own token: it stops working
    monkeypatch.setenv("GPUPOOL_TOKEN", env.token)
    gone = runner.invoke(app, ["tokens", "revoke", str(mine[0]["id"])])
    assert gone.exit_code == 0, gone.output
    with GpupoolClient(env.url, secret) as c, pytest.raises(Unauthorized):
        c.me()
    bad = runner.invoke(app, ["tokens", "create", "--expires-in", "90"])
    assert bad.exit_code == 2 and "unit" in bad.output


def test_a_pipeline_through_the_cli_queue_and_explain_say_what_it_waits_for(env: Live) -> None:
    first = runner.invoke(
        app, ["submit", "-p", "vision", "--json", "--", PY, "-c", "import time; time.sleep(60)"]
    )
    a = json.loads(first.stdout)["id"]
    got = runner.invoke(
        app, ["submit", "-p", "vision", "-d", f"afterok:{a}", "--json", "--", PY, "-c", "pass"]
    )
    assert got.exit_code == 0, got.output
    b = json.loads(got.stdout)["id"]
    with GpupoolClient(env.url, env.token) as c:
        wait_state(c, a, {"running"})
        deadline = time.monotonic() + 20
        while c.job(b)["reason"] != "dependency":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        explain = json.loads(runner.invoke(app, ["explain", b, "--json"]).stdout)
        assert explain["detail"] == f"waiting for dependency {a} (afterok)"
        queue = runner.invoke(app, ["queue", "--state", "pending"], env={"COLUMNS": "200"})
        assert f"waiting for dependency {a} (afterok)" in queue.output
        assert runner.invoke(app, ["cancel", a]).exit_code == 0
        ended = wait_state(c, b, {"rejected"})
    assert ended["reason"] == "dependency-never-met"
