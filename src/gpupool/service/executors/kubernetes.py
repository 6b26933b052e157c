"""The Kubernetes executor (first step): a gpupool allocation as batch/v1 Jobs pinned to nodes.

This module owns ``KubernetesExecutor``, the ``Executor`` for clusters with ``backend:
kubernetes``, and ``job_manifests``, which turns a ``Launch`` into Job manifests: one Job per
node of the placement (worker ``k``), each with

- ``nodeSelector`` ``kubernetes.io/hostname: <node>`` (the label is an option) so the pod runs
  exactly where the core placed it, and ``resources.limits`` ``nvidia.com/gpu: <n>``;
- tolerations for the GPU taint (``nvidia.com/gpu`` Exists/NoSchedule by default);
- labels ``app.kubernetes.io/managed-by: gpupool``, ``gpupool.io/allocation``, ``gpupool.io/job``,
  ``gpupool.io/cluster``, ``gpupool.io/worker`` and the exact ids in annotations;
- ``backoffLimit: 0`` and ``restartPolicy: Never`` (gpupool requeues, Kubernetes must not
  retry elsewhere), ``activeDeadlineSeconds`` = the walltime, ``ttlSecondsAfterFinished``.

Submission uses the official ``kubernetes`` client (``BatchV1Api``/``CoreV1Api``). Like the
Slurm executor, one worker thread (``worker.ExecutorWorker``) does every API call;
``launch``/``terminate`` only queue. A 409 on create is an adoption (idempotent by allocation
id); 401/403 and 4xx fail the job with the API server's message; 5xx and connection errors are
retried for ``submit_retry_s`` under the worker's back-off rule.
What has and has not run against a real API server is in docs/kubernetes.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpupool.service.container_image import parse_image
from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    ExecutorEvent,
    Launch,
)
from gpupool.service.executors.worker import DEFAULT_BACKOFF, Backoff, BackoffRule, ExecutorWorker

__all__ = ["KubernetesExecutor", "KubernetesOptions", "job_manifests"]

log = logging.getLogger("gpupool.executors.kubernetes")
MANAGED = "app.kubernetes.io/managed-by"
LABEL_ALLOC = "gpupool.io/allocation"


class KubernetesOptions(BaseModel):
    """A Kubernetes cluster's ``options:`` in the fleet file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = "default"
    #: kubeconfig file and context; ``in_cluster`` uses the pod's service account instead
    kubeconfig: str = ""
    context: str = ""
    in_cluster: bool = False
    #: the container image a job's argv runs in
    image: str = "ubuntu:24.04"
    image_pull_policy: str = "IfNotPresent"
    gpu_resource: str = "nvidia.com/gpu"
    node_label: str = "kubernetes.io/hostname"
    #: taint keys to tolerate (Exists, NoSchedule), comma-separated
    tolerations: str = "nvidia.com/gpu"
    service_account: str = ""
    priority_class: str = ""
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    poll_interval_s: float = Field(default=2.0, gt=0)
    submit_retry_s: float = Field(default=600.0, ge=0)

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> KubernetesOptions:
        try:
            return cls.model_validate(dict(options))
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise ValueError(f"kubernetes options: {problems}") from None


_DNS = re.compile(r"[^a-z0-9-]+")


def _label_value(text: str) -> str:
    """A label value (63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    v = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:63].strip("._-")
    return v or "x"


def job_name(allocation_id: str, worker: int) -> str:
    """A DNS-1123 name, unique per allocation: a readable part plus a hash of the exact id."""
    digest = hashlib.sha256(allocation_id.encode()).hexdigest()[:8]
    readable = _DNS.sub("-", allocation_id.lower()).strip("-")[:40]
    return f"gpupool-{readable}-{digest}-{worker}"


def _pod_image(launch: Launch, options: KubernetesOptions) -> str:
    """The job's own image (a registry reference), else the cluster's default (ADR 0013)."""
    return launch.image if launch.image is not None else options.image


def job_manifests(
    launch: Launch, cluster: str, nodes: Mapping[str, str], options: KubernetesOptions
) -> list[dict[str, Any]] | str:
    """The Job manifests of ``launch`` (one per node), or why there can be none."""
    if not launch.argv:
        return "empty command line"
    if not launch.placement:
        return "an empty placement"
    if launch.image is not None and parse_image(launch.image).local:
        return f"a Kubernetes pod cannot run the image file {launch.image!r}: give a registry reference"
    for node, _ in launch.placement:
        if node not in nodes:
            return f"node {node!r} is not a node of Kubernetes cluster {cluster}"
    placement = ";".join(f"{n}:{','.join(map(str, ids))}" for n, ids in launch.placement)
    gpus = sum(len(ids) for _, ids in launch.placement)
    tolerations = [
        {"key": k.strip(), "operator": "Exists", "effect": "NoSchedule"}
        for k in options.tolerations.split(",")
        if k.strip()
    ]
    out = []
    for k, (node, ids) in enumerate(launch.placement):
        labels = {
            MANAGED: "gpupool",
            LABEL_ALLOC: _label_value(launch.allocation_id),
            "gpupool.io/job": _label_value(launch.job_id),
            "gpupool.io/cluster": _label_value(cluster),
            "gpupool.io/worker": str(k),
        }
        env = {**launch.env}
        env.update(
            {
                "GPUPOOL_JOB_ID": launch.job_id,
                "GPUPOOL_ALLOCATION_ID": launch.allocation_id,
                "GPUPOOL_NODE": node,
                "GPUPOOL_GPUS": str(gpus),
                "GPUPOOL_PLACEMENT": placement,
                "GPUPOOL_WORKER_INDEX": str(k),
                "GPUPOOL_WORKERS": str(len(launch.placement)),
            }
        )
        container: dict[str, Any] = {
            "name": "job",
            "image": _pod_image(launch, options),
            "imagePullPolicy": options.image_pull_policy,
            "command": list(launch.argv),
            "env": [{"name": n, "value": v} for n, v in sorted(env.items())],
            "resources": {"limits": {options.gpu_resource: str(len(ids))}} if ids else {},
        }
        if launch.cwd is not None:
            container["workingDir"] = str(launch.cwd)
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            "nodeSelector": {options.node_label: node},
            "tolerations": tolerations,
            "containers": [container],
        }
        if options.service_account:
            pod["serviceAccountName"] = options.service_account
        if options.priority_class:
            pod["priorityClassName"] = options.priority_class
        spec: dict[str, Any] = {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        }
        if launch.walltime_s > 0:
            spec["activeDeadlineSeconds"] = math.ceil(launch.walltime_s)
        out.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": job_name(launch.allocation_id, k),
                    "namespace": options.namespace,
                    "labels": labels,
                    "annotations": {
                        "gpupool.io/allocation-id": launch.allocation_id,
                        "gpupool.io/job-id": launch.job_id,
                        "gpupool.io/placement": placement,
                    },
                },
                "spec": spec,
            }
        )
    return out


@dataclass(slots=True)
class _Alloc:
    aid: str
    manifests: list[dict[str, Any]]
    phase: str = "queued"  # queued, submitted, done
    queued_at: float = 0.0
    started: bool = False
    names: list[str] = field(default_factory=list)


def _api_error(e: Exception) -> tuple[int, str]:
    """(HTTP status or 0, the API server's message) of a client exception."""
    status = int(getattr(e, "status", 0) or 0)
    body = getattr(e, "body", None)
    msg = str(getattr(e, "reason", "") or e)
    if body:
        try:
            msg = str(json.loads(body).get("message", msg))
        except (ValueError, AttributeError):
            msg = str(body)[:300]
    return status, msg


class KubernetesExecutor:
    """Runs allocations as Kubernetes Jobs; see the module docstring.

    ``api_client`` is a ``kubernetes.client.ApiClient`` (tests pass one with a recorded
    transport); by default it comes from the kubeconfig or the in-cluster service account.
    """

    backend = "kubernetes"

    def __init__(
        self,
        cluster: str,
        nodes: Mapping[str, str],
        options: KubernetesOptions | Mapping[str, str] | None = None,
        *,
        api_client: Any = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 0.05,
        start: bool = True,
        backoff: BackoffRule = DEFAULT_BACKOFF,
    ) -> None:
        from kubernetes import client as k8s

        self.cluster = cluster
        self.nodes = dict(nodes)
        self.options = (
            options if isinstance(options, KubernetesOptions) else KubernetesOptions.parse(options or {})
        )
        if api_client is None:
            api_client = self._connect()
        # Typed as Any: the client's pydantic signatures want model objects, and it accepts
        # the plain manifests (which are what the recorded-contract tests compare).
        self._batch: Any = k8s.BatchV1Api(api_client)
        self._core: Any = k8s.CoreV1Api(api_client)
        self._clock = clock
        self._lock = threading.Lock()
        self._allocs: dict[str, _Alloc] = {}
        self._seen: set[str] = set()
        self._events: list[ExecutorEvent] = []
        self._submits: deque[str] = deque()
        self._deletes: deque[tuple[str, float]] = deque()
        self._next_scan = 0.0
        self._retry_at = 0.0
        #: Creations the API server did not answer wait under the worker's one back-off rule.
        self._submit_backoff = Backoff(backoff)
        # Reconcile after a failed round: list the Jobs again before anything else.
        self._worker = ExecutorWorker(
            f"gpupool-k8s-{cluster}", round=self.step, reconcile=self._reconcile, tick_s=tick_s,
            backoff=Backoff(backoff), log=log,
        )  # fmt: skip
        self._worker.start(thread=start)

    def _connect(self) -> Any:
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        config: Any = k8s_config
        try:
            if self.options.in_cluster:
                config.load_incluster_config()
                return k8s.ApiClient()
            return config.new_client_from_config(
                config_file=self.options.kubeconfig or None, context=self.options.context or None
            )
        except Exception as e:  # the client raises its own ConfigException and OSErrors
            raise ValueError(f"cannot load the Kubernetes client configuration: {e}") from None

    # -- the protocol -------------------------------------------------------------------

    def launch(self, launch: Launch) -> None:
        aid = launch.allocation_id
        with self._lock:
            if aid in self._seen:
                return
            self._seen.add(aid)
        manifests = job_manifests(launch, self.cluster, self.nodes, self.options)
        with self._lock:
            if isinstance(manifests, str):
                self._events.append(AllocationFailed(aid, self._now_ms(), manifests))
                return
            names = [m["metadata"]["name"] for m in manifests]
            self._allocs[aid] = _Alloc(aid, manifests, queued_at=time.monotonic(), names=names)
            self._submits.append(aid)
            self._worker.wake()

    def terminate(self, allocation_id: str, grace_s: float) -> None:
        with self._lock:
            a = self._allocs.get(allocation_id)
            if a is None or a.phase == "done":
                return
            self._deletes.append((allocation_id, grace_s))
            self._worker.wake()

    def poll(self) -> list[ExecutorEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def allocations(self) -> set[str]:
        with self._lock:
            return {aid for aid, a in self._allocs.items() if a.phase != "done"}

    def close(self) -> None:
        self._worker.stop(timeout_s=30)

    def step(self) -> None:
        """One round of the worker (tests drive an executor built with ``start=False``)."""
        now = time.monotonic()
        self._work_submits(now)
        self._work_deletes()
        if now >= self._next_scan:
            self._next_scan = now + self.options.poll_interval_s
            self._scan()

    # -- the worker ---------------------------------------------------------------------

    def _reconcile(self) -> None:
        """List the Jobs now (the next round lists whatever the poll interval says)."""
        self._next_scan = time.monotonic() + self.options.poll_interval_s
        self._scan()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _done(self, a: _Alloc, event: ExecutorEvent | None) -> None:
        with self._lock:
            a.phase = "done"
            self._allocs.pop(a.aid, None)
            if event is not None:
                self._events.append(event)

    def _work_submits(self, now: float) -> None:
        if now < self._retry_at:
            return
        while True:
            with self._lock:
                if not self._submits:
                    return
                a = self._allocs.get(self._submits[0])
                if a is None or a.phase != "queued":
                    self._submits.popleft()
                    continue
            for m in a.manifests:
                try:
                    self._batch.create_namespaced_job(self.options.namespace, m)
                except Exception as e:
                    status, msg = _api_error(e)
                    if status == 409:
                        continue  # created by an earlier try or an earlier executor: adopt it
                    if (status == 0 or status >= 500 or status == 429) and (
                        time.monotonic() - a.queued_at < self.options.submit_retry_s
                    ):
                        delay = self._submit_backoff.failed()
                        log.warning(
                            "kubernetes %s: creating %s failed, again in %.1f s: %s",
                            self.cluster,
                            a.aid,
                            delay,
                            msg,
                        )
                        self._retry_at = time.monotonic() + delay
                        return
                    with self._lock:
                        self._submits.popleft()
                    why = "the API server refused the credentials" if status in (401, 403) else "refused"
                    self._done(
                        a, AllocationFailed(a.aid, self._now_ms(), f"Kubernetes {why}: HTTP {status} {msg}")
                    )
                    self._delete_all(a, 0)
                    break
            else:
                self._submit_backoff.succeeded()
                with self._lock:
                    self._submits.popleft()
                    a.phase = "submitted"
                log.info("kubernetes %s: allocation %s is Jobs %s", self.cluster, a.aid, ", ".join(a.names))

    def _delete_all(self, a: _Alloc, grace_s: float) -> bool:
        ok = True
        for name in a.names:
            try:
                self._batch.delete_namespaced_job(
                    name,
                    self.options.namespace,
                    grace_period_seconds=max(0, math.ceil(grace_s)),
                    propagation_policy="Background",
                )
            except Exception as e:
                status, msg = _api_error(e)
                if status != 404:
                    log.warning("kubernetes %s: deleting %s failed: %s", self.cluster, name, msg)
                    ok = False
        return ok

    def _work_deletes(self) -> None:
        while True:
            with self._lock:
                if not self._deletes:
                    return
                aid, grace = self._deletes[0]
                a = self._allocs.get(aid)
            if a is None or a.phase == "done":
                with self._lock:
                    self._deletes.popleft()
                continue
            if a.phase == "queued":
                with self._lock:
                    self._deletes.popleft()
                self._done(a, None)  # never created: nothing to delete, nothing to report
                continue
            if not self._delete_all(a, grace):
                return  # retried next round
            with self._lock:
                self._deletes.popleft()
            self._done(a, AllocationExited(aid, self._now_ms(), None, 15, "terminated"))

    def _scan(self) -> None:
        with self._lock:
            watched = [a for a in self._allocs.values() if a.phase == "submitted"]
        if not watched:
            return
        try:
            listed = self._batch.list_namespaced_job(
                self.options.namespace, label_selector=f"{MANAGED}=gpupool"
            )
        except Exception as e:
            log.warning("kubernetes %s: cannot list jobs: %s", self.cluster, _api_error(e)[1])
            return
        by_name = {j.metadata.name: j for j in listed.items or []}
        for a in watched:
            jobs = [by_name.get(n) for n in a.names]
            if any(j is None for j in jobs):
                continue  # not listed (yet, or deleted by hand): look again next round
            statuses = [j.status for j in jobs if j is not None]
            if not a.started and any(s is not None and s.start_time is not None for s in statuses):
                a.started = True
                with self._lock:
                    self._events.append(AllocationStarted(a.aid, self._now_ms()))
            failed = [
                (n, s)
                for n, s in zip(a.names, statuses, strict=True)
                if s is not None and (s.failed or 0) > 0
            ]
            if failed:
                name, st = failed[0]
                reasons = [c.reason for c in (st.conditions or []) if c.type == "Failed" and c.reason]
                if "DeadlineExceeded" in reasons:
                    event: ExecutorEvent = AllocationExited(a.aid, self._now_ms(), None, 9, "walltime")
                else:
                    code = self._exit_code(name)
                    event = AllocationExited(a.aid, self._now_ms(), code, None if code is not None else 9)
                if len(a.names) > 1:
                    self._delete_all(a, 0)  # the other workers of a failed gang must not go on
                self._done(a, event)
            elif all(s is not None and (s.succeeded or 0) > 0 for s in statuses):
                self._done(a, AllocationExited(a.aid, self._now_ms(), 0))

    def _exit_code(self, job: str) -> int | None:
        try:
            pods = self._core.list_namespaced_pod(self.options.namespace, label_selector=f"job-name={job}")
        except Exception:
            return None
        for p in pods.items or []:
            for cs in (p.status.container_statuses or []) if p.status else []:
                term = cs.state.terminated if cs.state else None
                if term is not None and term.exit_code is not None:
                    return int(term.exit_code)
        return None
