"""Container images at the API (ADR 0013): the job field, the image policy per tenant
(inherited down the tree, only narrowed), and the image carried to the executor."""

from __future__ import annotations

from typing import Any

from tests.service.conftest import Service

ORG, PROJECT, SIBLING = "academia/snu", "academia/snu/vision", "academia/snu/nlp"
TORCH = "nvcr.io/nvidia/pytorch:24.01-py3"


def _tenant(service: Service, path: str) -> dict[str, Any]:
    r = service.call("GET", f"/v1/tenants/{path}")
    assert r.status_code == 200
    got: dict[str, Any] = r.json()
    return got


def _jobs(service: Service) -> int:
    r = service.call("GET", "/v1/jobs?limit=500")
    assert r.status_code == 200
    body = r.json()
    return len(body["items"])


def test_a_bad_image_reference_is_a_422_naming_the_field_and_changes_nothing(service: Service) -> None:
    before = _jobs(service)
    for bad in ["Ubuntu:Latest", "oci-archive:relative.tar", "a b", ""]:
        r = service.submit("minjun.kim", project="vision", gpus=1, image=bad)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "image", r.json()
    assert _jobs(service) == before


def test_the_image_reaches_the_executor(service: Service) -> None:
    r = service.submit("minjun.kim", project="vision", gpus=1, image=TORCH)
    assert r.status_code == 201, r.text
    assert r.json()["image"] == TORCH
    assert service.call("GET", f"/v1/jobs/{r.json()['id']}").json()["image"] == TORCH
    service.cycle()
    service.cycle()
    (launch,) = service.executor.launches
    assert launch.image == TORCH
    assert service.submit("minjun.kim", project="vision", gpus=1).status_code == 201
    service.cycle()
    service.cycle()
    assert service.executor.launches[-1].image is None


def test_each_task_of_an_array_runs_in_the_array_s_image(service: Service) -> None:
    """A task's launch order is built by the same codec as a job's (``LaunchOrders.of_task``)."""
    r = service.submit("minjun.kim", project="vision", gpus=8, models=["H100"], image=TORCH, array="0-1")
    assert r.status_code == 201, r.text
    a = r.json()["id"]
    service.cycle()
    launches = service.executor.launches
    assert [x.job_id for x in launches] == [f"{a}_0", f"{a}_1"]
    assert [x.image for x in launches] == [TORCH, TORCH]
    assert launches[1].env == {"GPUPOOL_ARRAY_JOB_ID": a, "GPUPOOL_ARRAY_TASK_ID": "1"}


def test_the_image_policy_is_inherited_narrowed_from_above_and_enforced_at_submission(
    service: Service,
) -> None:
    for user, tenant in (("prof.lee", ORG),):
        assert service.call("POST", "/v1/users", json={"name": user}).status_code == 201
        r = service.call("POST", f"/v1/projects/{tenant}/members", json={"user": user, "role": "admin"})
        assert r.status_code == 201, r.text
    # No policy: every registry.
    assert service.submit("minjun.kim", project="vision", gpus=1, image="ubuntu:24.04").status_code == 201
    assert _tenant(service, PROJECT)["allowed_registries"] is None
    # The pool admin limits the sector; the tree inherits it.
    r = service.call("PATCH", "/v1/tenants/academia", json={"allowed_registries": ["NVCR.io", "local"]})
    assert r.status_code == 200, r.text
    assert r.json()["allowed_registries"] == ["nvcr.io", "local"]
    before = _jobs(service)
    r = service.submit("minjun.kim", project="vision", gpus=1, image="ubuntu:24.04")
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert "'docker.io'" in detail and PROJECT in detail and "allowed: local, nvcr.io" in detail, detail
    assert r.json()["errors"][0]["field"] == "image"
    assert _jobs(service) == before
    assert service.submit("minjun.kim", project="vision", gpus=1, image=TORCH).status_code == 201
    r = service.submit("minjun.kim", project="vision", gpus=1, image="oci-archive:/data/images/x.tar")
    assert r.status_code == 201
    # The org admin narrows a project of hers (not its sibling) but never widens it.
    r = service.call("PATCH", f"/v1/tenants/{PROJECT}", "prof.lee", json={"allowed_registries": ["local"]})
    assert r.status_code == 200, r.text
    assert service.submit("minjun.kim", project="vision", gpus=1, image=TORCH).status_code == 403
    assert service.submit("hayoon.choi", project="nlp", gpus=1, image=TORCH).status_code == 201
    r = service.call(
        "PATCH", f"/v1/tenants/{PROJECT}", "prof.lee", json={"allowed_registries": ["docker.io"]}
    )
    assert r.status_code == 403 and "docker.io not allowed to its parent" in r.json()["detail"], r.text
    assert _tenant(service, PROJECT)["allowed_registries"] == ["local"]
    # ... nor her own organisation's (set from above), and the pool admin cannot widen below the sector.
    r = service.call("PATCH", f"/v1/tenants/{ORG}", "prof.lee", json={"allowed_registries": ["local"]})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "allowed_registries"
    r = service.call("PATCH", f"/v1/tenants/{ORG}", json={"allowed_registries": ["docker.io"]})
    assert r.status_code == 422 and "docker.io" in r.json()["detail"]
    # A new project of hers within the policy; a member sets nothing.
    r = service.call(
        "POST",
        "/v1/tenants",
        "prof.lee",
        json={"parent": ORG, "key": "robotics", "allowed_registries": ["ghcr.io"]},
    )
    assert r.status_code == 403
    r = service.call("PATCH", f"/v1/tenants/{PROJECT}", "minjun.kim", json={"allowed_registries": None})
    assert r.status_code == 403
    # Not a registry at all: 422 naming the field.
    r = service.call("PATCH", f"/v1/tenants/{PROJECT}", json={"allowed_registries": ["https://nvcr.io"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("allowed_registries"), r.text
    # Null inherits again.
    assert (
        service.call("PATCH", f"/v1/tenants/{PROJECT}", json={"allowed_registries": None}).status_code == 200
    )
    assert service.submit("minjun.kim", project="vision", gpus=1, image=TORCH).status_code == 201
