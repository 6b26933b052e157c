"""The programme's commands end to end: ``gpupool calls|apply|applications|review|award`` run by
the real CLI through the real client against the service (SQLite and PostgreSQL), from a call
to an award that a job is charged against, with ``--json`` and the tables."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from gpupool.cli import client_cmd
from gpupool.cli.main import app
from gpupool.client import ClientConfig, GpupoolClient
from tests.service.conftest import Service

HOUR = 3_600_000
DAY = 24 * HOUR
runner = CliRunner()


class As:
    """Whose token the CLI's client carries (the test switches users between commands)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.user = "admin"

    def client(self, _: ClientConfig | None) -> GpupoolClient:
        token = self.service.admin_token if self.user == "admin" else self.service.token(self.user)
        # the CLI's real client, over the in-process app (the TestClient's transport)
        return GpupoolClient("http://testserver", token, transport=self.service.http._transport)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


def run(who: As, user: str, *args: str, code: int = 0) -> Any:
    who.user = user
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, (args, r.output)
    if "--json" in args:
        return json.loads(r.stdout)  # the answer, or the problem document
    return r.output if code == 0 else " ".join(r.output.split())  # an error line, unwrapped


@pytest.fixture
def who(service: Service, monkeypatch: pytest.MonkeyPatch) -> As:
    w = As(service)
    monkeypatch.setattr(client_cmd, "client_factory", w.client)
    for project, lead in (("academia/kaist/llm", "jiwoo.han"), ("academia/snu/vision", "minjun.kim")):
        r = service.call("POST", f"/v1/projects/{project}/members", json={"user": lead, "role": "lead"})
        assert r.status_code == 200, r.text
    return w


def test_the_programme_from_the_command_line(service: Service, who: As) -> None:
    now = service.clock()
    call = run(
        who, "admin", "calls", "create", "--json",
        "--title-ko", "2027 AI 연구 지원", "--title-en", "2027 AI research support",
        "--sector", "academia", "--hours", "H100=1000", "--guarantee", "H100=4",
        "--period-start", iso(now), "--period-end", iso(now + 180 * DAY),
        "--opens", iso(now - 1), "--closes", iso(now + 30 * DAY),
        "--criterion", "merit:3:Scientific merit", "--criterion", "feasibility:1",
    )  # fmt: skip
    cid = str(call["id"])
    assert call["state"] == "draft" and call["criteria"][1] == {"key": "feasibility", "name": "feasibility",
                                                                "weight": 1.0}  # fmt: skip
    assert "is open" in run(who, "admin", "calls", "open", cid)
    listed = run(who, "minjun.kim", "calls", "list")
    assert "2027 AI research support" in listed and "accepting" in listed

    llm = run(
        who, "jiwoo.han", "apply", "--json", "--call", cid, "--project", "llm", "--title", "Korean LLM",
        "--hours", "H100=800", "--guarantee", "H100=4", "--justification", "pre-training",
        "--outputs", "a model",
    )  # fmt: skip
    vision = run(
        who, "minjun.kim", "applications", "create", "--json", "--call", cid, "--project", "vision",
        "--title", "Vision", "--hours", "H100=600", "--justification", "detection",
    )  # fmt: skip
    for app_id, lead in ((llm["id"], "jiwoo.han"), (vision["id"], "minjun.kim")):
        assert "is submitted" in run(who, lead, "applications", "submit", str(app_id))
    # not a member: it does not exist for her
    out = run(who, "hayoon.choi", "applications", "show", str(llm["id"]), code=4)
    assert "not found" in out
    service.call("POST", "/v1/users", json={"name": "reviewer.an"})
    run(who, "admin", "calls", "reviewer", cid, "reviewer.an")
    assert "seoyeon.lee" in run(who, "admin", "calls", "reviewer", cid, "seoyeon.lee")
    run(who, "admin", "calls", "close", cid)

    out = run(who, "seoyeon.lee", "review", str(vision["id"]), "--score", "merit=9",
              "--score", "feasibility=9", code=4)  # fmt: skip
    assert "conflict of interest" in out
    run(who, "seoyeon.lee", "review", str(llm["id"]), "--score", "merit=9", "--score", "feasibility=8")
    run(who, "reviewer.an", "applications", "review", str(llm["id"]), "--score", "merit=7", "--score",
        "feasibility=8", "--comment", "solid plan")  # fmt: skip
    run(who, "reviewer.an", "review", str(vision["id"]), "--score", "merit=6", "--score", "feasibility=4")
    ranking = run(who, "admin", "calls", "ranking", cid, "--json")
    assert [(i["project"], i["score"]) for i in ranking["items"]] == [
        ("academia/kaist/llm", 8.0), ("academia/snu/vision", 5.5)
    ]  # fmt: skip
    table = run(who, "admin", "calls", "ranking", cid)
    assert "8.00 / 10" in table and table.index("academia/kaist/llm") < table.index("academia/snu/vision")

    out = run(who, "admin", "award", str(llm["id"]), "--hours", "H100=500", "--guarantee", "H100=4")
    assert "is partly_awarded: H100 500.0 GPU-hours" in out
    out = run(who, "admin", "award", str(vision["id"]), "--hours", "H100=600", code=4)
    assert "H100: 600.0 GPU-hours asked, 500.0 left" in out
    shown = run(who, "jiwoo.han", "applications", "show", str(llm["id"]), "--json")
    (alloc_id,) = shown["award"]["allocation_ids"]

    # a job of the awarded project is accepted and charged against the award's allocation
    service.cycle()
    job = service.submit("jiwoo.han", project="llm", gpus=1, models=["H100"])
    assert job.status_code == 201 and not job.json()["over_budget"], job.text
    service.cycle()
    service.clock.advance(3 * HOUR)
    service.executor.finish(service.executor.launches[-1].allocation_id)
    service.cycle()
    allocs = service.call("GET", "/v1/allocations?project=llm", "jiwoo.han").json()
    assert [(a["id"], a["used_gpu_hours"]) for a in allocs] == [(alloc_id, 3.0)]

    run(who, "junseo.oh", "applications", "output", str(llm["id"]), "--kind", "model", "--title", "llm-ko-7b",
        "--url", "https://huggingface.co/example/llm-ko-7b")  # fmt: skip
    run(who, "admin", "applications", "decline", str(vision["id"]), "--note", "nothing left")
    assert "is decided" in run(who, "admin", "calls", "decide", cid)
    report = run(who, "admin", "calls", "report", cid)
    assert "academia/kaist/llm" in report and "H100 500.0" in report and "H100 3.0" in report
    assert "llm-ko-7b" in report
    mine = run(who, "minjun.kim", "calls", "report", cid)
    assert "(your projects only)" in mine and "academia/kaist/llm" not in mine
    rows = run(who, "minjun.kim", "applications", "list", "--json")
    assert [(a["project"], a["state"]) for a in rows] == [("academia/snu/vision", "declined")]


def test_bad_input_is_refused_before_the_server(who: As) -> None:
    out = run(who, "admin", "award", "1", "--hours", "H100", code=2)
    assert "write KEY=NUMBER" in out
    out = run(who, "admin", "calls", "create", "--title-ko", "x", "--title-en", "x", "--sector", "academia",
              "--hours", "H100=1", "--period-start", "tomorrow", "--period-end", "2027-01-01",
              "--closes", "2027-01-01", "--criterion", "merit:1", code=2)  # fmt: skip
    assert "--period-start: cannot read 'tomorrow'" in out
    problem = run(who, "jiwoo.han", "applications", "submit", "999", "--json", code=4)
    assert problem["status"] == 404 and problem["detail"] == "application 999 not found"
