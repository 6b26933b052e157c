"""The programme's dashboard pages end to end, in a real Chromium against ``gpupool serve``.

A pool admin writes and opens a call and assigns reviewers; a project's lead drafts and
submits an application; the admin closes the call; a reviewer scores it while one from the
applicant's own organisation is refused (conflict of interest); the admin reads the ranked list
and awards part of what was asked; the lead sees the award and reports an output. Every step
is a click or a keystroke in the page, checked against the API afterwards. Then the same pages
in Korean, with no missing key. Screenshots go to ``tests/web/artifacts/`` (the README's come
from there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web.test_e2e import Browser, Server, Tab, browser, expect, server
from tests.web.test_i18n_e2e import missing_keys, new_tab, sign_in, tabs

__all__ = ["browser", "server", "tabs"]  # fixtures, used by name
pytestmark = pytest.mark.slow
VISION = "academia/snu/vision"


def visit(tab: Tab, path: str) -> None:
    """Show ``path`` afresh (going to the address a tab already shows changes nothing)."""
    tab.go(path)
    tab.page.reload()


def en_tab(browser: Browser, server: Server, artifacts: Path, tabs: list[Tab]) -> Tab:
    t = new_tab(browser, server, artifacts, "en-US")
    tabs.append(t)
    return t


def test_call_to_award_from_the_dashboard(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab]
) -> None:
    with server.api("admin") as c:
        r = c.post(f"/v1/projects/{VISION}/members", json={"user": "minjun.kim", "role": "lead"})
        assert r.status_code in (200, 201), r.text
        # a reviewer from no organisation of the pool (a viewer only reads: it may not review)
        r = c.post("/v1/users", json={"name": "yoon.reviewer", "display_name": "윤서연 교수"})
        assert r.status_code == 201, r.text
        server.tokens["yoon.reviewer"] = c.post("/v1/tokens", json={"user": "yoon.reviewer"}).json()["token"]
    # ---- the pool admin writes the call and opens it
    admin = en_tab(browser, server, artifacts, tabs)
    page = admin.page
    sign_in(admin, "admin", "calls")
    expect(page.get_by_role("heading", name="Calls", exact=True)).to_be_visible()
    page.get_by_role("button", name="New call").click()
    page.fill("#call-title-ko", "2026 하반기 AI 연구 GPU 지원")
    page.fill("#call-title-en", "2026 H2 GPU support for AI research")
    page.locator("#call-sectors input[value='academia']").check()
    page.fill("#call-hours-H100", "1000")
    page.fill("#call-hours-B200", "200")
    page.select_option("#call-unit", "effective")  # H100-equivalent hours (ADR 0018)
    admin.shot("call-new")
    page.get_by_role("button", name="Save the call").click()
    expect(page.get_by_role("heading", name=re.compile("2026 H2 GPU support"))).to_be_visible()
    call_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator(".page-head .badge")).to_have_text("draft")
    page.get_by_role("button", name="Open the call").click()
    expect(page.locator(".page-head .badge")).to_have_text("open")
    for reviewer in ("yoon.reviewer", "hayoon.choi"):
        page.fill("#reviewer-user", reviewer)
        page.get_by_role("button", name="Add reviewer").click()
        expect(page.locator("#call-reviewers")).to_contain_text(reviewer)
    page.fill("#reviewer-user", "nobody.here")
    page.get_by_role("button", name="Add reviewer").click()
    expect(page.locator("#main .error")).to_contain_text("user: no user 'nobody.here'")
    with server.api("admin") as c:
        call = c.get(f"/v1/calls/{call_id}").json()
    assert call["state"] == "open" and call["accepting"], call
    assert call["gpu_hours"] == {"H100": 1000, "B200": 200} and call["eligible_sectors"] == ["academia"]
    assert call["reviewers"] == ["hayoon.choi", "yoon.reviewer"] and call["unit"] == "effective"
    expect(page.locator("#call-unit-shown")).to_have_text("effective GPU-hours (H100-equivalent)")

    # ---- the project's lead drafts and submits an application
    lead = en_tab(browser, server, artifacts, tabs)
    lp = lead.page
    sign_in(lead, "minjun.kim", "calls")
    lp.get_by_role("link", name="2026 H2 GPU support for AI research").click()
    lp.get_by_role("button", name="Write an application").click()
    lp.select_option("#app-project", VISION)
    lp.fill("#app-title", "비전 파운데이션 모델")
    lp.fill("#app-hours-H100", "600")
    lp.fill("#app-justification", "Pre-training a vision foundation model for Korean street scenes.")
    lp.fill("#app-outputs", "two papers, one open model")
    lp.get_by_role("button", name="Save draft").click()
    expect(lp.get_by_role("heading", name=re.compile("비전 파운데이션 모델"))).to_be_visible()
    app_id = int(lp.url.rsplit("/", 1)[1])
    expect(lp.locator(".page-head .badge")).to_have_text("draft")
    lp.get_by_role("button", name="Submit", exact=True).click()
    expect(lp.locator(".page-head .badge")).to_have_text("submitted")
    lead.shot("application-submitted")
    # a member who is not a lead is offered no application form
    other = en_tab(browser, server, artifacts, tabs)
    sign_in(other, "hayoon.choi", f"calls/{call_id}")
    expect(other.page.get_by_role("heading", name=re.compile("2026 H2"))).to_be_visible()
    expect(other.page.get_by_role("button", name="Write an application")).to_have_count(0)

    # ---- the admin closes the call: the application goes under review
    visit(admin, f"calls/{call_id}")
    page.get_by_role("button", name="Close the call").click()
    expect(page.locator(".page-head .badge")).to_have_text("closed")
    expect(page.locator(f'#ranking tr[data-application="{app_id}"]')).to_contain_text("under review")

    # ---- a reviewer from the applicant's organisation is refused; another one scores
    other.go(f"application/{app_id}")
    other.page.fill("#rev-merit", "10")
    other.page.fill("#rev-feasibility", "10")
    other.page.get_by_role("button", name="Save review").click()
    expect(other.page.locator("#review-form .error")).to_contain_text("conflict of interest")
    reviewer = en_tab(browser, server, artifacts, tabs)
    rp = reviewer.page
    sign_in(reviewer, "yoon.reviewer", f"application/{app_id}")
    expect(rp.locator(".page-head .badge")).to_have_text("under review")
    rp.fill("#rev-merit", "8")
    rp.fill("#rev-feasibility", "6")
    rp.fill("#rev-comment", "좋은 계획입니다. Strong team, modest ask.")
    rp.get_by_role("button", name="Save review").click()
    expect(rp.get_by_role("heading", name="Your review")).to_be_visible()
    expect(rp.locator("#reviews")).to_contain_text("Scientific merit 8")
    reviewer.shot("application-review")

    # ---- the admin reads the ranked list and awards part of the request
    visit(admin, f"calls/{call_id}")
    row = page.locator(f'#ranking tr[data-application="{app_id}"]')
    expect(row.locator(".score")).to_have_text("7.5 / 10")  # (3 x 8 + 1 x 6) / 4
    admin.shot("call-ranking")
    row.get_by_role("link", name="비전 파운데이션 모델").click()
    expect(page.locator("#award-hours-H100")).to_have_value("600")
    page.fill("#award-hours-H100", "400")
    page.fill("#award-note", "부분 배정: 예산 한도")
    page.get_by_role("button", name="Award", exact=True).click()
    expect(page.locator(".page-head .badge")).to_have_text("partly awarded")
    expect(page.locator("#award-out")).to_contain_text("400")
    with server.api("admin") as c:
        got = c.get(f"/v1/applications/{app_id}").json()
        left = c.get(f"/v1/calls/{call_id}").json()["gpu_hours_left"]
    assert got["state"] == "partly_awarded" and got["award"]["gpu_hours"] == {"H100": 400}, got
    assert len(got["award"]["allocation_ids"]) == 1 and left == {"H100": 600, "B200": 200}, left
    assert [r["scores"] for r in got["reviews"]] == [{"merit": 8, "feasibility": 6}]

    # ---- the lead sees the award and reports an output against it
    visit(lead, f"application/{app_id}")
    expect(lp.locator(".page-head .badge")).to_have_text("partly awarded")
    expect(lp.get_by_role("button", name="Withdraw")).to_have_count(0)  # decided: nothing to withdraw
    lp.select_option("#out-kind", "paper")
    lp.fill("#out-title", "KoStreet-ViT")
    lp.fill("#out-url", "https://example.org/kostreet-vit")
    lp.get_by_role("button", name="Report output").click()
    expect(lp.locator("#award-out")).to_contain_text("KoStreet-ViT")
    lead.shot("application-awarded")
    with server.api("minjun.kim") as c:
        report = c.get(f"/v1/calls/{call_id}/report").json()
    assert [o["title"] for o in report["awards"][0]["outputs"]] == ["KoStreet-ViT"]
    for tab in tabs:
        assert missing_keys(tab) == []
    korean_pages(browser, server, artifacts, tabs, call_id, app_id)


def korean_pages(
    browser: Browser, server: Server, artifacts: Path, tabs: list[Tab], call_id: int, app_id: int
) -> None:
    """Calls, the call and the application in Korean (the admin's view): no missing key."""
    t = new_tab(browser, server, artifacts, "ko-KR")
    tabs.append(t)
    sign_in(t, "admin", "calls")
    expect(t.page.get_by_role("heading", name="공모", exact=True)).to_be_visible()
    expect(t.page.locator("#main tbody")).to_contain_text("2026 하반기 AI 연구 GPU 지원")
    t.shot("calls-ko")
    t.go(f"calls/{call_id}")
    expect(t.page.locator("#ranking")).to_contain_text("일부 선정")
    t.shot("call-ko")
    t.go(f"application/{app_id}")
    expect(t.page.locator("#award-out")).to_contain_text("배정 내용")
    expect(t.page.locator("#reviews")).to_contain_text("Scientific merit 8")
    t.shot("application-ko")
    assert missing_keys(t) == []
