"""``gpupool fleet show``, ``gpupool fleet catalogue`` and ``gpupool tenants show``.

The sub-apps are mounted on a local Typer app the way the main CLI mounts them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gpupool.cli.fleet_cmd import fleet_app, tenants_app

app = typer.Typer()
app.add_typer(fleet_app, name="fleet")
app.add_typer(tenants_app, name="tenants")

runner = CliRunner(env={"COLUMNS": "200"})


def test_fleet_show_demo() -> None:
    r = runner.invoke(app, ["fleet", "show", "demo"])
    assert r.exit_code == 0, r.output
    for text in (
        "KISTI Daejeon",
        "NAVER Cloud Gak Sejong",
        "60 accelerators",
        "Rebellions",
        "FuriosaAI",
        "NVLink",
    ):
        assert text in r.stdout


def test_fleet_show_json() -> None:
    r = runner.invoke(app, ["fleet", "show", "korea-2025", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["name"] == "korea-2025"
    assert data["gpus"] == 261_024
    assert data["totals"]["nodes"] == 34_932
    assert data["totals"]["nvlink_racks"] == 256
    assert sum(c["gpus"] for c in data["clusters"]) == data["gpus"]
    assert data["models"]["B200"] == data["nodes_by_model"]["B200"] * 8


def test_fleet_catalogue() -> None:
    r = runner.invoke(app, ["fleet", "catalogue"])
    assert r.exit_code == 0, r.output
    assert "RNGD" in r.stdout and "0.05*" in r.stdout
    r = runner.invoke(app, ["fleet", "catalogue", "--json"])
    models = {m["name"]: m for m in json.loads(r.stdout)["models"]}
    assert "4233.2" in models["H200"]["sources"]["train-cnn"]
    assert models["ATOM"]["estimated"] == sorted(models["ATOM"]["throughput"])


def test_tenants_show_tree_with_korean_names() -> None:
    r = runner.invoke(app, ["tenants", "show", "korea-2025", "--fleet", "korea-2025"])
    assert r.exit_code == 0, r.output
    for text in ("서울대학교", "업스테이지", "독자 AI", "members:", "guaranteed B200 8,000", "entitled"):
        assert text in r.stdout


def test_tenants_show_json_round_trips_korean() -> None:
    r = runner.invoke(app, ["tenants", "show", "demo", "--fleet", "demo", "--json"])
    assert r.exit_code == 0, r.output
    assert "서울대학교" in r.stdout  # not \\uXXXX escapes
    data = json.loads(r.stdout)
    assert data["fleet"] == "demo"
    academia = data["tenants"][0]
    assert academia["children"][0]["name"] == "서울대학교"
    vision = academia["children"][0]["children"][0]
    assert vision["members"] == ["minjun.kim", "seoyeon.lee"] and 0 < vision["entitlement"] < 1


def test_tenants_show_without_fleet() -> None:
    r = runner.invoke(app, ["tenants", "show", "philly", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["fleet"] is None and data["projects"] == 15


BAD_FLEET = """\
sites:
  - name: a
    clusters:
      - name: c
        blocks: {racks: {nodes: {count: 2, model: H100, gpu: 8}}}
"""


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["fleet", "show", "{bad}"], "sites[0].clusters[0].blocks.racks.nodes.gpu: unknown key 'gpu'"),
        (["fleet", "show", "nosuch"], "no such fleet file or preset"),
        (["tenants", "show", "{quota}", "--fleet", "demo"], "above the fleet's capacity of 24"),
        (["tenants", "show", "demo", "--fleet", "{bad}"], "unknown key 'gpu'"),
    ],
)
def test_bad_input_is_one_red_line_and_exit_2(tmp_path: Path, args: list[str], what: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FLEET)
    quota = tmp_path / "quota.yaml"
    quota.write_text("sectors: {a: {organisations: {b: {projects: {c: {guaranteed: {H100: 25}}}}}}}\n")
    argv = [a.format(bad=bad, quota=quota) for a in args]
    r = runner.invoke(app, argv)
    assert r.exit_code == 2
    assert what in r.stderr
    assert r.stderr.startswith("error: ")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output
    assert r.stdout == ""
