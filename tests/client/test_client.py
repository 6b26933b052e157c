"""The HTTP client against a recording mock transport: requests sent, answers and errors read."""

from __future__ import annotations

import socket
import stat
import tomllib
from pathlib import Path

import httpx
import pytest

from gpupool.client import (
    ApiError,
    BadRequest,
    ClientConfig,
    Conflict,
    ConnectionFailed,
    GpupoolClient,
    NotConfigured,
    NotFound,
    ServerError,
    Unauthorized,
    config_path,
)
from gpupool.client.errors import FieldError, error_for
from tests.client.fake_server import TOKEN, FakeServer

REQUEST = {"project": "학계/서울대/nlp", "gpus": 2, "command": ["python", "train.py"], "models": ["H100"]}


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def client(server: FakeServer, token: str = TOKEN) -> GpupoolClient:
    return GpupoolClient("http://pool.test/", token, transport=server.transport())


def test_submit_sends_the_body_token_and_idempotency_key(server: FakeServer) -> None:
    with client(server) as c:
        first = c.submit(REQUEST, idempotency_key="k-1")
        again = c.submit(REQUEST, idempotency_key="k-1")
        other = c.submit(REQUEST)
    req = server.requests[0]
    assert (req.method, str(req.url)) == ("POST", "http://pool.test/v1/jobs")
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Idempotency-Key"] == "k-1"
    assert req.headers["User-Agent"].startswith("gpupool-client/")
    assert server.body(0) == REQUEST
    assert first.created and not again.created and first.job["id"] == again.job["id"] == "1"
    # Without a key, each call gets a fresh UUID: a new job.
    assert other.created and other.job["id"] == "2" and len(other.idempotency_key) == 36


def test_pages_are_followed_with_the_cursor(server: FakeServer) -> None:
    with client(server) as c:
        for i in range(5):
            c.submit({**REQUEST, "name": f"run-{i}"})
        server.requests.clear()
        names = [j["name"] for j in c.iter_jobs(state="pending", limit=2)]
        capped = list(c.iter_jobs(limit=2, max_items=3))
    assert names == [f"run-{i}" for i in range(5)]
    assert [r.url.params.get("cursor") for r in server.requests[:3]] == [None, "2", "4"]
    assert all(r.url.params["state"] == "pending" for r in server.requests[:3])
    assert len(capped) == 3


def test_job_explain_cancel_logs_usage(server: FakeServer) -> None:
    with client(server) as c:
        job_id = c.submit(REQUEST).job["id"]
        assert c.job(job_id)["project"] == "학계/서울대/nlp"
        assert c.explain(job_id)["reason"] == "resources"
        assert c.logs(job_id, stream="stderr", tail=10) == f"stderr of {job_id}\n안녕\n"
        assert c.cancel(job_id)["state"] == "cancelled"
        assert c.usage(by="organisation")["items"][0]["key"] == "학계/서울대"
    logs_req = server.requests[3]
    assert logs_req.url.params["tail"] == "10"
    assert [(r.method, r.url.path) for r in server.requests[1:]] == [
        ("GET", "/v1/jobs/1"),
        ("GET", "/v1/jobs/1/explain"),
        ("GET", "/v1/jobs/1/logs"),
        ("POST", "/v1/jobs/1/cancel"),
        ("GET", "/v1/usage"),
    ]


def test_a_job_id_cannot_reach_another_route(server: FakeServer) -> None:
    with client(server) as c, pytest.raises(NotFound):
        c.job("../users/me")
    assert server.requests[-1].url.raw_path == b"/v1/jobs/..%2Fusers%2Fme"


def test_problem_documents_become_typed_errors(server: FakeServer) -> None:
    with client(server) as c:
        with pytest.raises(BadRequest) as bad:
            c.submit({**REQUEST, "gpus": 0, "project": "nowhere"})
        assert bad.value.status == 422
        assert bad.value.errors == (
            FieldError("gpus", "must be >= 1"),
            FieldError("project", "unknown project 'nowhere'"),
        )
        assert "gpus: must be >= 1" in str(bad.value)
        with pytest.raises(NotFound, match="404 Not Found: no job 99"):
            c.job("99")
        job_id = c.submit(REQUEST).job["id"]
        server.jobs[job_id]["state"] = "finished"
        with pytest.raises(Conflict):
            c.cancel(job_id)
    with client(server, token="wrong") as c, pytest.raises(Unauthorized) as unauth:
        c.me()
    assert isinstance(unauth.value, ApiError) and unauth.value.detail == "missing or unknown token"


def test_odd_error_bodies_still_give_useful_errors() -> None:
    fastapi_422 = {
        "detail": [{"loc": ["body", "gpus"], "msg": "Input should be greater than 0", "type": "x"}]
    }
    err = error_for(422, fastapi_422, "Unprocessable Entity")
    assert isinstance(err, BadRequest) and err.errors == (
        FieldError("gpus", "Input should be greater than 0"),
    )
    html = error_for(502, "<html>Bad Gateway</html>", "Bad Gateway")
    assert isinstance(html, ServerError) and html.status == 502 and "Bad Gateway" in str(html)
    assert type(error_for(418, {}, "I'm a teapot")) is ApiError


def test_an_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with GpupoolClient(f"http://127.0.0.1:{port}", TOKEN, timeout_s=2) as c, pytest.raises(ConnectionFailed):
        c.health()


def test_a_timeout_is_a_connection_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with (
        GpupoolClient("http://x", transport=httpx.MockTransport(slow)) as c,
        pytest.raises(ConnectionFailed, match="no answer in time"),
    ):
        c.health()


def test_config_comes_from_the_environment_over_the_file(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert config_path(env) == tmp_path / "gpupool" / "config.toml"
    assert ClientConfig.load(env) == ClientConfig("http://127.0.0.1:8080", "")
    with pytest.raises(NotConfigured, match="gpupool login"):
        ClientConfig.load(env).require_token()
    path = ClientConfig("https://pool.example.kr/", 'tok"en\\서울').save(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text()) == {"url": "https://pool.example.kr/", "token": 'tok"en\\서울'}
    assert ClientConfig.load(env) == ClientConfig("https://pool.example.kr", 'tok"en\\서울')
    over = {**env, "GPUPOOL_URL": "http://other:9", "GPUPOOL_TOKEN": "env-token"}
    assert ClientConfig.load(over) == ClientConfig("http://other:9", "env-token")
    named = {"GPUPOOL_CONFIG": str(tmp_path / "elsewhere.toml")}
    assert config_path(named) == tmp_path / "elsewhere.toml"
    (tmp_path / "elsewhere.toml").write_text("url = [broken")
    with pytest.raises(NotConfigured, match="not a valid config file"):
        ClientConfig.load(named)
