"""The command line in Korean and English (``gpupool.translation``, gettext catalogues via Babel).

A client command against the real service (in process, SQLite) and the real ``gpupool``
process print Korean under ``LANG=ko_KR.UTF-8`` and English under ``GPUPOOL_LANG=en``; every
message the sources mark is in the catalogue and translated, with the same placeholders; the
shipped ``.mo`` says what its ``.po`` says.
"""

from __future__ import annotations

import gettext
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from typer.testing import CliRunner

from gpupool.cli import client_cmd
from gpupool.cli.main import app
from gpupool.client import ClientConfig, GpupoolClient
from gpupool.translation import DOMAIN, LOCALE_DIR, language
from tests.service.conftest import Service, sqlite_service

__all__ = ["sqlite_service"]  # a fixture, used by name
ROOT = Path(__file__).resolve().parents[1]
PO = LOCALE_DIR / "ko" / "LC_MESSAGES" / f"{DOMAIN}.po"
MO = PO.with_suffix(".mo")
HANGUL = re.compile(r"[\uac00-\ud7a3]")
runner = CliRunner()


def ko_catalogue() -> list[tuple[str | tuple[str, ...], str | tuple[str, ...]]]:
    with PO.open("rb") as f:
        cat = read_po(f, locale="ko")
    return [(m.id if isinstance(m.id, str) else tuple(m.id), m.string) for m in cat if m.id]


def fields(text: str | tuple[str, ...]) -> set[str]:
    parts = [text] if isinstance(text, str) else list(text)
    return {p for s in parts for p in re.findall(r"\{(\w+)\}", s)}


def test_the_language_comes_from_gpupool_lang_then_the_locale() -> None:
    assert language({}) == "en"
    assert language({"LANG": "ko_KR.UTF-8"}) == "ko"
    assert language({"LANG": "ko_KR.UTF-8", "LC_ALL": "C.UTF-8"}) == "en"  # LC_ALL wins, as in gettext
    assert language({"LANG": "en_US.UTF-8", "LC_MESSAGES": "ko_KR"}) == "ko"
    assert language({"LANG": "ko_KR.UTF-8", "GPUPOOL_LANG": "en"}) == "en"
    assert language({"GPUPOOL_LANG": "ko"}) == "ko"
    assert language({"LANG": "fr_FR.UTF-8"}) == "en"  # no French catalogue: English


def test_every_msgid_has_a_korean_translation_with_its_placeholders() -> None:
    entries = ko_catalogue()
    assert len(entries) >= 40
    for msgid, msgstr in entries:
        strings = [msgstr] if isinstance(msgstr, str) else list(msgstr)
        assert all(strings), f"untranslated: {msgid!r}"
        assert any(HANGUL.search(s) for s in strings) or msgid == "id", f"not Korean: {msgid!r} -> {msgstr!r}"
        assert fields(msgid) == fields(msgstr), f"placeholders differ: {msgid!r} -> {msgstr!r}"
        # Rich markup is kept balanced, so a translation cannot break the console's output
        for s in strings:
            assert s.count("[bold]") == s.count("[/]") - s.count("[link="), (msgid, s)


def test_the_catalogue_holds_every_message_the_sources_mark() -> None:
    """``scripts/i18n extract`` was run: no marked message is missing from the .po."""
    found = {
        (msgid if isinstance(msgid, str) else tuple(msgid))
        for _file, _line, msgid, _comments, _context in extract_from_dir(
            str(ROOT),
            method_map=[
                ("src/gpupool/cli/**.py", "python"),
                ("src/gpupool/service/report/**.py", "python"),
                ("src/gpupool/translation.py", "python"),
            ],
            keywords={"_": None, "n_": (1, 2)},
        )
    }
    po = {msgid for msgid, _ in ko_catalogue()}
    assert found - po == set(), f"run scripts/i18n extract, then translate: {sorted(map(str, found - po))}"
    assert po - found == set(), f"obsolete messages in the catalogue: {sorted(map(str, po - found))}"


def test_the_shipped_mo_is_compiled_from_the_po() -> None:
    """``scripts/i18n compile`` was run after the last change to the .po."""
    with PO.open("rb") as f:
        cat = read_po(f, locale="ko")
    fresh = io.BytesIO()
    write_mo(fresh, cat)
    fresh.seek(0)
    with MO.open("rb") as f:
        shipped = gettext.GNUTranslations(f)
    compiled = gettext.GNUTranslations(fresh)
    assert shipped._catalog == compiled._catalog  # type: ignore[attr-defined]


@pytest.fixture
def real_client(
    sqlite_service: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Service]:
    """The client commands against the real service (in process), as minjun.kim."""
    token = sqlite_service.token("minjun.kim")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for var in ("GPUPOOL_CONFIG", "GPUPOOL_URL", "GPUPOOL_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    transport = sqlite_service.http._transport

    def factory(config: ClientConfig | None) -> GpupoolClient:
        return GpupoolClient("http://testserver", token, transport=transport)

    monkeypatch.setattr(client_cmd, "client_factory", factory)
    yield sqlite_service


def test_client_commands_speak_korean_under_a_korean_locale(real_client: Service) -> None:
    ko = {"LANG": "ko_KR.UTF-8"}
    r = runner.invoke(app, ["submit", "-p", "vision", "-g", "1", "-t", "1h", "--", "true"], env=ko)
    assert r.exit_code == 0, r.output
    assert "제출했습니다: 작업" in r.output and "프로젝트 academia/snu/vision" in r.output
    r = runner.invoke(app, ["queue"], env=ko)
    assert r.exit_code == 0, r.output
    assert "작업 1개" in r.output and "예상 시작" in r.output and "사유" in r.output
    r = runner.invoke(app, ["usage", "--by", "sector"], env=ko)
    assert r.exit_code == 0, r.output
    assert "부문별 사용량" in r.output and "유효 GPU 시간" in r.output
    # the same commands in English when the user asks for it
    r = runner.invoke(app, ["queue"], env={**ko, "GPUPOOL_LANG": "en"})
    assert "1 job" in r.output and "est. start" in r.output and not HANGUL.search(r.output.split("\n")[0])


def test_the_gpupool_process_prints_korean_errors_under_lang_ko() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUPOOL_", "LC_"))}
    cmd = [
        sys.executable,
        "-c",
        "from gpupool.cli.main import app; app()",
        "submit",
        "-p",
        "x",
        "-t",
        "5",
        "--",
        "true",
    ]
    ko = subprocess.run(cmd, env={**env, "LANG": "ko_KR.UTF-8"}, capture_output=True, text=True, timeout=60)
    assert ko.returncode == 2
    assert "오류:" in ko.stderr and "기간으로 읽을 수 없습니다" in ko.stderr, ko.stderr
    en = subprocess.run(cmd, env={**env, "LANG": "C.UTF-8"}, capture_output=True, text=True, timeout=60)
    assert en.returncode == 2 and "error: cannot read '5' as a duration" in en.stderr, en.stderr
