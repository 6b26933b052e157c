"""The OpenAPI page loads everything from the service: no CDN, no third-party request.

Without a browser: ``/docs`` references only local URLs, and each answers 200.
With Debian's Chromium (as ``test_e2e``): a real ``gpupool serve``'s ``/docs`` renders the
API (its title and operations) while every request the page makes goes to the service.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.service.conftest import Service
from tests.service.live_server import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def test_docs_pages_reference_only_local_assets(sqlite_service: Service) -> None:
    http = sqlite_service.http
    assert http.get("/redoc").status_code == 404  # ReDoc's bundle calls its vendor's CDN: not served
    for page in ("/docs",):
        html = http.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""", html.text)
        found = [a or b for a, b in urls]
        assert found, html.text
        assert "cdn" not in html.text.lower() and "https://" not in html.text, html.text
        for url in found:
            assert url.startswith("/"), (page, url)
            assert http.get(url).status_code == 200, (page, url)
    assert (
        http.get("/docs-assets/swagger-ui-bundle.js")
        .headers["content-type"]
        .startswith(("application/javascript", "text/javascript"))
    )


@pytest.mark.slow
def test_swagger_ui_renders_with_no_request_beyond_the_service(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    srv = LiveServer.start(tmp_path / "data", env={"GPUPOOL_EXECUTOR": "none"})
    requests: list[str] = []
    errors: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{srv.url}/docs")
            sync_api.expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                "gpupool", timeout=30_000
            )
            sync_api.expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=30_000)
            operations = page.locator(".opblock").count()
            browser.close()
    finally:
        srv.stop()
    assert operations >= 20
    local = (srv.url + "/", f"blob:{srv.url}/", "data:")  # blob: and data: URLs are made in the page
    outside = [u for u in requests if not u.startswith(local)]
    assert requests and not outside, outside
    assert any(u.endswith("/openapi.json") for u in requests)
    assert not errors, errors
