"""Property-based requests from the OpenAPI schema (schemathesis): no input may cause a 5xx.

Every operation is called with generated (valid and invalid) input, as the pool admin so that
requests reach past authentication, on SQLite and on PostgreSQL (whose integers and text are
stricter). Bounded: a few dozen examples per operation, a time budget for all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from gpupool.service.api.app import create_app
from tests.service.conftest import make_service

pytestmark = pytest.mark.slow
#: stop starting new operations after this long (the whole run stays near two minutes)
BUDGET_S = 50.0
MAX_EXAMPLES = 40


@pytest.fixture
def fuzz_app(tmp_path: Path, database_url: str) -> Iterator[tuple[Any, str]]:
    runtime, _, _ = make_service(tmp_path, database_url)
    # the test owns the runtime: schemathesis runs the app's lifespan on its own
    runtime.start()
    app = create_app(runtime, manage_runtime=False)
    with TestClient(app) as client:
        client.get("/v1/health")
        # something to find: a job, so that ids and cursors lead somewhere
        h = {"Authorization": f"Bearer {runtime.new_admin_token}"}
        tok = client.post("/v1/tokens", headers=h, json={"user": "minjun.kim"}).json()["token"]
        client.post("/v1/jobs", headers={"Authorization": f"Bearer {tok}"},
                    json={"project": "vision", "command": ["true"], "gpus": 1})  # fmt: skip
        runtime.loop.cycle()
        yield app, runtime.new_admin_token or ""
    runtime.stop()


def _fuzz(operation: Any, auth: dict[str, str], failures: list[str], calls: list[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), **auth}
        calls[0] += 1
        case.call_and_validate(checks=[not_a_server_error])

    try:
        run()
    except Exception as e:  # keep going: report every operation that failed
        failures.append(f"{operation.method.upper()} {operation.path}: {str(e)[:3000]}")


def test_no_input_causes_a_server_error(fuzz_app: tuple[Any, str]) -> None:
    app, token = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    failures: list[str] = []
    calls = [0]
    operations = 0
    for result in schema.get_all_operations():
        if time.monotonic() - started > BUDGET_S:
            break
        operations += 1
        _fuzz(result.ok(), auth, failures, calls)
    assert operations >= 20 and calls[0] >= operations * 5
    assert not failures, "\n\n".join(failures)
