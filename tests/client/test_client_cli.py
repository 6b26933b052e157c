"""The client commands of ``gpupool`` over the recording mock server: options, tables, JSON, exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpupool.cli import client_cmd
from gpupool.cli.client_cmd import parse_duration
from gpupool.cli.main import app
from gpupool.client import ClientConfig, GpupoolClient
from tests.client.fake_server import TOKEN, FakeServer

runner = CliRunner()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("GPUPOOL_CONFIG", raising=False)
    monkeypatch.delenv("GPUPOOL_URL", raising=False)
    monkeypatch.setenv("GPUPOOL_TOKEN", TOKEN)

    def factory(config: ClientConfig | None) -> GpupoolClient:
        cfg = config if config is not None else ClientConfig.load()
        return GpupoolClient(cfg.url, cfg.token, transport=fake.transport())

    monkeypatch.setattr(client_cmd, "client_factory", factory)
    return fake


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h", 3600),
        ("2d", 172800),
        ("1h30m", 5400),
        ("90s", 90),
        ("1.5h", 5400),
        ("1w", 604800),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "seconds"), [("02:00:00", 7200), ("1-00:30", 88200), ("0:45", 2700)])
def test_slurm_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "h", "0m", "1h junk"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_a_bare_number_asks_for_a_unit() -> None:
    with pytest.raises(ValueError, match=r"add a unit: 30m, 1h, 2d"):
        parse_duration("90")


def test_submit_builds_the_request_from_options_and_the_command(server: FakeServer, tmp_path: Path) -> None:
    argv = ["submit", "--project", "학계/서울대/nlp", "--gpus", "2", "--model", "H100", "--model", "H200"]
    argv += ["--walltime", "1h", "--env", "A=b=c", "--cwd", str(tmp_path), "--idempotency-key", "key-1"]
    argv += ["--", "python", "train.py", "--lr", "3e-4"]
    got = runner.invoke(app, argv)
    assert got.exit_code == 0, got.output
    assert "submitted: job 1 in 학계/서울대/nlp, state pending" in got.output
    body = server.body()
    assert body["command"] == ["python", "train.py", "--lr", "3e-4"]  # options after -- are the job's
    assert (body["gpus"], body["models"], body["walltime_s"]) == (2, ["H100", "H200"], 3600)
    assert (body["env"], body["cwd"], body["priority_class"]) == ({"A": "b=c"}, str(tmp_path), "normal")
    assert server.requests[-1].headers["Idempotency-Key"] == "key-1"
    again = runner.invoke(app, argv)
    assert "already submitted (same idempotency key): job 1" in again.output


def test_submit_json_and_a_default_idempotency_key(server: FakeServer) -> None:
    got = runner.invoke(app, ["submit", "-p", "p", "-g", "1", "--json", "--", "true"])
    assert got.exit_code == 0, got.output
    job = json.loads(got.stdout)
    assert job["id"] == "1" and job["user"] == "김민준"  # not \uXXXX-escaped
    assert "김민준" in got.stdout
    assert len(server.requests[-1].headers["Idempotency-Key"]) == 36
    assert "walltime_s" not in server.body()  # the pool's default applies


def test_submit_refuses_bad_input_before_calling_the_server(server: FakeServer) -> None:
    got = runner.invoke(app, ["submit", "-p", "p", "-t", "90", "--", "true"])
    assert got.exit_code == 2 and "add a unit" in got.output
    got = runner.invoke(app, ["submit", "-p", "p", "--env", "NOEQUALS", "--", "true"])
    assert got.exit_code == 2 and "KEY=VALUE" in got.output
    assert server.requests == []


def test_validation_errors_name_the_fields(server: FakeServer) -> None:
    got = runner.invoke(app, ["submit", "-p", "nowhere", "--", "true"])
    assert got.exit_code == 4
    assert "422 Unprocessable Content: the job request is invalid" in got.output
    assert "project: unknown project 'nowhere'" in got.output
    as_json = runner.invoke(app, ["submit", "-p", "nowhere", "--json", "--", "true"])
    assert as_json.exit_code == 4
    assert json.loads(as_json.stdout)["errors"] == [
        {"field": "project", "message": "unknown project 'nowhere'"}
    ]


def test_queue_shows_reason_and_estimated_start_with_korean_names(server: FakeServer) -> None:
    for name in ("사전학습", "fine-tune"):
        runner.invoke(app, ["submit", "-p", "학계/서울대/자연어처리", "--name", name, "--", "true"])
    got = runner.invoke(app, ["queue"])
    assert got.exit_code == 0, got.output
    assert "2 jobs" in got.output
    for text in ("사전학습", "학계/서울대/자연어처리", "김민준", "resources", "pending", "2026-12-01"):
        assert text in got.output
    assert "1 in H100 in kisti" in got.output and "2 in H100 in kisti" in got.output  # each place
    js = json.loads(runner.invoke(app, ["queue", "--json", "--state", "pending"]).stdout)
    assert [j["name"] for j in js["items"]] == ["사전학습", "fine-tune"]
    assert server.requests[-1].url.params["state"] == "pending"


def test_show_explain_cancel_logs_usage(server: FakeServer) -> None:
    runner.invoke(app, ["submit", "-p", "p", "--", "true"])
    show = runner.invoke(app, ["show", "1"])
    assert show.exit_code == 0 and "project" in show.output and "pending" in show.output
    explain = runner.invoke(app, ["explain", "1"])
    assert "reason: resources (8 H100 free of 16 asked)" in explain.output
    assert "estimated start: 2026-12-01" in explain.output
    assert "place in queue: 1 in H100 in kisti" in explain.output
    assert runner.invoke(app, ["queue", "--state", "finished"]).exit_code == 2  # not a job state
    assert json.loads(runner.invoke(app, ["explain", "1", "--json"]).stdout)["reason"] == "resources"
    logs = runner.invoke(app, ["logs", "1", "--stderr", "--attempt", "2"])
    assert logs.stdout == "stderr of 1\n안녕\n"
    assert dict(server.requests[-1].url.params) == {"stream": "stderr", "attempt": "2"}
    usage = runner.invoke(app, ["usage", "--by", "organisation", "--since", "30d"])
    assert usage.exit_code == 0, usage.output
    assert "학계/서울대" in usage.output and "12.50" in usage.output and "14.10" in usage.output
    assert server.requests[-1].url.params["by"] == "organisation"
    assert "start" in server.requests[-1].url.params
    cancel = runner.invoke(app, ["cancel", "1"])
    assert "cancelled job 1 (state cancelled)" in cancel.output
    assert runner.invoke(app, ["show", "404"]).exit_code == 4


def test_login_checks_the_token_then_saves_it(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUPOOL_TOKEN")
    bad = runner.invoke(app, ["login", "--url", "http://pool.test", "--token", "nope"])
    assert bad.exit_code == 4 and "401" in bad.output
    assert not ClientConfig.load().token  # nothing saved
    got = runner.invoke(app, ["login", "--url", "http://pool.test/"], input=TOKEN + "\n")
    assert got.exit_code == 0, got.output
    assert "logged in to http://pool.test as 김민준" in got.output
    assert ClientConfig.load() == ClientConfig("http://pool.test", TOKEN)
    assert runner.invoke(app, ["queue"]).exit_code == 0  # the saved token is used


def test_no_token_says_how_to_get_one(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUPOOL_TOKEN")
    got = runner.invoke(app, ["queue"])
    assert got.exit_code == 4 and "401" in got.output


def test_an_unreachable_server_exits_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("GPUPOOL_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("GPUPOOL_TOKEN", "t")
    got = runner.invoke(app, ["queue", "--json"])
    assert got.exit_code == 3
    assert "is `gpupool serve` running?" in got.output
    assert "error" in json.loads(got.stdout)


def test_submit_image_sends_it_with_an_image_files_path_made_absolute(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = "nvcr.io/nvidia/pytorch:24.01-py3"
    got = runner.invoke(app, ["submit", "-p", "p", "--image", torch, "--", "true"])
    assert got.exit_code == 0, got.output
    assert server.body()["image"] == "nvcr.io/nvidia/pytorch:24.01-py3"
    monkeypatch.chdir(tmp_path)
    got = runner.invoke(app, ["submit", "-p", "p", "--image", "oci-archive:img/x.tar", "--", "true"])
    assert got.exit_code == 0, got.output
    assert server.body()["image"] == f"oci-archive:{tmp_path}/img/x.tar"
    sent = len(server.requests)
    got = runner.invoke(app, ["submit", "-p", "p", "--image", "a b", "--", "true"])
    assert got.exit_code == 2 and "--image 'a b'" in got.output
    assert len(server.requests) == sent


def test_submit_sends_a_dependency_and_refuses_a_bad_one_before_calling(server: FakeServer) -> None:
    got = runner.invoke(app, ["submit", "-p", "p", "--dependency", "afterok:j1:j2,afterany:j3", "--", "true"])
    assert got.exit_code == 0, got.output
    assert server.body()["dependency"] == "afterok:j1:j2,afterany:j3"
    sent = len(server.requests)
    got = runner.invoke(app, ["submit", "-p", "p", "-d", "afterwards:j1", "--", "true"])
    assert got.exit_code == 2 and "--dependency" in got.output and "unknown dependency type" in got.output
    assert len(server.requests) == sent


def test_submit_sends_an_array_and_refuses_a_bad_one_before_calling(server: FakeServer) -> None:
    got = runner.invoke(app, ["submit", "-p", "p", "--array", "0-99:2%10", "--", "true"])
    assert got.exit_code == 0, got.output
    assert server.body()["array"] == "0-99:2%10"
    sent = len(server.requests)
    got = runner.invoke(app, ["submit", "-p", "p", "-a", "9-1", "--", "true"])
    assert got.exit_code == 2 and "--array" in got.output and "ends before it starts" in got.output
    assert len(server.requests) == sent
