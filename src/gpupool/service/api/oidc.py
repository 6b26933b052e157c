"""``/v1/auth/oidc``: people sign in with their university's or nation's identity provider.

This module owns the three routes of the browser flow (ADR 0008):

- ``GET /v1/auth/oidc``: whether sign-in with OIDC is on, and the provider's name (public:
  the dashboard's sign-in page asks before anyone is signed in);
- ``GET /v1/auth/oidc/login``: sends the browser to the provider (authorization code with
  PKCE, state and nonce), remembering the sign-in in an encrypted cookie. With ``cli_port``
  and ``cli_state`` the sign-in is for a command line waiting on that loopback port;
- ``GET /v1/auth/oidc/callback``: where the provider sends the browser back. The code is
  exchanged, the ID token verified, the person mapped to their gpupool user, and a
  short-lived token of that user made. The dashboard gets it through a page of this origin
  that puts it in the tab's ``sessionStorage``; a command line through a form the person
  submits to 127.0.0.1:<cli_port> (a click: a link someone else crafted cannot hand a token
  to their own listener without the person seeing where it goes).

Refusals are problem documents: 401 for a sign-in that does not verify, 403 for a person who
is no gpupool user, 503 when the provider does not answer, 404 when OIDC is not configured.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from gpupool.service import oidc
from gpupool.service.api.caller import RuntimeDep
from gpupool.service.api.problems import ApiProblem, responses
from gpupool.web import CSP

router = APIRouter(tags=["auth"])
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}


class OidcInfo(BaseModel):
    enabled: bool
    provider: str = ""
    login_url: str = ""


def install(app: FastAPI) -> None:
    """Serve the routes; with an issuer configured, the relying party they use."""
    settings = app.state.runtime.settings
    app.state.oidc = oidc.RelyingParty(settings) if settings.oidc_enabled else None
    app.include_router(router)


def _party(request: Request) -> oidc.RelyingParty:
    rp: oidc.RelyingParty | None = request.app.state.oidc
    if rp is None:
        raise ApiProblem(404, "sign-in with OpenID Connect is not configured (GPUPOOL_OIDC_ISSUER)")
    return rp


def _redirect_uri(request: Request, rt: RuntimeDep) -> str:
    base = rt.settings.public_url or str(request.base_url)
    return base.rstrip("/") + oidc.CALLBACK_PATH


def _unavailable(e: oidc.ProviderUnavailable) -> ApiProblem:
    return ApiProblem(503, str(e), kind="service-unavailable", headers={"Retry-After": "10"})


@router.get("/v1/auth/oidc", response_model=OidcInfo, summary="Is sign-in with OpenID Connect on?")
def info(request: Request, rt: RuntimeDep) -> OidcInfo:
    if request.app.state.oidc is None:
        return OidcInfo(enabled=False)
    return OidcInfo(enabled=True, provider=oidc.provider_label(rt.settings), login_url="/v1/auth/oidc/login")


@router.get(
    "/v1/auth/oidc/login",
    status_code=302,
    responses=responses(404, 422, 503),
    summary="Sign in with the identity provider (redirects there)",
)
def login(
    request: Request,
    rt: RuntimeDep,
    cli_port: Annotated[
        int | None, Query(ge=1024, le=65535, description="A command line's loopback port")
    ] = None,
    cli_state: Annotated[
        str | None, Query(pattern=oidc.CLI_STATE.pattern, description="The command line's random state")
    ] = None,
) -> RedirectResponse:
    rp = _party(request)
    if (cli_port is None) != (cli_state is None):
        raise ApiProblem(422, "cli_port and cli_state go together", kind="invalid-request")
    try:
        url, cookie = rp.start(_redirect_uri(request, rt), cli_port or 0, cli_state or "")
    except oidc.ProviderUnavailable as e:
        raise _unavailable(e) from None
    resp = RedirectResponse(url, status_code=302, headers=_NO_STORE)
    resp.set_cookie(
        oidc.COOKIE,
        cookie,
        max_age=oidc.LOGIN_TTL_S,
        path="/v1/auth/oidc",
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on cross-site posts
        secure=_redirect_uri(request, rt).startswith("https://"),
    )
    return resp


@router.get(
    oidc.CALLBACK_PATH,
    response_class=HTMLResponse,
    responses=responses(401, 403, 404, 503),
    summary="Where the identity provider sends the browser back",
)
def callback(
    request: Request,
    rt: RuntimeDep,
    state: Annotated[str, Query(max_length=512)] = "",
    code: Annotated[str, Query(max_length=2048)] = "",
    error: Annotated[str, Query(max_length=256)] = "",
    error_description: Annotated[str, Query(max_length=1024)] = "",
) -> HTMLResponse:
    rp = _party(request)
    try:
        pending = rp.unseal(request.cookies.get(oidc.COOKIE))
        if error:
            raise oidc.OidcRefused(
                f"the identity provider refused the sign-in: {error} {error_description}".strip()
            )
        if not code:
            raise oidc.OidcRefused("the callback has no authorization code")
        claims = rp.finish(pending, state, code, _redirect_uri(request, rt))
        person = rp.person(claims)
        with rt.factory.begin() as s:
            session = oidc.sign_in(s, rt.settings, person, rt.clock())
        if session is None:
            raise oidc.stranger(person)
    except oidc.OidcRefused as e:
        kind = "forbidden" if e.status == 403 else "unauthorized"
        raise ApiProblem(e.status, str(e), kind=kind) from None
    except oidc.ProviderUnavailable as e:
        raise _unavailable(e) from None
    page = _cli_page(session, pending) if pending.cli_port else _dashboard_page(session)
    page.delete_cookie(oidc.COOKIE, path="/v1/auth/oidc")
    return page


def _page(title: str, body: str, csp: str) -> HTMLResponse:
    text = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · gpupool</title>"
        '<link rel="stylesheet" href="/ui/app.css"></head>'
        f'<body><main class="signin">{body}</main></body></html>\n'
    )
    headers = {**_NO_STORE, "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(text, headers=headers)


def _dashboard_page(session: oidc.SessionToken) -> HTMLResponse:
    # The token is in the page, never in a URL (no history, logs or Referer keep it); the
    # script puts it where the dashboard keeps its token and opens the dashboard.
    user = html.escape(session.user)
    body = (
        f'<div class="card" id="oidc-handoff" data-token="{html.escape(session.plain)}" data-user="{user}">'
        f"<h1>Signed in as {user}</h1>"
        '<p>Opening the dashboard… <a href="/">Open it</a> if nothing happens.</p></div>'
        '<script type="module" src="/ui/js/oidc-handoff.js"></script>'
    )
    return _page("Signed in", body, CSP)


def _cli_page(session: oidc.SessionToken, pending: oidc.PendingLogin) -> HTMLResponse:
    target = f"http://127.0.0.1:{pending.cli_port}/"
    user = html.escape(session.user)
    body = (
        '<form class="card" method="post" id="oidc-cli" action="' + target + '">'
        f"<h1>Signed in as {user}</h1>"
        f"<p>Hand this sign-in to the <code>gpupool</code> command line waiting on this computer "
        f"(<code>127.0.0.1:{pending.cli_port}</code>)? Do so only if you ran "
        "<code>gpupool login --oidc</code> yourself just now.</p>"
        f'<input type="hidden" name="token" value="{html.escape(session.plain)}">'
        f'<input type="hidden" name="state" value="{html.escape(pending.cli_state)}">'
        '<div class="actions"><button type="submit">Sign in the command line</button></div></form>'
    )
    return _page("Sign in the command line", body, CSP.replace("form-action 'self'", f"form-action {target}"))
