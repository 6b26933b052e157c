"""``gpupool admin tenants|users|memberships|tokens|allocations|calls|applications|drains|audit``
end to end: the real command line, as a separate process, through the real Python client over
HTTP to a real ``gpupool serve`` (SQLite and PostgreSQL), with ``--json`` and the tables; what
each command changed is read back through the API; refusals and bad input exit 4 and 2.
"""

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
PROJECT = "academia/snu/robotics"


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:  # noqa: F811
    srv = LiveServer.start(tmp_path / "data", "--database-url", database_url)
    try:
        yield srv
    finally:
        srv.stop()


def gpupool(srv: LiveServer, token: str, *args: str, code: int = 0) -> Any:
    """Run ``gpupool admin ARGS`` as its own process; the JSON it printed (with --json) or its text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    env |= {"GPUPOOL_URL": srv.url, "GPUPOOL_TOKEN": token, "GPUPOOL_LANG": "en", "COLUMNS": "200"}
    r = subprocess.run(
        [sys.executable, "-c", "from gpupool.cli.main import app; app()", "admin", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    if "--json" in args:
        return json.loads(r.stdout)
    return r.stdout if code == 0 else " ".join(r.stderr.split())


def test_the_whole_api_from_gpupool_admin(server: LiveServer) -> None:
    admin = server.admin
    # users and tokens
    user = gpupool(server, admin, "users", "create", "prof.kang", "--display-name", "강민서 교수", "--json")
    assert (user["name"], user["role"], user["display_name"]) == ("prof.kang", "user", "강민서 교수")
    tok = gpupool(server, admin, "tokens", "create", "--user", "prof.kang", "--name", "ci", "--json")
    kang = tok["token"]
    assert tok["user"] == "prof.kang" and kang.startswith("gpt_")
    assert "prof.kang" in gpupool(server, admin, "users", "list")

    # tenants: a new project under an organisation, then changed
    made = gpupool(server, admin, "tenants", "create", "robotics", "--parent", "academia/snu",
                   "--name", "로봇 연구실", "--weight", "1.5", "--json")  # fmt: skip
    assert (made["path"], made["kind"], made["weight"]) == (PROJECT, "project", 1.5)
    changed = gpupool(server, admin, "tenants", "update", PROJECT, "--weight", "2", "--over-budget", "reject",
                      "--json")  # fmt: skip
    assert (changed["weight"], changed["over_budget"]) == (2.0, "reject")
    shown = gpupool(server, admin, "tenants", "show", PROJECT, "--json")
    assert shown["name"] == "로봇 연구실" and shown["parent"] == "academia/snu"
    projects = gpupool(server, admin, "tenants", "list", "--kind", "project", "--json")
    assert PROJECT in {t["path"] for t in projects} and {t["kind"] for t in projects} == {"project"}
    assert PROJECT in gpupool(server, admin, "tenants", "list")

    # memberships: the new user leads the project, and sees it now
    gpupool(server, admin, "memberships", "add", PROJECT, "prof.kang", "--role", "lead")
    members = gpupool(server, admin, "memberships", "list", PROJECT, "--json")
    assert {"user": "prof.kang", "role": "lead"} in [{"user": m["user"], "role": m["role"]} for m in members]
    assert PROJECT in {t["path"] for t in gpupool(server, kang, "tenants", "list", "--json")}

    # allocations: granted active by the admin, requested by the lead, moved by the admin
    granted = gpupool(server, admin, "allocations", "create", "--project", PROJECT, "--hours", "500",
                      "--model", "H100", "--start", "now", "--end", "2099-01-01", "--state", "active",
                      "--json")  # fmt: skip
    assert (granted["gpu_hours"], granted["state"], granted["model"]) == (500.0, "active", "H100")
    asked = gpupool(server, kang, "allocations", "create", "--project", PROJECT, "--hours", "80",
                    "--start", "now", "--end", "2099-01-01", "--json")  # fmt: skip
    assert asked["state"] == "requested"
    refused = gpupool(server, kang, "allocations", "set", str(asked["id"]), "active", code=4)
    assert "403" in refused or "pool admin" in refused, refused
    assert (
        gpupool(server, admin, "allocations", "set", str(asked["id"]), "rejected", "--json")["state"]
        == "rejected"
    )
    mine = gpupool(server, kang, "allocations", "list", "--project", PROJECT, "--json")
    assert sorted(a["state"] for a in mine) == ["active", "rejected"]

    # drains: a node out of scheduling and back, with the reason kept
    nodes = gpupool(server, admin, "drains", "list", "--all", "--json")
    node = nodes[0]["name"]
    assert gpupool(server, admin, "drains", "list", "--json") == []  # every node is up
    gpupool(server, admin, "drains", "drain", node, "--reason", "메모리 교체")
    drained = gpupool(server, admin, "drains", "list", "--json")
    assert [(n["name"], n["state"], n["reason"]) for n in drained] == [(node, "drained", "메모리 교체")]
    assert node in gpupool(server, admin, "drains", "list")
    assert gpupool(server, kang, "drains", "drain", node, code=4)  # pool admins only
    gpupool(server, admin, "drains", "undrain", node)
    assert gpupool(server, admin, "drains", "list", "--json") == []

    # calls and applications are mounted here too
    assert gpupool(server, admin, "calls", "list", "--json") == []
    assert gpupool(server, admin, "applications", "list", "--json") == []

    # the audit log saw every step, and is the pool admins'
    actions = {r["action"] for r in gpupool(server, admin, "audit", "--limit", "500", "--json")}
    assert {"user.create", "token.create", "tenant.create", "tenant.update", "membership.set",
            "allocation.create", "allocation.update"} <= actions, actions  # fmt: skip
    only = gpupool(server, admin, "audit", "--action", "tenant.update", "--json")
    assert [(r["action"], r["target"]) for r in only] == [("tenant.update", f"tenant/{PROJECT}")], only
    assert gpupool(server, kang, "audit", code=4)
    assert gpupool(server, kang, "users", "list", code=4)  # users are read by pool admins and viewers

    # memberships and tokens taken back
    gpupool(server, admin, "memberships", "remove", PROJECT, "prof.kang")
    assert PROJECT not in {t["path"] for t in gpupool(server, kang, "tenants", "list", "--json")}
    own = gpupool(server, kang, "tokens", "list", "--json")
    assert [t["name"] for t in own] == ["ci"]
    gpupool(server, kang, "tokens", "revoke", str(own[0]["id"]))
    gpupool(server, kang, "tokens", "list", code=4)  # the token no longer works


def test_bad_input_exits_2_naming_the_option(server: LiveServer) -> None:
    admin = server.admin
    for args, named in [
        (["tenants", "create", "x", "--guarantee", "H100"], "--guarantee"),
        (["tenants", "list", "--kind", "galaxy"], "--kind"),
        (["tenants", "update", "academia"], "nothing to change"),
        (["users", "create", "someone", "--role", "boss"], "--role"),
        (["memberships", "add", "academia/snu/vision", "minjun.kim", "--role", "owner"], "--role"),
        (["tokens", "create", "--expires-in", "forever"], "--expires-in"),
        (
            [
                "allocations",
                "create",
                "--project",
                "academia/snu/vision",
                "--hours",
                "1",
                "--start",
                "soon",
                "--end",
                "2099-01-01",
            ],
            "--start",
        ),
        (
            [
                "allocations",
                "create",
                "--project",
                "academia/snu/vision",
                "--hours",
                "1",
                "--start",
                "now",
                "--end",
                "2099-01-01",
                "--over-budget",
                "maybe",
            ],
            "--over-budget",
        ),
    ]:
        said = gpupool(server, admin, *args, code=2)
        assert named in said, (args, said)
    # the server's own validation: a 422 naming the field, exit 4, nothing written
    said = gpupool(server, admin, "tenants", "create", "Bad Key!", "--parent", "academia/snu", code=4)
    assert "key" in said, said
    assert "Bad Key!" not in json.dumps(gpupool(server, admin, "tenants", "list", "--json"))
