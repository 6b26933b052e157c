"""The dashboard's "Sign in with <provider>" in a real Chromium, against a real OIDC provider.

A person opens the dashboard, presses the provider's button, signs in on the provider's own
page (django-oidc-provider, started by ``tests.service.oidc_fixture``) and lands on the
dashboard signed in as themselves; the token sign-in stays on the page. Without a provider
configured the button is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.oidc_fixture import PEOPLE, GpupoolServer, Idp, start_idp

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium; skipped", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (a dev dependency)")
pytest.importorskip("oidc_provider", reason="pip install django-oidc-provider (a dev dependency)")
expect = sync_api.expect

pytestmark = pytest.mark.slow
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    yield from start_idp(tmp_path_factory.mktemp("idp"))


@pytest.fixture(scope="module")
def page() -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        yield pg
        browser.close()


def test_a_person_signs_in_to_the_dashboard_with_the_provider(
    page: sync_api.Page, idp: Idp, tmp_path: Path, artifacts: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with GpupoolServer(tmp_path, idp) as gp:
        page.goto(gp.url + "/")
        button = page.locator("#oidc-signin")
        expect(button).to_have_text("Sign in with Test University")
        expect(page.locator("#token")).to_be_visible()  # the token sign-in stays
        page.screenshot(path=str(artifacts / "oidc-signin.png"), full_page=True)
        button.click()
        # the provider's own page
        page.wait_for_url(idp.issuer.rsplit("/", 1)[0] + "/accounts/login/**")
        page.fill("#id_username", "minjun.kim")
        page.fill("#id_password", PEOPLE["minjun.kim"]["password"])
        page.get_by_role("button", name="Sign in").click()
        # back on the dashboard, signed in as the person, with no token left in the address
        expect(page.locator("#nav")).to_be_visible()
        expect(page.locator("#who-name")).to_contain_text("minjun.kim")
        assert page.url.startswith(gp.url + "/#/") and "gpt_" not in page.url
        # kept where the dashboard keeps its token: localStorage, shared by the browser's tabs
        token = page.evaluate("localStorage.getItem('gpupool.token')")
        assert token and token.startswith("gpt_")
        assert page.locator("[data-token]").count() == 0
        page.screenshot(path=str(artifacts / "oidc-signed-in.png"), full_page=True)
    assert not errors, errors


def test_without_a_provider_there_is_no_button(page: sync_api.Page, idp: Idp, tmp_path: Path) -> None:
    with GpupoolServer(tmp_path, idp, oidc_issuer="") as gp:
        page.goto(gp.url + "/")
        page.evaluate("localStorage.clear(); sessionStorage.clear()")
        page.reload()
        expect(page.locator("#token")).to_be_visible()
        page.wait_for_timeout(500)  # the page asked /v1/auth/oidc by now
        assert page.locator("#oidc-signin").count() == 0
