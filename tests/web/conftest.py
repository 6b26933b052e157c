"""Fixtures of the dashboard tests: the service fixtures of ``tests.service`` (SQLite and
PostgreSQL, a controllable clock and executor), and a place for screenshots.

Screenshots go to ``tests/web/artifacts/`` (ignored by git), or to ``$GPUPOOL_WEB_ARTIFACTS``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.service.conftest import database_url, postgres, service, sqlite_service  # noqa: F401


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("GPUPOOL_WEB_ARTIFACTS") or Path(__file__).parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
