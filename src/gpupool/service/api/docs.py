"""``/docs``: the OpenAPI page (Swagger UI), its assets served by the service itself.

This module owns the documentation page. FastAPI's own pages load Swagger UI and ReDoc
from a CDN: a pool on a closed network (or a browser that refuses third-party scripts)
showed a blank page, and every visit told the CDN who reads the API. Here the assets come
from the ``fastapi-offline`` package (Swagger UI 5, Apache-2.0; the package itself MIT),
under ``/docs-assets/``; Swagger UI's online validator badge is off, so the page makes no
request beyond this service. There is no ``/redoc``: ReDoc's bundle fetches its logo from
its vendor's CDN whatever it is told.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (create ``app`` with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi = app.openapi_url or "/openapi.json"
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} API",
            oauth2_redirect_url=redirect,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
