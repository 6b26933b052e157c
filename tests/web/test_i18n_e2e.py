"""The dashboard in Korean and English, and the daily-use fixes, in a real Chromium.

Every page is rendered in both languages and must ask for no key its catalogue lacks (the
i18n module logs each as a console error, which fails the test, and lists them in
``window.gpupoolMissingKeys``). Also: the language switcher, the session shared by a new tab,
the connection banner while the service is down (the test stops and restarts ``gpupool
serve``), the heatmap's skip link and text contrast, the queue on a phone, and the submit
form's models.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.live_server import printed_admin_token
from tests.web.test_e2e import (
    SLEEPER,
    Browser,
    Server,
    Tab,
    _free_port,
    browser,
    expect,
    server,
    start_serve,
    stop_serve,
)

__all__ = ["browser", "server"]  # fixtures, used by name
pytestmark = pytest.mark.slow
HANGUL = re.compile(r"[\uac00-\ud7a3]")
PAGES = ["overview", "queue", "tenants", "reports", "calls", "whatif"]


def new_tab(browser: Browser, server: Server, artifacts: Path, locale: str, **context: object) -> Tab:
    ctx = browser.new_context(locale=locale, **({"viewport": {"width": 1360, "height": 900}} | context))
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    t = Tab(page, server, artifacts, [], [])
    page.on("pageerror", lambda e: t.errors.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: (
            t.errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    return t


@pytest.fixture
def tabs(browser: Browser, server: Server, artifacts: Path) -> Iterator[list[Tab]]:
    made: list[Tab] = []
    yield made
    for t in made:
        t.page.context.close()
        assert not t.errors, t.errors


def sign_in(tab: Tab, user: str, path: str = "overview") -> None:
    token = tab.server.admin if user == "admin" else tab.server.tokens[user]
    tab.page.goto(f"{tab.server.url}/#/{path}")
    tab.page.fill("#token", token)
    tab.page.keyboard.press("Enter")
    expect(tab.page.locator("#nav")).to_be_visible()


def missing_keys(tab: Tab) -> list[str]:
    keys: list[str] = tab.page.evaluate("[...(window.gpupoolMissingKeys || [])]")
    return keys


@pytest.mark.parametrize("locale", ["ko-KR", "en-US"])
def test_every_page_renders_in_both_languages_without_a_missing_key(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab], locale: str
) -> None:
    lang = locale[:2]
    with server.api("minjun.kim") as c:
        r = c.post(
            "/v1/jobs", json={"project": "vision", "gpus": 1, "name": "언어 시험", "command": ["true"]}
        )
        assert r.status_code == 201, r.text
        job = r.json()["id"]
    tab = new_tab(browser, server, artifacts, locale)
    tabs.append(tab)
    page = tab.page
    page.goto(f"{server.url}/#/signin")
    expect(page.locator("#token")).to_be_focused()
    assert page.evaluate("document.documentElement.lang") == lang
    sign_in(tab, "admin")
    for name in [*PAGES, f"job/{job}"]:
        tab.go(name)
        h1 = page.locator("#main h1").first
        expect(h1).to_be_visible()
        expect(page.locator("#main .loading")).to_have_count(0)
        page.wait_for_timeout(400)  # the page's fetches paint
        text = page.locator("#main").inner_text()
        if lang == "ko":
            assert HANGUL.search(h1.inner_text()), f"{name}: {h1.inner_text()!r}"
            expect(page.locator("#nav")).to_contain_text("대기열")
        else:
            assert not HANGUL.search(h1.inner_text()) or name.startswith("job/"), name
        assert "{" not in text or "}" not in text.split("{", 1)[1], (
            f"{name}: a placeholder left: {text[:300]}"
        )
        assert missing_keys(tab) == [], name
        tab.shot(f"i18n-{lang}-{name.replace('/', '-')}")
    # numbers and durations for the locale: Korean durations read 시간/분/초
    if lang == "ko":
        tab.go("overview")
        expect(page.locator(".window button").first).to_contain_text("분")
        tab.shot("overview-ko")
    # the member's pages (the tenants' partial note, the submit form) too
    sign_out = page.locator("#signout")
    sign_out.click()
    sign_in(tab, "minjun.kim", "queue")
    page.locator(".page-head button").first.click()
    expect(page.locator("#submit-form")).to_be_visible()
    tab.go("tenants")
    expect(page.locator("#ten-partial")).to_be_visible()
    assert missing_keys(tab) == []


def test_the_language_switcher_is_kept_for_every_tab(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab]
) -> None:
    tab = new_tab(browser, server, artifacts, "en-US")
    tabs.append(tab)
    page = tab.page
    sign_in(tab, "analyst", "queue")
    expect(page.locator("#nav")).to_contain_text("Queue")
    with page.expect_navigation():
        page.select_option("#lang", "ko")
    expect(page.locator("#nav")).to_contain_text("대기열")
    expect(page.get_by_role("heading", name="대기열")).to_be_visible()
    assert page.evaluate("localStorage.getItem('gpupool.lang')") == "ko"
    # a new tab of the same browser: signed in, in Korean
    other = page.context.new_page()
    other.goto(f"{server.url}/#/tenants")
    expect(other.get_by_role("heading", name="테넌트", exact=True)).to_be_visible()
    other.close()


def test_a_new_tab_is_signed_in_and_sign_out_reaches_every_tab(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab]
) -> None:
    tab = new_tab(browser, server, artifacts, "en-US")
    tabs.append(tab)
    page = tab.page
    with server.api("minjun.kim") as c:
        job = c.post("/v1/jobs", json={"project": "vision", "gpus": 1, "command": ["true"]}).json()["id"]
    sign_in(tab, "minjun.kim", "queue?state=all")
    link = page.locator(f'tr[data-job="{job}"] a').first
    with page.context.expect_page() as opened:
        link.click(modifiers=["Control"])
    second = opened.value
    expect(second.get_by_role("heading", name=re.compile(f"Job {job}"))).to_be_visible()
    assert second.locator("#token").count() == 0
    page.locator("#signout").click()
    expect(second.locator("#token")).to_be_visible()  # the other tab follows the sign-out
    second.close()


def test_heatmap_skip_link_and_contrast(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab]
) -> None:
    tab = new_tab(browser, server, artifacts, "en-US")
    tabs.append(tab)
    page = tab.page
    sign_in(tab, "admin", "overview")
    expect(page.locator(".cells button").first).to_be_visible()
    # Tab from the heatmap's heading region: the skip link comes before the first cell
    page.locator("#u-model").focus()
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate(
            "document.activeElement.id === 'skip-heat' || document.activeElement.classList.contains('cell')"
        ):
            break
    assert page.evaluate("document.activeElement.id") == "skip-heat", "the skip link is not before the cells"
    assert page.locator("#skip-heat").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "q-h"
    assert "#/overview" in page.url  # the link did not change the route
    # contrast of the label on every heat colour, 0..100 % busy, and of every cell shown
    sweep = page.evaluate(
        """async () => {
            const m = await import('/ui/js/charts.js');
            return Array.from({length: 101}, (_, i) => m.heatColor(i / 100));
        }"""
    )
    worst = min(contrast(rgb(c["bg"]), rgb(c["fg"])) for c in sweep)
    assert worst >= 4.5, f"the lowest label contrast on the heatmap is {worst:.2f}:1"
    shown = page.eval_on_selector_all(
        ".cells button.cell:not(.hatch):not(.dense)",
        "els => els.map(e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color])",
    )
    assert shown
    for bg, fg in shown:
        assert contrast(rgb(bg), rgb(fg)) >= 4.5, (bg, fg)


def test_the_queue_on_a_phone_needs_no_sideways_scrolling(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab]
) -> None:
    # two jobs that each want 16 H100, all vision may hold: the second waits, with a reason
    # and an estimate (24, every H100, would be refused: above vision's borrowing cap)
    ids = []
    with server.api("minjun.kim") as c:
        for name in ("먼저 온 큰 작업", "기다리는 큰 작업"):
            body = {"project": "vision", "gpus": 16, "models": ["H100"], "name": name,
                    "command": shlex.split(SLEEPER), "walltime_s": 3600}  # fmt: skip
            r = c.post("/v1/jobs", json=body)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    job = ids[1]
    tab = new_tab(browser, server, artifacts, "ko-KR", viewport={"width": 390, "height": 844}, is_mobile=True)
    tabs.append(tab)
    page = tab.page
    sign_in(tab, "minjun.kim", "queue")
    row = page.locator(f'tr[data-job="{job}"]')
    expect(row).to_be_visible()
    expect(row.locator("td.reason")).not_to_be_empty()
    page.wait_for_timeout(300)
    assert page.evaluate("document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"), (
        page.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    )
    for cell in ("td.c-state", "td.c-est", "td.c-reason"):
        box = row.locator(cell).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (cell, box)
        assert row.locator(cell).inner_text().strip()
    tab.shot("queue-phone-ko")
    with server.api("minjun.kim") as c:
        for i in ids:
            c.post(f"/v1/jobs/{i}/cancel")


def test_the_submit_form_offers_only_the_models_the_project_may_use(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab]
) -> None:
    with server.api("june.paik") as c:
        allowed = c.get("/v1/dashboard/session").json()["project_models"]["startups/furiosaai/serving"]
    assert allowed and "H100" not in allowed  # the project is confined to the sejong cluster
    tab = new_tab(browser, server, artifacts, "en-US")
    tabs.append(tab)
    page = tab.page
    sign_in(tab, "june.paik", "queue")
    page.get_by_role("button", name="Submit a job").click()
    offered = page.eval_on_selector_all("#sub-models input", "els => els.map(e => e.value)")
    assert offered == allowed


def test_a_service_that_goes_down_shows_a_banner_and_recovers(
    browser: Browser, tmp_path: Path, artifacts: Path
) -> None:
    """Its own ``gpupool serve`` (the others' stays up): stopped under the page, then restarted."""
    data = tmp_path / "svc"
    data.mkdir()
    port = _free_port()
    proc = start_serve(data, port)
    srv = Server(f"http://127.0.0.1:{port}", printed_admin_token(data / "serve.log"))
    tab = new_tab(browser, srv, artifacts, "ko-KR")
    page = tab.page
    try:
        sign_in(tab, "admin", "overview")
        expect(page.locator(".kpi").first).to_be_visible()
        stop_serve(proc)
        banner = page.locator("#conn")
        expect(banner).to_be_visible(timeout=20_000)
        expect(banner).to_contain_text("연결이 끊겼습니다")
        expect(page.locator("#main")).to_be_hidden()  # no stale figures
        expect(page.locator("#toast.show")).to_have_count(0)  # no popup either
        page.wait_for_timeout(3000)
        expect(banner).to_be_visible()  # it stays while the service is down
        tab.shot("connection-lost-ko")
        proc = start_serve(data, port)
        expect(banner).to_be_hidden(timeout=20_000)
        expect(page.locator("#main")).to_be_visible()
        expect(page.locator(".kpi").first).to_be_visible()
        # the browser logs the refused fetches while the service was down: expected here
        tab.errors[:] = [e for e in tab.errors if "ERR_CONNECTION_REFUSED" not in e]
        assert not tab.errors, tab.errors
    finally:
        page.context.close()
        stop_serve(proc)
        shutil.rmtree(data, ignore_errors=True)


def rgb(css: str) -> tuple[float, float, float]:
    if css.startswith("#"):
        return (int(css[1:3], 16), int(css[3:5], 16), int(css[5:7], 16))
    r, g, b = (float(v) for v in re.findall(r"[\d.]+", css)[:3])
    return (r, g, b)


def luminance(c: tuple[float, float, float]) -> float:
    def lin(v: float) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else float(((s + 0.055) / 1.055) ** 2.4)

    r, g, b = (lin(v) for v in c)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_the_contrast_helper_fails_low_contrast() -> None:
    """The check can fail: the old heat colour at 66 % busy with white text is below 4.5:1."""
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert contrast((70, 144, 198), (255, 255, 255)) < 4.5
