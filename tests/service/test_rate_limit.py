"""Rate limits: 429 with ``Retry-After`` per token, per address and on failed authentications.

The buckets are checked on their own with a settable clock; the middleware through the app
(the test client's address is ``testclient``): a guessing run of bad tokens is cut off after
the failure burst while a valid token from the same address goes on; one token over its
rate is refused while another is not; the defaults leave an ordinary client alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from gpupool.service.api.rate_limit import TokenBuckets
from tests.service.conftest import Service, make_service


def test_bucket_allows_the_burst_then_the_rate() -> None:
    b = TokenBuckets(rate=2.0, burst=3)
    assert [b.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("k", 0.0) == pytest.approx(0.5)  # one unit is back in half a second
    assert b.take("k", 0.5) == 0.0 and b.take("k", 0.5) > 0
    assert b.take("other", 0.5) == 0.0  # keys are independent
    assert b.take("k", 100.0) == 0.0 and b.empty("k", 100.0) == 0.0  # refilled, capped at the burst
    assert [b.take("k", 100.0) for _ in range(3)][-1] > 0


def test_buckets_stay_bounded_in_keys() -> None:
    b = TokenBuckets(rate=1.0, burst=1, max_keys=100)
    for i in range(10_000):
        b.take(i, float(i) / 1000)  # never refilled in time: the oldest half goes
    assert len(b) <= 100


def _service(tmp_path: Path, **settings: object) -> Iterator[Service]:
    runtime, clock, executor = make_service(tmp_path, f"sqlite:///{tmp_path / 'gpupool.db'}", **settings)
    with TestClient(create_app(runtime)) as client:
        yield Service(runtime, client, clock, executor)


@pytest.fixture
def default_service(tmp_path: Path) -> Iterator[Service]:
    yield from _service(tmp_path)


@pytest.fixture
def tight_service(tmp_path: Path) -> Iterator[Service]:
    # rates so slow that nothing refills while the test runs, however loaded the machine
    yield from _service(tmp_path, rate_limit_token_per_s=0.01, rate_limit_token_burst=10)


@pytest.fixture
def guarded_service(tmp_path: Path) -> Iterator[Service]:
    """The default failure burst (20), refilled too slowly to matter during the test."""
    yield from _service(tmp_path, rate_limit_auth_failures_per_s=0.01)


def test_a_burst_of_bad_tokens_gets_429_and_a_valid_token_goes_on(guarded_service: Service) -> None:
    service = guarded_service
    member = service.auth("minjun.kim")  # minted and used before the run
    assert service.http.get("/v1/users/me", headers=member).status_code == 200
    statuses: Counter[int] = Counter()
    for i in range(500):
        r = service.http.get("/v1/users/me", headers={"Authorization": f"Bearer gpt_guess{i}"})
        statuses[r.status_code] += 1
        if r.status_code == 429:
            assert r.headers["content-type"] == "application/problem+json"
            assert int(r.headers["retry-after"]) >= 1
            assert "failed authentications" in r.json()["detail"]
    # the default failure burst is 20: then every guess is refused before it is looked up
    assert statuses == Counter({401: 20, 429: 480}), statuses
    print(f"\n500 bad tokens from one address: {dict(statuses)}")
    assert service.http.get("/v1/users/me", headers=member).status_code == 200
    metrics = service.call("GET", "/metrics").text
    assert f'gpupool_http_refused_total{{reason="rate_limit_auth"}} {statuses[429]}.0' in metrics
    sub = service.submit("minjun.kim", project="vision", gpus=1)
    assert sub.status_code == 201, sub.text
    # a request without a token guesses nothing: a plain 401, not locked out
    assert service.http.get("/v1/jobs").status_code == 401


def test_bad_token_sent_to_an_open_route_is_not_taken_as_valid(guarded_service: Service) -> None:
    service = guarded_service
    bad = {"Authorization": "Bearer gpt_guess"}
    assert service.http.get("/v1/health", headers=bad).status_code == 200
    for _ in range(25):
        service.http.get("/v1/users/me", headers=bad)
    assert service.http.get("/v1/users/me", headers=bad).status_code == 429


def test_one_token_over_its_rate_is_refused_another_is_not(tight_service: Service) -> None:
    service = tight_service
    member, admin = service.auth("minjun.kim"), service.auth("admin")
    codes = [service.http.get("/v1/jobs", headers=member).status_code for _ in range(15)]
    assert 429 in codes and codes[:5] == [200] * 5, codes
    r = service.http.get("/v1/jobs", headers=member)
    assert r.status_code == 429 and "this token" in r.json()["detail"] and int(r.headers["retry-after"]) >= 1
    assert service.http.get("/v1/jobs", headers=admin).status_code == 200


def test_per_address_limit(tmp_path: Path) -> None:
    for service in _service(tmp_path, rate_limit_address_per_s=0.01, rate_limit_address_burst=5):
        codes = [service.http.get("/v1/health").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3, codes


def test_an_ordinary_client_is_not_limited_by_default(default_service: Service) -> None:
    service = default_service
    codes = Counter(service.submit("minjun.kim", project="vision", gpus=1).status_code for _ in range(300))
    codes.update(service.call("GET", "/v1/jobs", "minjun.kim").status_code for _ in range(200))
    assert codes == Counter({201: 300, 200: 200}), codes
