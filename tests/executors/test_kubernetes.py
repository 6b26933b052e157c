"""The Kubernetes executor against a recorded contract: the official client, a fake transport.

No API server runs here. The ``kubernetes`` client is real (its ``ApiClient`` serialises and
deserialises); only its REST transport is replaced by ``Recorder``, which checks each request
(method, path, query, exact JSON body) and answers as an API server would (201, 409, 401, 500,
Job lists with status). docs/kubernetes.md says what this does and does not prove.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client as k8s
from kubernetes.client import rest

from gpupool.service.executors.base import AllocationExited, AllocationFailed, AllocationStarted, Launch
from gpupool.service.executors.kubernetes import (
    KubernetesExecutor,
    KubernetesOptions,
    job_manifests,
    job_name,
)

NODES = {"gpu-07": "H100", "gpu-08": "H100"}


class _Raw:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.reason = {200: "OK", 201: "Created", 401: "Unauthorized", 409: "Conflict"}.get(status, "Error")
        self.data = json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}


class Recorder:
    """Stands in for the client's RESTClientObject: records requests, answers from a script."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.answers: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    def answer(self, method: str, path: str, *replies: tuple[int, Any]) -> None:
        self.answers.setdefault((method, path), []).extend(replies)

    def request(self, method: str, url: str, headers: Any = None, body: Any = None, post_params: Any = None,
                _request_timeout: Any = None) -> rest.RESTResponse:  # fmt: skip
        u = urlparse(url)
        self.calls.append((method, u.path, parse_qs(u.query), body))
        queue = self.answers.get((method, u.path))
        if queue:
            status, reply = queue.pop(0)
        elif method == "POST":
            self.jobs[body["metadata"]["name"]] = body
            status, reply = 201, body
        elif method == "GET" and u.path.endswith("/jobs"):
            status, reply = 200, {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {},
                                  "items": list(self.jobs.values())}  # fmt: skip
        elif method == "GET" and u.path.endswith("/pods"):
            status, reply = 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}
        else:
            status, reply = 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        r = rest.RESTResponse(_Raw(status, reply))
        r.read()
        return r

    def close(self) -> None:
        pass


def make(tmp_path: Path, **opts: str) -> tuple[KubernetesExecutor, Recorder]:
    cfg = k8s.Configuration()
    cfg.host = "https://k8s.test"
    api = k8s.ApiClient(cfg)
    rec = Recorder()
    api.rest_client = rec
    options = KubernetesOptions.parse({"namespace": "gpupool", "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                                       "poll_interval_s": "0.001", **opts})  # fmt: skip
    return KubernetesExecutor("sejong", NODES, options, api_client=api, start=False), rec


def launch(
    aid: str = "j7.2", placement: tuple[tuple[str, tuple[int, ...]], ...] = (("gpu-07", (0, 1)),)
) -> Launch:
    return Launch(aid, aid.split(".")[0], ("python", "train.py"), placement, Path("/logs"),
                  env={"WANDB_MODE": "offline"}, cwd=Path("/work"), walltime_s=3600)  # fmt: skip


def step(ex: KubernetesExecutor, times: int = 1) -> list[Any]:
    out: list[Any] = []
    for _ in range(times):
        time.sleep(0.002)
        ex._retry_at = 0.0
        ex.step()
        out += ex.poll()
    return out


EXPECTED_BODY = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": job_name("j7.2", 0),
        "namespace": "gpupool",
        "labels": {
            "app.kubernetes.io/managed-by": "gpupool",
            "gpupool.io/allocation": "j7.2",
            "gpupool.io/job": "j7",
            "gpupool.io/cluster": "sejong",
            "gpupool.io/worker": "0",
        },
        "annotations": {
            "gpupool.io/allocation-id": "j7.2",
            "gpupool.io/job-id": "j7",
            "gpupool.io/placement": "gpu-07:0,1",
        },
    },
    "spec": {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 3600,
        "activeDeadlineSeconds": 3600,
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/managed-by": "gpupool",
                    "gpupool.io/allocation": "j7.2",
                    "gpupool.io/job": "j7",
                    "gpupool.io/cluster": "sejong",
                    "gpupool.io/worker": "0",
                }
            },
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"kubernetes.io/hostname": "gpu-07"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [
                    {
                        "name": "job",
                        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "train.py"],
                        "workingDir": "/work",
                        "env": [
                            {"name": "GPUPOOL_ALLOCATION_ID", "value": "j7.2"},
                            {"name": "GPUPOOL_GPUS", "value": "2"},
                            {"name": "GPUPOOL_JOB_ID", "value": "j7"},
                            {"name": "GPUPOOL_NODE", "value": "gpu-07"},
                            {"name": "GPUPOOL_PLACEMENT", "value": "gpu-07:0,1"},
                            {"name": "GPUPOOL_WORKERS", "value": "1"},
                            {"name": "GPUPOOL_WORKER_INDEX", "value": "0"},
                            {"name": "WANDB_MODE", "value": "offline"},
                        ],
                        "resources": {"limits": {"nvidia.com/gpu": "2"}},
                    }
                ],
            },
        },
    },
}


def test_a_placement_is_posted_as_this_exact_job(tmp_path: Path) -> None:
    ex, rec = make(tmp_path)
    ex.launch(launch())
    ex.launch(launch())  # idempotent
    step(ex)
    (post,) = [c for c in rec.calls if c[0] == "POST"]
    assert post[1] == "/apis/batch/v1/namespaces/gpupool/jobs"
    assert post[3] == EXPECTED_BODY


def test_a_gang_is_one_job_per_node_and_a_node_outside_the_cluster_fails(tmp_path: Path) -> None:
    gang = (("gpu-07", (0, 1, 2, 3)), ("gpu-08", (0, 1)))
    manifests = job_manifests(launch("j8.1", gang), "sejong", NODES, KubernetesOptions())
    assert isinstance(manifests, list) and len(manifests) == 2
    limits = [m["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] for m in manifests]
    assert limits == [{"nvidia.com/gpu": "4"}, {"nvidia.com/gpu": "2"}]
    selectors = [m["spec"]["template"]["spec"]["nodeSelector"] for m in manifests]
    assert selectors == [{"kubernetes.io/hostname": "gpu-07"}, {"kubernetes.io/hostname": "gpu-08"}]
    ex, _ = make(tmp_path)
    ex.launch(launch("j9.1", (("gpu-99", (0,)),)))
    (e,) = ex.poll()
    assert isinstance(e, AllocationFailed) and "not a node of Kubernetes cluster sejong" in e.reason


def test_status_becomes_events_and_terminate_deletes_with_the_grace(tmp_path: Path) -> None:
    ex, rec = make(tmp_path)
    ex.launch(launch("j1.1"))
    ex.launch(launch("j2.1"))
    ex.launch(launch("j3.1"))
    step(ex)
    n1, n2, n3 = (job_name(a, 0) for a in ("j1.1", "j2.1", "j3.1"))
    for n in (n1, n2, n3):
        rec.jobs[n]["status"] = {"startTime": "2026-11-27T10:00:00Z", "active": 1}
    assert {e.allocation_id for e in step(ex) if isinstance(e, AllocationStarted)} == {"j1.1", "j2.1", "j3.1"}
    rec.jobs[n1]["status"] = {"startTime": "2026-11-27T10:00:00Z", "succeeded": 1}
    deadline = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
    rec.jobs[n2]["status"] = {"startTime": "2026-11-27T10:00:00Z", "failed": 1, "conditions": [deadline]}
    done = {e.allocation_id: e for e in step(ex)}
    assert isinstance(done["j1.1"], AllocationExited) and done["j1.1"].succeeded
    assert isinstance(done["j2.1"], AllocationExited) and done["j2.1"].cause == "walltime"
    ex.terminate("j3.1", 7.4)
    (e,) = step(ex)
    assert isinstance(e, AllocationExited) and e.cause == "terminated"
    deletes = [c for c in rec.calls if c[0] == "DELETE"]
    assert deletes == [
        (
            "DELETE",
            f"/apis/batch/v1/namespaces/gpupool/jobs/{n3}",
            {"gracePeriodSeconds": ["8"], "propagationPolicy": ["Background"]},
            None,
        )
    ]
    assert ex.allocations() == set()


def test_conflict_is_adoption_refused_credentials_fail_and_server_errors_retry(tmp_path: Path) -> None:
    ex, rec = make(tmp_path)
    path = "/apis/batch/v1/namespaces/gpupool/jobs"
    rec.answer("POST", path, (409, {"kind": "Status", "reason": "AlreadyExists", "message": "exists"}))
    ex.launch(launch("j1.1"))
    step(ex)
    assert ex.allocations() == {"j1.1"} and ex.poll() == []  # already there: adopted
    rec.answer("POST", path, (500, {"kind": "Status", "message": "etcd timeout"}))
    ex.launch(launch("j2.1"))
    assert step(ex) == [] and ex.allocations() == {"j1.1", "j2.1"}  # retried, not failed
    step(ex)
    assert job_name("j2.1", 0) in rec.jobs
    rec.answer("POST", path, (401, {"kind": "Status", "message": "Unauthorized: token has expired"}))
    ex.launch(launch("j3.1"))
    (e,) = step(ex)
    assert isinstance(e, AllocationFailed)
    assert "refused the credentials" in e.reason and "token has expired" in e.reason


def test_a_cluster_without_a_kubeconfig_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load the Kubernetes client configuration"):
        KubernetesExecutor("sejong", NODES, {"kubeconfig": str(tmp_path / "missing")}, start=False)
