"""Crafted cursors on both databases: every one is a 200 or a 422 naming ``cursor``, never a 5xx.

A cursor is opaque to clients but decoded by the server, so a client can send anything: the
queue's (``/v1/dashboard/jobs``: sort key and job number, per sort) and the plain ones of
``/v1/jobs`` and ``/v1/audit``. Hypothesis builds well-formed cursors with values of every
size and type (64-bit and larger integers, floats, strings, nesting) and arbitrary text; on
PostgreSQL a ``gpus`` sort key past 32 bits was "integer out of range", a 500.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupool.service import store
from gpupool.service.api.dashboard.queue import MS_MAX, SORT_KEY_RANGES
from tests.service.conftest import Service

SORTS = sorted(SORT_KEY_RANGES)
BIG = st.sampled_from([2**31 - 1, 2**31, 2**32, 2**62, MS_MAX + 1, 2**63 - 1, 2**63, 2**64, 10**30])
INTS = st.one_of(st.integers(), BIG, BIG.map(lambda v: -v), st.integers(-2, 10))
VALUES = st.one_of(INTS, st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=8),
                   st.lists(st.integers(), max_size=2))  # fmt: skip


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _check(r: Any, cursor: str) -> None:
    assert r.status_code in (200, 422), (cursor, r.status_code, r.text)
    if r.status_code == 422:
        body = r.json()
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in body["errors"]] == ["cursor"], body


@pytest.fixture
def with_jobs(service: Service) -> Service:
    for gpus in (1, 2, 8):
        assert service.submit("minjun.kim", project="vision", gpus=gpus).status_code == 201
    service.cycle()
    return service


def test_crafted_queue_cursors(with_jobs: Service) -> None:
    service = with_jobs

    @given(sort=st.sampled_from(SORTS), asc=st.booleans(), value=VALUES, seq=VALUES, order_in=st.booleans())
    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(sort: str, asc: bool, value: Any, seq: Any, order_in: bool) -> None:
        cursor = _b64(json.dumps([sort, asc if order_in else int(asc), value, seq]))
        params = {"sort": sort, "order": "asc" if asc else "desc", "state": "all", "cursor": cursor}
        r = service.call("GET", "/v1/dashboard/jobs", params=params)
        _check(r, cursor)
        valid_seq = type(seq) is int and 0 <= seq <= store.MAX_ID
        bounds = SORT_KEY_RANGES[sort]
        valid_value = value is None or (
            bounds is not None and type(value) is int and bounds[0] <= value <= bounds[1]
        )
        assert (r.status_code == 200) == (order_in and valid_seq and valid_value), (cursor, r.text)

    run()


def test_out_of_range_sort_keys_name_the_cursor(with_jobs: Service) -> None:
    """The fuzzing run's 500: a ``gpus`` key past PostgreSQL's 32-bit integer."""
    for value in (2**31, 2**40, MS_MAX, -(2**63)):
        cursor = _b64(json.dumps(["gpus", False, value, 5]))
        r = with_jobs.call("GET", "/v1/dashboard/jobs", params={"sort": "gpus", "cursor": cursor})
        assert r.status_code == 422, r.text
        assert "out of range" in r.json()["errors"][0]["message"]
    # a real next page still works, on every sort
    for sort in SORTS:
        page = with_jobs.call("GET", "/v1/dashboard/jobs", params={"sort": sort, "state": "all", "limit": 1})
        nxt = page.json()["next_cursor"]
        r = with_jobs.call("GET", "/v1/dashboard/jobs",
                           params={"sort": sort, "state": "all", "limit": 1, "cursor": nxt})  # fmt: skip
        assert r.status_code == 200 and r.json()["items"], (sort, r.text)


@given(text=st.one_of(st.text(max_size=70), st.integers().map(lambda v: _b64(f"s:{v}")),
                      st.text(alphabet="0123456789", max_size=30).map(lambda v: _b64(f"s:{v}"))))  # fmt: skip
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_crafted_plain_cursors(with_jobs: Service, text: str) -> None:
    for path in ("/v1/jobs", "/v1/audit"):
        r = with_jobs.call("GET", path, params={"cursor": text})
        _check(r, text)
