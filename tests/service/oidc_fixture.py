"""A real OpenID Connect provider and a real gpupool server for the OIDC tests.

``start_idp`` prepares django-oidc-provider's database (``tests.service.oidc_idp.bootstrap``:
migrations, an RSA signing key, people, two confidential clients) and starts the site with
Django's ``runserver`` on a free 127.0.0.1 port; it is ready when its discovery document
answers. ``Idp.allow_redirect`` registers a callback URL for a client, as the provider's
administrator would (a row of its database). ``GpupoolServer`` serves a ``Runtime`` (the
service test fixtures' settable clock and recording executor) with uvicorn in a thread, so a
browser (or httpx) can follow redirects between the two. ``sign_in_at_idp`` posts the
provider's own login form, as a person's browser does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gpupool.service.api.app import create_app
from gpupool.service.runtime import Runtime
from tests.service.conftest import free_port, make_service
from tests.service.fakes import Clock

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = {
    # the demo tenants' member (a gpupool user named minjun.kim) and a stranger
    "minjun.kim": {
        "password": "pw-minjun",
        "email": "minjun.kim@snu.ac.kr",
        "first": "Minjun",
        "last": "Kim",
    },
    "stranger": {"password": "pw-stranger", "email": "stranger@example.org"},
}
CLIENT_ID, CLIENT_SECRET = "gpupool", "gpupool-secret-for-tests"
OTHER_ID, OTHER_SECRET = "other-app", "other-app-secret"


@dataclass
class Idp:
    issuer: str
    db: Path
    log: Path

    def allow_redirect(self, client_id: str, uri: str) -> None:
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            (current,) = c.execute(
                "SELECT _redirect_uris FROM oidc_provider_client WHERE client_id = ?", (client_id,)
            ).fetchone()
            uris = [u for u in current.splitlines() if u] + [uri]
            c.execute(
                "UPDATE oidc_provider_client SET _redirect_uris = ? WHERE client_id = ?",
                ("\n".join(uris), client_id),
            )
            c.commit()


def start_idp(tmp: Path) -> Iterator[Idp]:
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GPUPOOL_", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": "tests.service.oidc_idp.settings",
        "OIDC_IDP_DB": str(tmp / "idp.sqlite3"),
        "OIDC_IDP_SITE_URL": site,
        "PYTHONPATH": str(ROOT),
    }
    spec = {
        "people": [{"username": u, **p} for u, p in PEOPLE.items()],
        "clients": [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": []},
            {"client_id": OTHER_ID, "client_secret": OTHER_SECRET, "redirect_uris": []},
        ],
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, "-m", "tests.service.oidc_idp.bootstrap", str(tmp / "spec.json")],
        env=env, cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    log = tmp / "idp.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    idp = Idp(site + "/openid", tmp / "idp.sqlite3", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(idp.issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the OIDC provider did not start: " + log.read_text()
            time.sleep(0.1)
        yield idp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class GpupoolServer:
    """A gpupool service on a free port, signing people in with ``idp``."""

    def __init__(self, tmp: Path, idp: Idp, **settings: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = {
            "oidc_issuer": idp.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_provider_name": "Test University",
            "oidc_claim": "preferred_username",
            **settings,
        }
        runtime, clock, _ = make_service(tmp, f"sqlite:///{tmp / 'gpupool.db'}", **options)
        self.runtime: Runtime = runtime
        self.clock: Clock = clock
        idp.allow_redirect(CLIENT_ID, self.url + "/v1/auth/oidc/callback")
        config = uvicorn.Config(
            create_app(runtime), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> GpupoolServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            assert self._thread.is_alive(), "the gpupool server did not start"
            assert time.monotonic() < deadline, "the gpupool server did not start in time"
            time.sleep(0.05)
        self.admin_token = self.runtime.new_admin_token or ""
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def client(self, token: str = "") -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


class _Forms(HTMLParser):
    """The forms of a page: action, method and the named inputs' values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def forms(page: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def sign_in_at_idp(
    browser: httpx.Client, login_page: httpx.Response, user: str, password: str
) -> httpx.Response:
    """Fill and post the provider's login form (``login_page``); the response after redirects."""
    assert login_page.status_code == 200 and 'id="login"' in login_page.text, login_page.text[:500]
    form = forms(login_page.text)[0]
    fields = {**form["fields"], "username": user, "password": password}
    target = httpx.URL(str(login_page.url)).join(form["action"])
    return browser.post(target, data=fields, follow_redirects=True)


def data_attribute(page: str, name: str) -> str:
    m = re.search(rf'{name}="([^"]*)"', page)
    assert m, page[:1000]
    return m.group(1)
