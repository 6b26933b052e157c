"""The national programme's routes on the app: ``/v1/calls`` and ``/v1/applications`` (ADR 0010)."""

from __future__ import annotations

from fastapi import FastAPI

from gpupool.service.api import applications, calls


def install(app: FastAPI) -> None:
    app.include_router(calls.router)
    app.include_router(applications.router)
