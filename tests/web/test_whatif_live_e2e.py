"""The dashboard's live what-if form in a real Chromium: the change is built from the live
state (clusters, models and tenants offered in selects, no YAML), the study waits in the
background queue, and its result shows the baseline and the change side by side."""

from __future__ import annotations

import pytest

from tests.web.test_e2e import SLEEPER, Tab, browser, expect, server, tab

__all__ = ["browser", "server", "tab"]  # the fixtures of test_e2e.py, a server of this module's own

pytestmark = pytest.mark.slow


def test_the_live_form_builds_the_change_and_shows_baseline_and_change(tab: Tab) -> None:
    page = tab.page
    with tab.server.api("minjun.kim") as c:  # some history and a backlog to start from
        for gpus in (8, 4):
            r = c.post("/v1/jobs", json={"project": "vision", "gpus": gpus, "models": ["H100"],
                                         "command": ["sh", "-c", SLEEPER]})  # fmt: skip
            assert r.status_code == 201, r.text
    tab.sign_in("admin", "whatif")
    form = page.locator("#w-live-form")
    expect(form).to_be_visible()
    # the selects offer the live fleet and tenants
    assert "kisti" in page.locator("#l-add-cluster option").all_inner_texts()
    assert "academia/snu/vision" in page.locator("#l-g-project option").all_inner_texts()
    page.select_option("#l-add-cluster", "kisti")
    page.select_option("#l-add-model", "H100")
    page.fill("#l-add-count", "2")
    page.select_option("#l-w-tenant", "academia")
    page.fill("#l-w-weight", "3")
    page.fill("#l-scale", "150")
    page.fill("#l-hours", "2")
    page.fill("#l-title", "H100 두 대 더")
    page.get_by_role("button", name="Compare with today").click()
    result = page.locator("#w-live-result")
    expect(result).to_be_visible(timeout=180_000)
    expect(result).to_contain_text("+2 x H100 (8 each) in kisti")
    expect(result).to_contain_text("academia weight 3")
    expect(result.locator("thead")).to_contain_text("Baseline")
    expect(result.locator("thead")).to_contain_text("Change")
    expect(result).to_contain_text("utilization")
    expect(result).to_contain_text("sector academia: avg wait s")
    tab.shot("whatif-live")
    # a change the live fleet cannot take is refused in the form, naming the field
    page.fill("#l-rm-count", "999")
    page.get_by_role("button", name="Compare with today").click()
    expect(form.locator(".error")).to_contain_text("remove_nodes")
