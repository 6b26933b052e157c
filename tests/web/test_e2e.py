"""The dashboard end to end: the real ``gpupool serve`` (uvicorn, SQLite in a temporary
folder, the demo fleet on simulated GPUs) driven by a real headless Chromium (Debian's
``/usr/bin/chromium`` through Playwright; Playwright's own browser download is not used).

Each test signs in with a token in a fresh browser context, works the pages as a person would
(keyboard included) and saves screenshots under ``tests/web/artifacts/``. Every request the
page makes must go to the service itself: the dashboard works offline.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpupool.service.executors.sandbox import job_python
from tests.service.live_server import printed_admin_token

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "the dashboard's browser tests need Debian's Chromium at /usr/bin/chromium "
        "(apt-get install -y chromium); skipped",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (a dev dependency)")
Browser = sync_api.Browser
Page = sync_api.Page
expect = sync_api.expect

pytestmark = pytest.mark.slow
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLEEPER = f"{shlex.quote(job_python())} -c 'import time; print(\"학습 시작\", flush=True); time.sleep(600)'"


@dataclass
class Server:
    url: str
    admin: str
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, user: str) -> httpx.Client:
        token = self.admin if user == "admin" else self.tokens[user]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    """``gpupool serve`` on ``data`` and ``port``, ready (its output in ``data/serve.log``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    env["GPUPOOL_DASHBOARD_SAMPLE_S"] = "1"  # a denser series than the default 5 s
    with open(data / "serve.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from gpupool.cli.main import app; app()", "serve",
             "--data-dir", str(data), "--port", str(port), "--cycle-interval-ms", "100",
             "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError((data / "serve.log").read_text(errors="replace"))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                return proc
        if time.monotonic() > deadline:
            stop_serve(proc)
            raise AssertionError("gpupool serve did not become ready")
        time.sleep(0.1)


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    """End the service's whole session: jobs it launched are its children."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("dashboard")
    port = _free_port()
    proc = start_serve(data, port)
    try:
        srv = Server(f"http://127.0.0.1:{port}", printed_admin_token(data / "serve.log"))
        with srv.api("admin") as c:
            r = c.post("/v1/users", json={"name": "analyst", "role": "viewer", "display_name": "정책 분석가"})
            assert r.status_code == 201, r.text
            for user in ("minjun.kim", "hayoon.choi", "analyst", "june.paik"):
                srv.tokens[user] = c.post("/v1/tokens", json={"user": user}).json()["token"]
        yield srv
    finally:
        stop_serve(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@dataclass
class Tab:
    page: Page
    server: Server
    artifacts: Path
    requests: list[str]
    errors: list[str]

    def sign_in(self, user: str, path: str = "") -> None:
        token = self.server.admin if user == "admin" else self.server.tokens[user]
        self.page.goto(f"{self.server.url}/#/{path}")
        self.page.fill("#token", token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#nav")).to_be_visible()

    def go(self, path: str) -> None:
        self.page.goto(f"{self.server.url}/#/{path}")

    def shot(self, name: str) -> None:
        self.page.wait_for_timeout(300)  # let the last fetch paint
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Browser, server: Server, artifacts: Path) -> Iterator[Tab]:
    # English: these tests name what they click by its English text (Korean: test_i18n_e2e.py)
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    t = Tab(page, server, artifacts, [], [])
    page.on("request", lambda r: t.requests.append(r.url))
    page.on("pageerror", lambda e: t.errors.append(f"page error: {e}"))
    # A refused request (401 on a bad token, 404 on a job one may not see) is logged by the
    # browser as a console error: those are expected; anything else is a bug.
    page.on(
        "console",
        lambda m: (
            t.errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    yield t
    context.close()
    outside = [u for u in t.requests if not u.startswith((server.url + "/", "data:", "blob:"))]
    assert not outside, f"the page fetched from elsewhere: {outside}"
    assert not t.errors, t.errors


def test_sign_in_overview_and_heatmap_by_keyboard(tab: Tab) -> None:
    page = tab.page
    tab.go("overview")
    expect(page.get_by_role("heading", name="Sign in to gpupool")).to_be_visible()
    # the token field has the focus: paste, Enter
    expect(page.locator("#token")).to_be_focused()
    page.fill("#token", "gpt_not-a-token")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-msg")).to_have_text("That token is unknown or revoked.")
    tab.shot("signin")
    page.fill("#token", tab.server.admin)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.locator("#who-role")).to_have_text("pool-admin")
    expect(page.get_by_role("link", name="What-if")).to_be_visible()
    for heading in ("Utilisation by site", "Utilisation by cluster", "Utilisation by accelerator model",
                    "Queue depth", "Scheduling cycle time", "Nodes drained or down"):  # fmt: skip
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.locator(".kpi").first).to_contain_text("%")
    # kept for every tab of this browser (localStorage), not this tab only
    assert page.evaluate("localStorage.getItem('gpupool.token')") == tab.server.admin
    # The series fills in as the service samples (every second here).
    expect(page.locator("#main .chart path.line").first).to_have_attribute(
        "d", re.compile("L"), timeout=15_000
    )
    tab.shot("overview")
    # Keyboard: tab to the first heatmap cell; it shows a focus ring; Enter drills down to racks.
    cell = page.locator(".cells button").first
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('cell')"):
            break
    assert page.evaluate("document.activeElement.classList.contains('cell')"), "no heatmap cell by Tab"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    label = cell.get_attribute("aria-label") or ""
    assert re.search(r"\d+ of \d+ GPUs busy", label), label
    page.keyboard.press("Enter")
    expect(page.locator(".rack").first).to_be_visible()
    expect(page.locator(".crumbs")).to_contain_text("block")
    tab.shot("overview-racks")
    page.get_by_role("button", name="All clusters").click()
    expect(page.locator(".cells button").first).to_be_visible()


def test_member_submits_sees_the_reason_opens_and_cancels(tab: Tab) -> None:
    page = tab.page
    server = tab.server
    # Something in the way: the member's own 16-GPU job holds two of the three H100 nodes.
    with server.api("minjun.kim") as c:
        body = {"project": "vision", "gpus": 16, "models": ["H100"], "name": "먼저 온 작업",
                "command": shlex.split(SLEEPER), "walltime_s": 3600}  # fmt: skip
        r = c.post("/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        blocker = r.json()["id"]
    tab.sign_in("minjun.kim", "queue")
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    expect(page.get_by_role("link", name="What-if")).to_be_hidden()  # a member may not run what-ifs
    page.get_by_role("button", name="Submit a job").click()
    page.select_option("#sub-project", "academia/snu/vision")
    page.fill("#sub-name", "한국어 모델 학습")
    page.fill("#sub-gpus", "16")
    page.get_by_label("H100").check()
    page.fill("#sub-wall", "2")
    page.select_option("#sub-wall-unit", "3600")
    page.fill("#sub-cmd", SLEEPER)
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#submit-form .okbox")).to_contain_text("Submitted")
    job_id = (page.locator("#submit-form .okbox a").text_content() or "").split(" ")[0]
    assert re.fullmatch(r"j\d+", job_id), job_id
    with server.api("minjun.kim") as c:
        explained = c.get(f"/v1/jobs/{job_id}/explain").json()
    assert explained["state"] == "pending", explained
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row).to_contain_text("한국어 모델 학습")
    expect(row).to_contain_text("pending")
    expect(row.locator("td.reason")).not_to_be_empty()
    expect(page.locator(f'tr[data-job="{blocker}"]')).to_contain_text("running")
    # sort by estimated start (a column header is a button)
    page.get_by_role("button", name="Est. start").click()
    expect(page.locator("th[aria-sort='ascending']")).to_contain_text("Est. start")
    page.get_by_role("button", name="Hide the form").click()
    tab.shot("queue")
    row.get_by_role("link", name=job_id).click()
    expect(page.get_by_role("heading", name=re.compile(f"Job {job_id}"))).to_be_visible()
    expect(page.locator(".why")).to_contain_text("Waiting")
    expect(page.locator(".timeline")).to_contain_text("submitted")
    tab.shot("job-pending")
    cancel = page.locator("#cancel-job")
    cancel.click()
    expect(cancel).to_have_text("Confirm: cancel this job")
    cancel.click()
    expect(page.locator(".page-head .badge")).to_have_text("cancelled", timeout=15_000)
    expect(page.locator("#cancel-job")).to_have_count(0)  # nothing left to cancel
    expect(page.locator(".timeline")).to_contain_text("cancelled")
    with server.api("minjun.kim") as c:
        assert c.get(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    # the running blocker: its placement and log
    tab.go(f"job/{blocker}")
    expect(page.locator("#pl-h")).to_be_visible()
    expect(page.get_by_role("cell", name="kisti", exact=True).first).to_be_visible()
    expect(page.locator("pre.log")).to_contain_text("학습 시작", timeout=15_000)
    tab.shot("job-running")
    page.locator("#cancel-job").click()
    page.locator("#cancel-job").click()
    expect(page.locator(".page-head .badge")).to_have_text("cancelled", timeout=15_000)


def test_a_member_sees_only_their_projects(tab: Tab) -> None:
    page = tab.page
    with tab.server.api("hayoon.choi") as c:
        other = c.post(
            "/v1/jobs", json={"project": "nlp", "gpus": 1, "name": "남의 작업", "command": ["true"]}
        )
        assert other.status_code == 201
        other_id = other.json()["id"]
    tab.sign_in("minjun.kim", "queue?state=all")
    expect(page.locator("#results-h + .table-wrap table")).to_be_visible()
    expect(page.locator("table caption").first).not_to_contain_text("Loading")
    assert page.locator(f'tr[data-job="{other_id}"]').count() == 0
    expect(page.locator("#main")).not_to_contain_text("남의 작업")
    tab.go(f"job/{other_id}")
    expect(page.locator(".notice")).to_have_text("No such job, or not one you may see.")
    tab.go("whatif")
    expect(page.locator(".notice")).to_contain_text("viewers and pool admins")
    tab.go("tenants")
    expect(page.get_by_role("heading", name="Tenant tree")).to_be_visible()
    expect(page.locator("tbody")).to_contain_text("컴퓨터비전 연구실")
    expect(page.locator("tbody")).to_contain_text("서울대학교")
    expect(page.locator("tbody")).not_to_contain_text("자연어처리")  # another project's branch
    expect(page.locator(".notice")).to_contain_text("your own projects")
    page.get_by_role("button", name="Burn-down").click()
    expect(page.locator("#burndown")).to_contain_text("Allocations of 컴퓨터비전 연구실")
    tab.shot("tenants-member")
    # Korean text asks for Hangul fonts by name (whether one is installed is the machine's
    # business: CI installs fonts-nanum; the screenshots show the glyphs).
    family = page.evaluate("getComputedStyle(document.querySelector('tbody th')).fontFamily")
    assert "Noto Sans KR" in family and "NanumGothic" in family and "Apple SD Gothic Neo" in family


def test_tenants_for_a_viewer(tab: Tab) -> None:
    page = tab.page
    tab.sign_in("analyst", "tenants")
    expect(page.locator("#who-name")).to_have_text("정책 분석가 (analyst)")
    for name in ("학계 (Academia)", "한국과학기술정보연구원 (KISTI)", "퓨리오사AI", "RNGD 추론"):
        expect(page.locator("tbody")).to_contain_text(name)
    expect(page.locator("tbody tr")).to_have_count(16)
    expect(page.locator("tr[data-path='startups/upstage/solar']")).to_contain_text("GPUs")
    page.locator("tr[data-path='startups/upstage/solar']").get_by_role("button", name="Burn-down").click()
    expect(page.locator("#burndown .chart")).to_be_visible()
    expect(page.locator("#burndown")).to_contain_text("GPU·h")
    expect(page.locator("#burndown .alloc-unit").first).to_have_text("GPU-hours")  # what the grant counts
    tab.shot("tenants")


def test_a_viewer_reads_whatif_studies_and_starts_none(tab: Tab) -> None:
    page = tab.page
    tab.sign_in("analyst", "whatif")
    expect(page.get_by_role("heading", name="What-if studies")).to_be_visible()
    expect(page.locator("#w-readonly")).to_contain_text("a pool admin starts and stops them")
    assert page.get_by_role("button", name="Run simulation").count() == 0


def test_whatif_runs_a_small_simulation_and_compares(tab: Tab) -> None:
    page = tab.page
    tab.sign_in("admin", "whatif")  # a pool admin starts studies; a viewer only reads them
    expect(page.get_by_role("heading", name="What-if studies")).to_be_visible()
    page.select_option("#w-fleet", "demo")
    page.fill("#w-hours", "1")
    page.fill("#w-load", "120")  # overloaded: jobs queue, so every figure has something to draw
    page.fill("#w-title", "시험: FIFO 대 공정 분배")
    page.get_by_role("button", name="Run simulation").click()
    figures = page.locator("#w-figures img")
    expect(figures.first).to_be_visible(timeout=120_000)
    expect(page.locator("#w-view")).to_contain_text("Mean JCT")
    assert figures.count() >= 5
    # every figure is a decoded PNG, not a broken image
    widths = page.eval_on_selector_all(
        "#w-figures img", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
    )
    assert all(w and w > 300 for w in widths), widths
    tab.shot("whatif")
    # a second study, then both side by side
    page.fill("#w-title", "시험: LAS")
    page.locator("#w-policies input[value='fifo']").uncheck()
    page.locator("#w-policies input[value='fairshare+easy']").uncheck()
    page.locator("#w-policies input[value='las']").check()
    page.get_by_role("button", name="Run simulation").click()
    expect(page.locator("#w-view-h")).to_have_text("시험: LAS")
    expect(page.locator("#w-figures img").first).to_be_visible(timeout=120_000)
    for box in page.locator("tbody input[type=checkbox]").all():
        box.check()
    expect(page.locator("#w-compare")).to_contain_text("Comparing 2 studies")
    expect(page.locator("#w-compare thead")).to_contain_text("시험: LAS · las")
    tab.shot("whatif-compare")
    # the report itself downloads (the token is needed, so the page fetches it)
    with page.expect_download() as d:
        page.get_by_role("button", name="Download report.html").click()
    saved: Any = d.value
    assert saved.suggested_filename.endswith(".html")


def test_overview_of_a_busy_pool_and_draining_by_a_pool_admin(tab: Tab) -> None:
    page = tab.page
    server = tab.server
    jobs = []
    # Every job could start on its own (the API refuses one that never could); together they
    # fill the H100s and vision's cap of 16, so the last one waits.
    work = [
        ("minjun.kim", "vision", 8, "H100"),
        ("hayoon.choi", "nlp", 8, "H100"),
        ("hayoon.choi", "nlp", 8, "H100"),
        ("minjun.kim", "vision", 8, "B200"),
        ("minjun.kim", "vision", 16, "H100"),
    ]
    for user, project, gpus, model in work:
        with server.api(user) as c:
            body = {"project": project, "gpus": gpus, "models": [model], "command": shlex.split(SLEEPER)}
            r = c.post("/v1/jobs", json=body)
            assert r.status_code == 201, r.text
            jobs.append((user, r.json()["id"]))
    tab.sign_in("admin", "overview")
    expect(page.locator(".kpi").nth(2)).not_to_contain_text("0jobs", timeout=15_000)
    node = "kisti-ib1-r0-n00"
    page.fill("#drain-node", node)
    page.fill("#drain-reason", "메모리 교체 (memory swap)")
    page.get_by_role("button", name="Drain", exact=True).click()
    row = page.locator("#main tbody tr", has_text=node)
    expect(row).to_contain_text("drained")
    expect(row).to_contain_text("메모리 교체")
    expect(page.locator(".kpi").nth(3)).to_contain_text("1 / 0")
    # its block has nothing else: the heatmap hatches it as unavailable
    expect(page.locator('.cells button[data-key="kisti/ib1"]')).to_have_class(re.compile(r"\bhatch\b"))
    page.wait_for_timeout(3000)  # a few more samples on the charts
    tab.shot("overview-busy")
    row.get_by_role("button", name="Undrain").click()
    expect(page.locator("#main .okbox")).to_have_text("Every node is up.")
    for user, job_id in jobs:
        with server.api(user) as c:
            c.post(f"/v1/jobs/{job_id}/cancel")
