"""The dashboard's message catalogues (``web/static/i18n/<lang>.json``) against its sources.

Every language has the same keys, the same {placeholders} per key, and the plural forms its
language needs; every key the JavaScript or the page asks for exists, found by scanning the
sources (a literal ``t("key")``, a ``data-i18n`` attribute, a plural unit ``"unit.x"``, and the
keys built from a prefix and a known list of values); and no key is left unused.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

from gpupool.service.api.applications import OutputIn
from gpupool.service.api.dashboard.job_detail import TimelineEvent
from gpupool.service.auth import USER_ROLES
from gpupool.service.programme.applications import ApplicationState
from gpupool.service.programme.calls import CallState
from gpupool.web import STATIC_DIR

LANGS = ("en", "ko")
#: plural categories each language's Intl.PluralRules uses for counts
PLURALS = {"en": {"one", "other"}, "ko": {"other"}}


def catalogue(lang: str) -> dict[str, str | dict[str, str]]:
    data: dict[str, str | dict[str, str]] = json.loads(
        (STATIC_DIR / "i18n" / f"{lang}.json").read_text("utf-8")
    )
    return data


def sources() -> dict[Path, str]:
    """The JavaScript, without its // comments (which quote keys as examples)."""
    return {
        p: re.sub(r"^\s*//.*$", "", p.read_text("utf-8"), flags=re.M)
        for p in sorted((STATIC_DIR / "js").rglob("*.js"))
    }


def js_array(text: str, name: str) -> list[str]:
    """The string items of ``const NAME = [...]`` (or ``export const``) in a source."""
    m = re.search(rf"const {name} = \[(.*?)\];", text, re.S)
    assert m, f"no array {name}"
    return re.findall(r'"([^"]+)"', m.group(1))


def placeholders(message: str | dict[str, str]) -> set[str]:
    texts = message.values() if isinstance(message, dict) else [message]
    return {p for text in texts for p in re.findall(r"\{(\w+)\}", text)}


def dynamic_values() -> dict[str, list[str]]:
    """What each dynamic key prefix (t(`prefix.${...}`)) is completed with, from the sources."""
    js = sources()
    by_name = {p.name: text for p, text in js.items()}
    events = list(typing.get_args(TimelineEvent.model_fields["what"].annotation))
    return {
        "reason.": js_array(by_name["fmt.js"], "REASONS"),
        "state.": js_array(by_name["fmt.js"], "STATES"),
        "prio.": js_array(by_name["queue.js"], "PRIORITIES"),
        "q.filter.": js_array(by_name["queue.js"], "STATES"),
        "ten.window.": js_array(by_name["tenants.js"], "WINDOWS"),
        "event.": events,
        "role.": list(USER_ROLES),
        "kind.": ["sector", "organisation", "project"],
        "cs.": js_array(by_name["programme.js"], "CALL_STATES"),
        "as.": js_array(by_name["programme.js"], "APP_STATES"),
        "out.": js_array(by_name["application.js"], "OUTPUT_KINDS"),
    }


def used_keys() -> set[str]:
    keys: set[str] = set()
    html = (STATIC_DIR / "index.html").read_text("utf-8")
    keys |= set(re.findall(r'data-i18n(?:-label)?="([^"]+)"', html))
    dynamic = dynamic_values()
    for path, text in sources().items():
        keys |= set(re.findall(r'\b(?:t|tr)\(\s*"([^"]+)"', text))
        keys |= set(re.findall(r'"(unit\.[a-z]+)"', text))
        # keys named in lists and then passed to t() (table headers)
        keys |= {
            k for k in re.findall(r'"([a-z]+\.[a-z_0-9.]+)"', text) if k.split(".")[0] in {"col", "job", "wi"}
        }
        for prefix in re.findall(r"\b(?:t|tr)\(\s*`([a-z.]+)\$\{", text):
            assert prefix in dynamic, f"{path.name}: t(`{prefix}${{...}}`) has no known list of values"
            keys |= {prefix + v for v in dynamic[prefix]}
    return keys


def test_every_language_has_the_same_keys_and_placeholders() -> None:
    en, ko = catalogue("en"), catalogue("ko")
    assert set(en) == set(ko), f"only in en: {set(en) - set(ko)}; only in ko: {set(ko) - set(en)}"
    for key in en:
        assert placeholders(en[key]) == placeholders(ko[key]), key
        for lang, msg in (("en", en[key]), ("ko", ko[key])):
            if isinstance(msg, dict):
                assert set(msg) == PLURALS[lang], f"{lang} {key}: plural forms {sorted(msg)}"
            assert msg, f"{lang} {key} is empty"


def test_korean_is_korean() -> None:
    """A Korean message is not English left untranslated (codes and names aside)."""
    ko = catalogue("ko")
    hangul = re.compile(r"[\uac00-\ud7a3]")
    untranslated = [
        k
        for k, v in ko.items()
        if not any(hangul.search(s) for s in (v.values() if isinstance(v, dict) else [v]))
    ]
    # a few are only codes and placeholders in both languages (the units inside are Korean)
    assert set(untranslated) <= {"wi.m.p99_jct", "wi.progress", "job.gpus_of"}, untranslated


def test_every_key_the_sources_use_exists_and_none_is_unused() -> None:
    en = catalogue("en")
    used = used_keys()
    missing = sorted(used - set(en))
    assert not missing, f"keys used in the dashboard's sources but missing from the catalogues: {missing}"
    unused = sorted(set(en) - used)
    assert not unused, f"keys in the catalogues that no source uses: {unused}"


def test_the_scan_finds_what_the_sources_ask_for() -> None:
    """The scanner itself: it sees literal, plural and dynamic keys (so the test can fail)."""
    used = used_keys()
    assert {"nav.queue", "unit.gpu", "reason.over-budget", "state.drained", "prio.preemptible"} <= used
    assert "app.skip" in used  # from index.html's data-i18n


def test_the_programme_pages_know_every_state_the_api_answers() -> None:
    """Call and application states, and output kinds, in the pages' lists (and so in both
    catalogues) are exactly those of the API: a new state cannot show as a bare key."""
    by_name = {p.name: text for p, text in sources().items()}
    assert js_array(by_name["programme.js"], "CALL_STATES") == [s.value for s in CallState]
    assert js_array(by_name["programme.js"], "APP_STATES") == [s.value for s in ApplicationState]
    kinds = typing.get_args(OutputIn.model_fields["kind"].annotation)
    assert js_array(by_name["application.js"], "OUTPUT_KINDS") == list(kinds)
