"""The web dashboard: static HTML, CSS and JavaScript served by the service at ``/``.

This package owns the dashboard's assets (``static/``: one HTML page, ES modules, a style
sheet, an icon; nothing fetched from elsewhere, so it works offline) and ``mount_dashboard``,
which serves them from a FastAPI app: ``/`` is the page, ``/ui/...`` its assets. The page
talks only to the ``/v1`` API, from the browser, with the signed-in user's token (kept in
``sessionStorage``); what it shows follows the API's answers, so a user sees exactly what
their role lets them see.

Every dashboard response carries a strict Content-Security-Policy (scripts, styles and
connections from this origin only; images also as ``data:``/``blob:`` URIs for report
figures): a token in the page is worth protecting from injected script, and the policy also
proves the page loads nothing from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["CSP", "STATIC_DIR", "mount_dashboard"]

STATIC_DIR = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (ETag / Last-Modified): an upgraded service serves its new assets.
    "Cache-Control": "no-cache",
}


class _Assets(StaticFiles):
    """Static files with the dashboard's security and caching headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: the page at ``/``, its assets under ``/ui/``."""

    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)

    app.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/ui", _Assets(directory=STATIC_DIR), name="dashboard-assets")
