"""The directory cache: tokens, memberships and tenants changed through the API count at once.

The submission path reads callers, projects and allocations from ``Directory`` (no query per
request); every change written through the service invalidates it after its commit, and a
change made behind the service's back is seen after at most ``directory_cache_s``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from gpupool.service.db import TokenRow, make_engine, session_factory
from gpupool.service.directory import Directory
from tests.service.conftest import Service


def test_membership_changes_count_for_the_next_submission(service: Service) -> None:
    assert service.submit("minjun.kim", project="vision", gpus=1).status_code == 201  # caches the caller
    path = "academia/snu/vision"
    gone = service.call("DELETE", f"/v1/projects/{path}/members/minjun.kim")
    assert gone.status_code == 204
    r = service.submit("minjun.kim", project="vision", gpus=1)
    assert r.status_code == 404, r.text  # no longer a member: the project is not even visible
    back = service.call("POST", f"/v1/projects/{path}/members", json={"user": "minjun.kim", "role": "member"})
    assert back.status_code == 201
    assert service.submit("minjun.kim", project="vision", gpus=1).status_code == 201


def test_a_new_project_is_known_by_its_short_name_at_once(service: Service) -> None:
    assert service.submit("minjun.kim", project="vision", gpus=1).status_code == 201  # caches tenants
    r = service.call("POST", "/v1/tenants", json={"key": "optics", "parent": "academia/snu"})
    assert r.status_code == 201, r.text
    added = service.call(
        "POST", "/v1/projects/academia/snu/optics/members", json={"user": "minjun.kim", "role": "member"}
    )
    assert added.status_code == 201, added.text
    r = service.submit("minjun.kim", project="optics", gpus=1)
    assert r.status_code == 201, r.text
    assert r.json()["project"] == "academia/snu/optics"


def test_a_change_behind_the_services_back_is_seen_after_the_ttl(tmp_path: Path, service: Service) -> None:
    now = [0.0]
    token = service.token("minjun.kim")
    url = service.runtime.settings.url
    directory = Directory(service.runtime.reader, ttl_s=5.0, monotonic=lambda: now[0])
    assert directory.caller(token) is not None
    other = make_engine(url)  # another process, as far as this directory can tell
    with session_factory(other).begin() as s:
        s.execute(update(TokenRow).values(revoked=True))
    other.dispose()
    assert directory.caller(token) is not None  # cached: nothing told this directory
    now[0] = 5.0
    assert directory.caller(token) is None


def test_no_cache_when_the_ttl_is_zero(service: Service) -> None:
    token = service.token("minjun.kim")
    directory = Directory(service.runtime.reader, ttl_s=0)
    assert directory.caller(token) is not None
    with service.runtime.factory.begin() as s:
        s.execute(update(TokenRow).values(revoked=True))
    assert directory.caller(token) is None
