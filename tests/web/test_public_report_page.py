"""The public report's page renders in Debian's Chromium with nothing fetched beyond itself.

The page is written from a real service's ``/v1/reports/public`` (SQLite, jobs run by the
loop under the test clock), in English and Korean; Chromium opens it from disk: every request
is the page itself or an inline ``data:`` figure, every figure decodes, no script error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.service.report.public_page import write_public_report
from tests.service.conftest import Service
from tests.service.test_reports import seed

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.mark.slow
def test_the_page_renders_offline_in_both_languages(
    sqlite_service: Service, tmp_path: Path, artifacts: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    service = sqlite_service
    seed(service)
    r = service.call("GET", "/v1/reports/public", "jiwoo.han", params={"period": "2027-01"})
    assert r.status_code == 200, r.text
    pages = {lang: write_public_report(r.json(), tmp_path / lang, lang) for lang in ("en", "ko")}
    headings = {
        "en": "Public report on the national GPU pool: 2027-01",
        "ko": "국가 GPU 풀 공개 보고서: 2027-01",
    }
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        for lang, path in pages.items():
            requests: list[str] = []
            errors: list[str] = []
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda req, seen=requests: seen.append(req.url))
            page.on("pageerror", lambda e, seen=errors: seen.append(str(e)))
            page.goto(path.as_uri())
            sync_api.expect(page.locator("h1")).to_have_text(headings[lang])
            images = page.locator("figure img")
            assert images.count() >= 4
            widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            assert all(w > 0 for w in widths), widths
            assert page.locator("table").count() >= 3
            page.screenshot(path=str(artifacts / f"public-report-{lang}.png"), full_page=True)
            page.close()
            outside = [u for u in requests if u != path.as_uri() and not u.startswith("data:")]
            assert requests and not outside, outside
            assert not errors, errors
        browser.close()
