"""People sign in with OpenID Connect, against a real provider (django-oidc-provider).

The provider runs as a subprocess for the whole module (``oidc_fixture.start_idp``); each test
serves gpupool with uvicorn on its own port and drives the flow as a browser does: httpx
follows the redirects, keeps both sites' cookies and posts the provider's own login form. The
ID token checks run on real ID tokens of that provider, tampered with or asked for by another
client.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import select

from gpupool.service.db import AuditRow, TokenRow
from gpupool.service.oidc import OidcRefused, RelyingParty
from gpupool.service.settings import ServiceSettings
from tests.service.conftest import free_port
from tests.service.oidc_fixture import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_ID,
    OTHER_SECRET,
    PEOPLE,
    GpupoolServer,
    Idp,
    data_attribute,
    forms,
    sign_in_at_idp,
    start_idp,
)

pytest.importorskip("oidc_provider", reason="pip install django-oidc-provider (a dev dependency)")
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    yield from start_idp(tmp_path_factory.mktemp("idp"))


@pytest.fixture
def gp(tmp_path: Path, idp: Idp) -> Iterator[GpupoolServer]:
    with GpupoolServer(tmp_path, idp) as server:
        yield server


def browser() -> httpx.Client:
    return httpx.Client(timeout=30, follow_redirects=True)


def dashboard_sign_in(gp: GpupoolServer, person: str) -> httpx.Response:
    """A person's browser: the dashboard's button, the provider's form, back to gpupool."""
    with browser() as b:
        login_page = b.get(gp.url + "/v1/auth/oidc/login")
        return sign_in_at_idp(b, login_page, person, PEOPLE[person]["password"])


def test_a_person_signs_in_to_the_dashboard_and_gets_a_short_lived_token_of_their_own(
    gp: GpupoolServer,
) -> None:
    with gp.client() as anon:
        info = anon.get("/v1/auth/oidc").json()
    assert info == {"enabled": True, "provider": "Test University", "login_url": "/v1/auth/oidc/login"}

    page = dashboard_sign_in(gp, "minjun.kim")
    assert page.status_code == 200, page.text
    assert str(page.url).startswith(gp.url + "/v1/auth/oidc/callback?")
    # the token is in the page (for the dashboard's script), never in a URL, never cached
    token = data_attribute(page.text, "data-token")
    assert token.startswith("gpt_") and token not in str(page.url)
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/ui/js/oidc-handoff.js">' in page.text

    with gp.client(token) as me_client, gp.client(gp.admin_token) as admin:
        me = me_client.get("/v1/users/me")
        assert me.status_code == 200, me.text
        # the person's own user, with exactly their own roles and memberships
        minted = admin.post("/v1/tokens", json={"user": "minjun.kim"}).json()["token"]
        with gp.client(minted) as api_token:
            assert me.json() == api_token.get("/v1/users/me").json()
        assert me.json()["name"] == "minjun.kim" and me.json()["role"] == "user"
        # never more: a member is no pool admin
        assert me_client.post("/v1/users", json={"name": "intruder"}).status_code == 403

    with gp.runtime.reader() as s:
        row = s.scalars(select(TokenRow).where(TokenRow.name == "oidc Test University")).one()
        assert row.expires_ms == gp.clock() + 12 * HOUR_MS
        audit = s.scalars(select(AuditRow).where(AuditRow.action == "token.create")).all()
        assert any(a.actor == "minjun.kim" and a.detail.get("via") == "oidc" for a in audit)


def test_an_expired_session_token_is_refused_with_a_clear_message(gp: GpupoolServer) -> None:
    token = data_attribute(dashboard_sign_in(gp, "minjun.kim").text, "data-token")
    with gp.client(token) as c:
        assert c.get("/v1/users/me").status_code == 200  # now cached by the directory
        gp.clock.advance(12 * HOUR_MS - 1)
        assert c.get("/v1/users/me").status_code == 200
        gp.clock.advance(1)
        r = c.get("/v1/users/me")
        assert r.status_code == 401 and "token expired at" in r.json()["detail"], r.text
        # the fast submission path refuses it too
        r = c.post("/v1/jobs", json={"project": "nlp", "gpus": 1, "command": ["true"]})
        assert r.status_code == 401 and "expired" in r.json()["detail"], r.text


def test_the_command_line_signs_in_through_a_loopback_browser_flow(gp: GpupoolServer, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    env["GPUPOOL_CONFIG"] = str(config)
    cli = subprocess.Popen(
        [sys.executable, "-c", "from gpupool.cli.main import app; app()",
         "login", "--oidc", "--no-browser", "--url", gp.url, "--wait", "120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert cli.stderr is not None
        lines = []
        while True:
            line = cli.stderr.readline()
            assert line, f"the command line printed no URL: {lines} {cli.stdout.read() if cli.stdout else ''}"
            lines.append(line)
            if line.startswith(gp.url + "/v1/auth/oidc/login?"):
                url = line.strip()
                break
        port = int(parse_qs(urlsplit(url).query)["cli_port"][0])
        with browser() as b:
            page = sign_in_at_idp(b, b.get(url), "minjun.kim", PEOPLE["minjun.kim"]["password"])
            assert page.status_code == 200, page.text
            assert f"127.0.0.1:{port}" in page.text  # the person sees where the token goes
            assert f"form-action http://127.0.0.1:{port}/" in page.headers["content-security-policy"]
            (form,) = forms(page.text)
            assert form["action"] == f"http://127.0.0.1:{port}/" and form["method"] == "post"
            # a post with another state is refused, and the command line keeps waiting
            forged = b.post(form["action"], data={**form["fields"], "state": "x" * 43})
            assert forged.status_code == 400
            done = b.post(form["action"], data=form["fields"])  # the person presses the button
            assert done.status_code == 200 and "Signed in" in done.text
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err
    assert "logged in to" in out and "minjun.kim" in out
    saved = config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    token = saved.split('token = "', 1)[1].split('"', 1)[0]
    assert token == form["fields"]["token"]
    with gp.client(token) as c:
        assert c.get("/v1/users/me").json()["name"] == "minjun.kim"


def test_an_unknown_person_is_refused_by_default_and_audited(gp: GpupoolServer) -> None:
    r = dashboard_sign_in(gp, "stranger")
    assert r.status_code == 403, r.text
    assert "stranger" in r.json()["detail"] and "not a gpupool user" in r.json()["detail"]
    assert "data-token" not in r.text
    with gp.runtime.reader() as s:
        assert s.scalars(select(AuditRow).where(AuditRow.action == "oidc.refuse")).one().actor == "stranger"
        assert s.scalars(select(TokenRow).where(TokenRow.name.like("oidc%"))).first() is None


def test_unknown_people_may_be_created_without_memberships(tmp_path: Path, idp: Idp) -> None:
    with GpupoolServer(tmp_path, idp, oidc_unknown_users="create", oidc_claim="email") as gp:
        token = data_attribute(dashboard_sign_in(gp, "stranger").text, "data-token")
        with gp.client(token) as c:
            me = c.get("/v1/users/me").json()
            assert me == {
                "name": "stranger@example.org",
                "display_name": "stranger",
                "role": "user",
                "memberships": [],
            }
            r = c.post("/v1/jobs", json={"project": "nlp", "gpus": 1, "command": ["true"]})
            assert r.status_code in (403, 404), r.text  # a member of nothing submits nowhere


def test_forged_callbacks_are_refused(gp: GpupoolServer, idp: Idp) -> None:
    with browser() as b:
        # no sign-in started in this browser
        r = b.get(gp.url + "/v1/auth/oidc/callback", params={"state": "s", "code": "c"})
        assert r.status_code == 401 and "no sign-in in progress" in r.json()["detail"]
        # a sign-in started, but the state is not its own
        start = b.get(gp.url + "/v1/auth/oidc/login", follow_redirects=False)
        assert start.status_code == 302 and start.headers["location"].startswith(idp.issuer + "/authorize?")
        assert "httponly" in start.headers["set-cookie"].lower()
        r = b.get(gp.url + "/v1/auth/oidc/callback", params={"state": "forged", "code": "c"})
        assert r.status_code == 401 and "state does not match" in r.json()["detail"]
        # a cookie this service did not make
        b.cookies.set("gpupool_oidc", "a.b.c.d.e", domain="127.0.0.1", path="/v1/auth/oidc")
        r = b.get(gp.url + "/v1/auth/oidc/callback", params={"state": "s", "code": "c"})
        assert r.status_code == 401 and "not one this service made" in r.json()["detail"]
        # the provider said no
        b.cookies.clear()
        b.get(gp.url + "/v1/auth/oidc/login", follow_redirects=False)
        r = b.get(gp.url + "/v1/auth/oidc/callback", params={"error": "access_denied"})
        assert r.status_code == 401 and "access_denied" in r.json()["detail"]


def test_a_callback_cannot_be_replayed(gp: GpupoolServer) -> None:
    with browser() as b:
        login_page = b.get(gp.url + "/v1/auth/oidc/login")
        cookie = b.cookies.get("gpupool_oidc")
        page = sign_in_at_idp(b, login_page, "minjun.kim", PEOPLE["minjun.kim"]["password"])
        assert page.status_code == 200 and b.cookies.get("gpupool_oidc") is None  # spent
        again = b.get(page.url)
        assert again.status_code == 401 and "no sign-in in progress" in again.json()["detail"]
        # with the cookie kept (stolen), the provider refuses the used code
        b.cookies.set("gpupool_oidc", cookie or "", domain="127.0.0.1", path="/v1/auth/oidc")
        again = b.get(page.url)
        assert again.status_code == 401 and "refused the authorization code" in again.json()["detail"]


def test_a_provider_that_does_not_answer_is_a_503(tmp_path: Path, idp: Idp) -> None:
    silent = f"http://127.0.0.1:{free_port()}/openid"
    with GpupoolServer(tmp_path, idp, oidc_issuer=silent) as gp, browser() as b:
        r = b.get(gp.url + "/v1/auth/oidc/login", follow_redirects=False)
        assert r.status_code == 503 and r.headers["retry-after"] == "10", r.text
        assert "did not answer" in r.json()["detail"]


def test_settings_refuse_an_issuer_over_plain_http() -> None:
    base = {"oidc_client_id": "c", "oidc_client_secret": "s"}
    for bad in ("http://idp.example.org", "http://localhost.evil.example/x", "ftp://127.0.0.1/"):
        with pytest.raises(ValueError, match="https://"):
            ServiceSettings(oidc_issuer=bad, **base)
    with pytest.raises(ValueError, match="oidc_client_id"):
        ServiceSettings(oidc_issuer="https://idp.example.org")
    assert ServiceSettings(oidc_issuer="https://idp.example.org", **base).oidc_enabled


def test_a_code_issued_to_another_client_is_refused(gp: GpupoolServer, idp: Idp) -> None:
    """Code injection: an authorization code of another relying party, in gpupool's callback."""
    other_callback = "http://127.0.0.1:9/other/callback"  # never contacted: we stop at the redirect
    idp.allow_redirect(OTHER_ID, other_callback)
    with browser() as b:
        start = b.get(gp.url + "/v1/auth/oidc/login", follow_redirects=False)
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        code = _code_for(b, idp, OTHER_ID, other_callback, "minjun.kim", nonce="n")
        r = b.get(gp.url + "/v1/auth/oidc/callback", params={"state": state, "code": code})
        assert r.status_code == 401 and "refused the authorization code" in r.json()["detail"], r.text


# -- the ID token's checks, on real ID tokens of the provider ------------------------------------


def _code_for(b: httpx.Client, idp: Idp, client_id: str, redirect: str, person: str, nonce: str) -> str:
    params = {
        "client_id": client_id,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "openid email profile",
        "state": "st",
        "nonce": nonce,
    }
    resp = b.get(idp.issuer + "/authorize", params=params, follow_redirects=False)
    for _ in range(10):
        if resp.status_code in (301, 302):
            location = str(httpx.URL(str(resp.url)).join(resp.headers["location"]))
            if location.startswith(redirect):
                return parse_qs(urlsplit(location).query)["code"][0]
            resp = b.get(location, follow_redirects=False)
        else:  # the provider's login form
            form = forms(resp.text)[0]
            fields = {**form["fields"], "username": person, "password": PEOPLE[person]["password"]}
            resp = b.post(httpx.URL(str(resp.url)).join(form["action"]), data=fields, follow_redirects=False)
    raise AssertionError(f"the provider did not redirect back: {resp.status_code} {resp.text[:300]}")


def _id_token(idp: Idp, client_id: str, secret: str, nonce: str) -> str:
    redirect = f"http://127.0.0.1:9/{client_id}/cb"
    idp.allow_redirect(client_id, redirect)
    with httpx.Client(timeout=30, follow_redirects=False) as b:
        code = _code_for(b, idp, client_id, redirect, "minjun.kim", nonce)
        r = b.post(
            idp.issuer + "/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(client_id, secret),
        )
    assert r.status_code == 200, r.text
    token: str = r.json()["id_token"]
    return token


def _party(idp: Idp, **kw: Any) -> RelyingParty:
    settings = ServiceSettings(
        oidc_issuer=idp.issuer, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET
    )
    return RelyingParty(settings, **kw)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    parsed: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return parsed


def _refused(rp: RelyingParty, token: str, nonce: str) -> str:
    with pytest.raises(OidcRefused) as e:
        rp.verify_id_token(token, nonce)
    assert e.value.status == 401
    return str(e.value)


def test_id_tokens_are_verified_signature_audience_nonce_expiry_and_algorithm(idp: Idp) -> None:
    rp = _party(idp)
    good = _id_token(idp, CLIENT_ID, CLIENT_SECRET, nonce="nonce-1")
    claims = rp.verify_id_token(good, "nonce-1")  # the real token passes: the checks can pass
    assert claims["preferred_username"] == "minjun.kim" and claims["aud"] == CLIENT_ID

    header, _, signature = good.split(".")
    tampered = f"{header}.{_b64({**_claims(good), 'preferred_username': 'admin'})}.{signature}"
    assert "signature does not verify" in _refused(rp, tampered, "nonce-1")
    assert "signature does not verify" in _refused(
        rp, f"{header}.{good.split('.')[1]}.{'A' * 342}", "nonce-1"
    )

    # signed with the client secret, which the provider also accepts (HS256): refused here
    forged = jwt.encode(
        {"alg": "HS256"}, {**_claims(good), "preferred_username": "admin"}, OctKey.import_key(CLIENT_SECRET)
    )
    assert "algorithm this service refuses" in _refused(rp, forged, "nonce-1")
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{good.split('.')[1]}."
    assert "refuses" in _refused(rp, unsigned, "nonce-1") or "cannot be read" in _refused(
        rp, unsigned, "nonce-1"
    )

    assert "nonce" in _refused(rp, good, "another-nonce")

    other = _id_token(idp, OTHER_ID, OTHER_SECRET, nonce="nonce-2")
    assert "audience" in _refused(rp, other, "nonce-2")

    later = _party(idp, wall_s=lambda: time.time() + 3600)  # the provider's ID tokens last 600 s
    assert "expired" in _refused(later, good, "nonce-1")

    # the same provider's keys, but this service expects another issuer (a provider that moved,
    # or a token of a second realm on the same server)
    elsewhere = _party(idp)
    found = rp.provider()
    elsewhere._provider = (dataclasses.replace(found, issuer=found.issuer + "/realm2"), time.monotonic())
    assert "issuer" in _refused(elsewhere, good, "nonce-1")
