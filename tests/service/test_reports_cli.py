"""``gpupool report usage|public`` run by the real CLI through the real client against the
service (SQLite and PostgreSQL): every format carries the API's figures, bad options end in
exit 2 naming the option, and the public report is one self-contained page per language, with
a CSV file per table and no tenant's private detail."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from gpupool.cli import client_cmd
from gpupool.cli.main import app
from gpupool.client import ClientConfig, GpupoolClient
from tests.service.conftest import Service
from tests.service.test_reports import seed

runner = CliRunner()
RANGE = ["--from", "2027-01-15", "--to", "2027-01-17"]
#: what the seeded jobs carry that the public report must never show
PRIVATE = ("minjun", "jiwoo", "june.paik", "prof.lee", "vision", "llm", "/snu", "/kaist", "furiosaai/serving")


class As:
    """Whose token the CLI's client carries."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.user = "admin"

    def client(self, _: ClientConfig | None) -> GpupoolClient:
        token = self.service.admin_token if self.user == "admin" else self.service.token(self.user)
        return GpupoolClient("http://testserver", token, transport=self.service.http._transport)


@pytest.fixture
def who(service: Service, monkeypatch: pytest.MonkeyPatch) -> As:
    monkeypatch.setenv("GPUPOOL_LANG", "en")
    w = As(service)
    monkeypatch.setattr(client_cmd, "client_factory", w.client)
    seed(service)
    return w


def cli(who: As, user: str, *args: str, code: int = 0) -> Any:
    who.user = user
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, (args, r.output)
    return r


def api_rows(service: Service, user: str, **params: str) -> list[dict[str, Any]]:
    r = service.call("GET", "/v1/reports/usage", user, params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["rows"])


def test_usage_in_every_format(service: Service, who: As, tmp_path: Path) -> None:
    expected = api_rows(
        service, "prof.lee", by="sector", every="day", **{"from": "2027-01-15", "to": "2027-01-17"}
    )
    assert len(expected) == 3
    args = ["report", "usage", "--by", "sector", "--every", "day", *RANGE]
    got = json.loads(cli(who, "prof.lee", *args, "--format", "json").stdout)
    assert got["rows"] == expected and got["scope"] == "whole totals of the groups you may see"
    csv = pl.read_csv(io.StringIO(cli(who, "prof.lee", *args, "--format", "csv").stdout))
    assert csv["gpu_hours"].to_list() == [r["gpu_hours"] for r in expected]
    assert csv["period"].to_list() == ["2027-01-15", "2027-01-15", "2027-01-16"]
    assert csv["wait_p50_s"].to_list() == [0.0, 1800.0, None]
    parquet = tmp_path / "usage.parquet"
    cli(who, "prof.lee", *args, "--format", "parquet", "--out", str(parquet))
    frame = pl.read_parquet(parquet)
    assert frame.to_dicts() == [{k: r[k] for k in frame.columns} for r in expected]
    table = cli(who, "prof.lee", *args).stdout
    assert "academia" in table and "GB200" in table and "30.0" in table  # the 30-minute wait
    # a member by project: her own project, said so; the table in Korean
    mine = json.loads(
        cli(who, "jiwoo.han", "report", "usage", "--by", "project", *RANGE, "--format", "json").stdout
    )
    assert mine["scope"] == "your projects only" and {r["key"] for r in mine["rows"]} == {
        "academia/kaist/llm"
    }
    who.user = "jiwoo.han"
    ko = runner.invoke(app, ["report", "usage", "--by", "project", *RANGE], env={"GPUPOOL_LANG": "ko"})
    assert ko.exit_code == 0 and "내 프로젝트만" in ko.stdout and "프로젝트별 사용량" in ko.stdout


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--from", "yesterday"], "--from"),
        (["--to", "2027-13-01"], "--to"),
        (["--every", "fortnight"], "--every"),
        (["--by", "galaxy"], "--by"),
        (["--format", "xlsx"], "--format"),
        (["--format", "parquet"], "--out"),
    ],
)
def test_bad_usage_options_exit_2_naming_the_option(who: As, args: list[str], names: str) -> None:
    r = cli(who, "admin", "report", "usage", *args, code=2)
    assert names in " ".join(r.output.split())


def test_a_range_the_server_refuses_is_its_problem_document(who: As) -> None:
    r = cli(
        who,
        "admin",
        "report",
        "usage",
        "--from",
        "2027-01-17",
        "--to",
        "2027-01-15",
        "--format",
        "json",
        code=4,
    )
    assert json.loads(r.stdout)["errors"][0]["field"] == "to"


def test_public_report_pages_in_both_languages(service: Service, who: As, tmp_path: Path) -> None:
    pages: dict[str, str] = {}
    for lang in ("en", "ko"):
        out = tmp_path / lang
        r = cli(
            who, "june.paik", "report", "public", "--period", "2027-01", "--out", str(out), "--lang", lang
        )
        assert "report.html" in r.stdout
        pages[lang] = (out / "report.html").read_text(encoding="utf-8")
        assert {p.name for p in out.iterdir()} == {
            "report.html", "report.json", "pool.csv", "sectors.csv", "calls.csv", "models.csv",
        }  # fmt: skip
        sectors = pl.read_csv(out / "sectors.csv")
        assert dict(zip(sectors["sector"], sectors["gpu_hours"], strict=True)) == {
            "academia": 36.0, "public-research": 0.0, "startups": 6.0,
        }  # fmt: skip
        models = pl.read_csv(out / "models.csv")
        assert models.filter(pl.col("domestic"))["model"].to_list() == ["RNGD"]
        pool = dict(pl.read_csv(out / "pool.csv").iter_rows())
        assert pool["gpu_hours"] == 42.0 and pool["domestic_npu_gpu_hours"] == 6.0
    en, ko = pages["en"], pages["ko"]
    assert '<html lang="en">' in en and "Public report on the national GPU pool: 2027-01" in en
    assert "<h2>Sectors</h2>" in en and "<h2>Waiting times</h2>" in en and "국가 GPU 풀" not in en
    assert '<html lang="ko">' in ko and "국가 GPU 풀 공개 보고서: 2027-01" in ko
    assert "<h2>부문별 현황</h2>" in ko and "<h2>대기 시간</h2>" in ko and "Waiting times" not in ko
    for page in (en, ko):
        # self-contained: no address outside the page, figures inline, no script
        assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:)""", page)
        assert "http://" not in page and "https://" not in page and "<script" not in page
        assert page.count('src="data:image/png;base64,') >= 4
        for private in PRIVATE:
            assert private not in page, private


def test_bad_public_options(who: As, tmp_path: Path) -> None:
    r = cli(who, "admin", "report", "public", "--period", "2027-Q5", "--out", str(tmp_path), code=2)
    assert "cannot read period '2027-Q5'" in r.output
    r = cli(
        who, "admin", "report", "public", "--period", "2027", "--out", str(tmp_path), "--lang", "fr", code=2
    )
    assert "--lang" in r.output
