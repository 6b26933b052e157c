"""A stand-in for the /v1 API behind ``httpx.MockTransport``: records every request it gets.

It answers the way ADR 0002 says the server does (problem+json errors, 201 then 200 for a
repeated idempotency key, cursor pages), enough to test the client's side of each call. The
end-to-end tests in ``test_live.py`` run the client against the real service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

TOKEN = "gp_test_token"
ESTIMATED_START_MS = 1_796_117_400_000  # 2026-12-01T09:30:00Z


@dataclass
class FakeServer:
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def body(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/v1/health":
            return httpx.Response(200, json={"status": "ok"})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return problem(401, "Unauthorized", "missing or unknown token")
        if path == "/v1/users/me":
            return httpx.Response(
                200, json={"name": "김민준", "display_name": "김민준", "role": "user", "memberships": []}
            )
        if path == "/v1/jobs" and request.method == "POST":
            return self.submit(request)
        if path == "/v1/jobs":
            return self.page(request)
        parts = path.split("/")  # ["", "v1", "jobs", id, verb?]
        if len(parts) >= 4 and parts[2] == "jobs":
            job = self.jobs.get(parts[3])
            if job is None:
                return problem(404, "Not Found", f"no job {parts[3]}")
            verb = parts[4] if len(parts) > 4 else ""
            if verb == "explain":
                return httpx.Response(
                    200,
                    json={
                        "job_id": job["id"],
                        "state": job["state"],
                        "reason": job["reason"],
                        "detail": "8 H100 free of 16 asked",
                        "estimated_start_ms": ESTIMATED_START_MS,
                        "over_budget": False,
                        "budget": "",
                        "queue_position": job["queue_position"],
                        "queue_pool": job["queue_pool"],
                    },
                )
            if verb == "cancel":
                if job["state"] == "finished":
                    return problem(409, "Conflict", "the job has finished")
                job["state"] = "cancelled"
                return httpx.Response(202, json=job)
            if verb == "logs":
                stream = request.url.params.get("stream", "stdout")
                return httpx.Response(200, text=f"{stream} of {job['id']}\n안녕\n")
            return httpx.Response(200, json=job)
        if path == "/v1/usage":
            return httpx.Response(
                200,
                json={
                    "by": request.url.params.get("by"),
                    "gpu_hours": 12.5,
                    "effective_gpu_hours": 14.1,
                    "items": [
                        {
                            "key": "학계/서울대",
                            "gpu_hours": 12.5,
                            "effective_gpu_hours": 14.1,
                            "allocations": 3,
                        }
                    ],
                },
            )
        return problem(404, "Not Found", path)

    def submit(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("Idempotency-Key", "")
        if key in self.keys:
            return httpx.Response(200, json=self.jobs[self.keys[key]])
        spec = json.loads(request.content)
        errors = []
        if spec.get("gpus", 0) < 1:
            errors.append({"field": "gpus", "message": "must be >= 1"})
        if spec.get("project") == "nowhere":
            errors.append({"field": "project", "message": "unknown project 'nowhere'"})
        if errors:
            return problem(422, "Unprocessable Content", "the job request is invalid", errors=errors)
        job_id = str(len(self.jobs) + 1)
        self.jobs[job_id] = {
            "id": job_id,
            "name": spec.get("name", ""),
            "project": spec["project"],
            "user": "김민준",
            "state": "pending",
            "gpus": spec["gpus"],
            "models": spec.get("models", []),
            "reason": "resources",
            "estimated_start_ms": ESTIMATED_START_MS,
            "command": spec["command"],
            "queue_position": len(self.jobs) + 1,
            "queue_pool": "H100 in kisti",
        }
        self.keys[key] = job_id
        return httpx.Response(201, json=self.jobs[job_id])

    def page(self, request: httpx.Request) -> httpx.Response:
        ids = sorted(self.jobs, key=int)
        if state := request.url.params.get("state"):
            ids = [i for i in ids if self.jobs[i]["state"] == state]
        start = int(request.url.params.get("cursor", "0"))
        limit = int(request.url.params.get("limit", "2"))
        chunk = ids[start : start + limit]
        nxt = str(start + limit) if start + limit < len(ids) else None
        return httpx.Response(200, json={"items": [self.jobs[i] for i in chunk], "next_cursor": nxt})


def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(
            {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
        ),
        headers={"content-type": "application/problem+json"},
    )
