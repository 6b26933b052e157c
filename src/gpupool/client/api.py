"""The HTTP client of the ``/v1`` API (ADR 0002), used by the CLI and by scripts.

This module owns ``GpupoolClient``: one method per API call, JSON in and out, the token as a
bearer header, ``Idempotency-Key`` on submissions, cursor pages followed by ``iter_jobs``, and
every error response turned into an ``errors.ApiError`` subclass. It returns the server's JSON
as plain dicts and lists: the server's schema (``/openapi.json``) is the one definition of the
shapes, and a client that re-declared them would drift from it.

``transport`` is httpx's seam: tests pass ``httpx.MockTransport`` or an ASGI transport, and
production uses the network. The client holds a connection pool: close it (or use ``with``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from gpupool import __version__
from gpupool.client.config import ClientConfig
from gpupool.client.errors import ConnectionFailed, error_for

__all__ = ["GpupoolClient", "Submitted"]

JSON = dict[str, Any]


class Submitted:
    """The answer to a submission: the job, and whether this call created it (201) or an
    earlier one with the same idempotency key did (200)."""

    __slots__ = ("created", "idempotency_key", "job")

    def __init__(self, job: JSON, created: bool, idempotency_key: str) -> None:
        self.job = job
        self.created = created
        self.idempotency_key = idempotency_key


class GpupoolClient:
    """A client of one gpupool server. ``token`` may be empty for the anonymous endpoints."""

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"gpupool-client/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, transport=transport)

    @classmethod
    def from_config(cls, config: ClientConfig | None = None, **kwargs: Any) -> GpupoolClient:
        """A client for the configured server and token (environment, then config file)."""
        cfg = config if config is not None else ClientConfig.load()
        return cls(cfg.url, cfg.token, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GpupoolClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calls ------------------------------------------------------------------------

    def health(self) -> JSON:
        return self._json("GET", "/v1/health")

    def me(self) -> JSON:
        """The caller's user, roles and memberships (``login`` checks a token with this)."""
        return self._json("GET", "/v1/users/me")

    def oidc_info(self) -> JSON:
        """Whether the server signs people in with OpenID Connect, and its provider's name."""
        return self._json("GET", "/v1/auth/oidc")

    def submit(self, request: Mapping[str, Any], idempotency_key: str | None = None) -> Submitted:
        """Submit a job (``request`` is the body of ``POST /v1/jobs``).

        Retrying with the same ``idempotency_key`` returns the job the first call created, so a
        submission whose answer was lost can be repeated safely; by default a fresh UUID.
        """
        key = idempotency_key or str(uuid.uuid4())
        resp = self._send("POST", "/v1/jobs", json=dict(request), headers={"Idempotency-Key": key})
        return Submitted(_body_json(resp), resp.status_code == 201, key)

    def jobs(
        self,
        *,
        project: str | None = None,
        state: str | None = None,
        user: str | None = None,
        model: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> JSON:
        """One page of jobs: ``{"items": [...], "next_cursor": ...}`` as the server sends it."""
        params = _params(project=project, state=state, user=user, model=model, cursor=cursor, limit=limit)
        return self._json("GET", "/v1/jobs", params=params)

    def iter_jobs(self, *, max_items: int | None = None, **filters: Any) -> Iterator[JSON]:
        """Every job matching ``filters``, page after page (stops after ``max_items``)."""
        cursor: str | None = None
        seen = 0
        while True:
            page = self.jobs(cursor=cursor, **filters)
            for item in page_items(page):
                yield item
                seen += 1
                if max_items is not None and seen >= max_items:
                    return
            cursor = page.get("next_cursor") or None
            if not cursor:
                return

    def job(self, job_id: str) -> JSON:
        return self._json("GET", f"/v1/jobs/{_seg(job_id)}")

    def explain(self, job_id: str) -> JSON:
        """Why a job waits (reason code and detail) and when it will probably start."""
        return self._json("GET", f"/v1/jobs/{_seg(job_id)}/explain")

    def cancel(self, job_id: str) -> JSON:
        return self._json("POST", f"/v1/jobs/{_seg(job_id)}/cancel")

    def logs(
        self, job_id: str, *, stream: str = "stdout", tail: int | None = None, attempt: int | None = None
    ) -> str:
        """The job's log text (``stream``: stdout or stderr; ``tail``: the last lines only;
        ``attempt``: of that run of a preempted job, default the latest)."""
        params = _params(stream=stream, tail=tail, attempt=attempt)
        resp = self._send("GET", f"/v1/jobs/{_seg(job_id)}/logs", params=params)
        if resp.headers.get("content-type", "").startswith("application/json"):
            body = _body_json(resp)
            return str(body.get("text", body.get("content", "")))
        return resp.text

    def usage(
        self,
        *,
        by: str | None = None,
        start: str | None = None,
        end: str | None = None,
        path: str | None = None,
    ) -> JSON:
        """GPU-hours and effective GPU-hours by project, organisation or sector over a range."""
        return self._json("GET", "/v1/usage", params=_params(by=by, start=start, end=end, path=path))

    def fleet(self) -> JSON:
        return self._json("GET", "/v1/fleet")

    def tokens(self) -> list[JSON]:
        """The caller's own tokens (never their secrets)."""
        return page_items(self._json("GET", "/v1/tokens"))

    def create_token(
        self,
        *,
        name: str = "",
        scopes: Sequence[str] | None = None,
        expires_in_s: int | None = None,
        user: str | None = None,
    ) -> JSON:
        """Mint a token for the caller (or, for a pool admin, for ``user``): the answer holds
        its secret, shown this once."""
        body: dict[str, Any] = {"name": name}
        if user is not None:
            body["user"] = user
        if scopes:
            body["scopes"] = list(scopes)
        if expires_in_s is not None:
            body["expires_in"] = expires_in_s
        return self._json("POST", "/v1/tokens", json=body)

    def revoke_token(self, token_id: int) -> None:
        self._send("DELETE", f"/v1/tokens/{int(token_id)}")

    # -- administration: tenants, users, memberships, allocations, nodes, audit -------------

    def tenants(self, *, kind: str | None = None) -> list[JSON]:
        """The sectors, organisations and projects the caller may see."""
        return _items(self._json("GET", "/v1/tenants", params=_params(kind=kind)))

    def tenant(self, path: str) -> JSON:
        return self._json("GET", f"/v1/tenants/{_path(path)}")

    def create_tenant(self, body: Mapping[str, Any]) -> JSON:
        """Add a sector, organisation or project (``body`` is the body of ``POST /v1/tenants``)."""
        return self._json("POST", "/v1/tenants", json=dict(body))

    def update_tenant(self, path: str, changes: Mapping[str, Any]) -> JSON:
        """Change a tenant's name, weight, guarantees, limits, clusters or budget rule."""
        return self._json("PATCH", f"/v1/tenants/{_path(path)}", json=dict(changes))

    def members(self, project: str) -> list[JSON]:
        return _items(self._json("GET", f"/v1/projects/{_path(project)}/members"))

    def add_member(self, project: str, user: str, role: str = "member") -> JSON:
        """Add ``user`` to ``project`` as ``member``, ``lead`` or ``admin`` (or change the role)."""
        return self._json("POST", f"/v1/projects/{_path(project)}/members", json={"user": user, "role": role})

    def remove_member(self, project: str, user: str) -> None:
        self._send("DELETE", f"/v1/projects/{_path(project)}/members/{_seg(user)}")

    def users(self) -> list[JSON]:
        """Every user (pool admins and viewers)."""
        return _items(self._json("GET", "/v1/users"))

    def create_user(self, name: str, *, role: str = "user", display_name: str = "") -> JSON:
        return self._json(
            "POST", "/v1/users", json={"name": name, "role": role, "display_name": display_name}
        )

    def allocations(self, *, project: str | None = None) -> list[JSON]:
        return _items(self._json("GET", "/v1/allocations", params=_params(project=project)))

    def create_allocation(self, body: Mapping[str, Any]) -> JSON:
        """Request (or, as a pool admin, grant) an allocation: the body of ``POST /v1/allocations``."""
        return self._json("POST", "/v1/allocations", json=dict(body))

    def set_allocation_state(self, allocation_id: int, state: str) -> JSON:
        """Approve, activate, reject or expire an allocation (pool admins)."""
        return self._json("PATCH", f"/v1/allocations/{int(allocation_id)}", json={"state": state})

    def nodes(
        self,
        *,
        cluster: str | None = None,
        model: str | None = None,
        state: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> JSON:
        """One page of nodes with their state (up, drained, down) and reason."""
        params = _params(cluster=cluster, model=model, state=state, cursor=cursor, limit=limit)
        return self._json("GET", "/v1/fleet/nodes", params=params)

    def iter_nodes(self, **filters: Any) -> Iterator[JSON]:
        cursor: str | None = None
        while True:
            page = self.nodes(cursor=cursor, **filters)
            yield from page_items(page)
            cursor = page.get("next_cursor") or None
            if not cursor:
                return

    def drain(self, node: str, reason: str = "") -> JSON:
        """Drain a node: its jobs run on, no new one starts there (pool admins)."""
        return self._json("POST", f"/v1/fleet/nodes/{_seg(node)}/drain", json={"reason": reason})

    def undrain(self, node: str, reason: str = "") -> JSON:
        return self._json("POST", f"/v1/fleet/nodes/{_seg(node)}/undrain", json={"reason": reason})

    def audit(
        self, *, action: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> JSON:
        """One page of the audit log, oldest first (pool admins)."""
        return self._json("GET", "/v1/audit", params=_params(action=action, cursor=cursor, limit=limit))

    def iter_audit(self, *, max_items: int | None = None, action: str | None = None) -> Iterator[JSON]:
        cursor: str | None = None
        seen = 0
        while True:
            page = self.audit(action=action, cursor=cursor)
            for item in page_items(page):
                yield item
                seen += 1
                if max_items is not None and seen >= max_items:
                    return
            cursor = page.get("next_cursor") or None
            if not cursor:
                return

    # -- the national programme: calls and applications (ADR 0010) ------------------------

    def calls(self, *, state: str | None = None) -> list[JSON]:
        return _items(self._json("GET", "/v1/calls", params=_params(state=state)))

    def call(self, call_id: int) -> JSON:
        return self._json("GET", f"/v1/calls/{int(call_id)}")

    def create_call(self, body: Mapping[str, Any]) -> JSON:
        """Write a call (a draft; ``body`` is the body of ``POST /v1/calls``)."""
        return self._json("POST", "/v1/calls", json=dict(body))

    def call_step(self, call_id: int, step: str) -> JSON:
        """``open``, ``close`` or ``decide`` a call."""
        if step not in ("open", "close", "decide"):
            raise ValueError(f"a call is opened, closed or decided, not {step!r}")
        return self._json("POST", f"/v1/calls/{int(call_id)}/{step}")

    def add_reviewer(self, call_id: int, user: str) -> JSON:
        return self._json("POST", f"/v1/calls/{int(call_id)}/reviewers", json={"user": user})

    def ranking(self, call_id: int) -> JSON:
        return self._json("GET", f"/v1/calls/{int(call_id)}/ranking")

    def call_report(self, call_id: int) -> JSON:
        return self._json("GET", f"/v1/calls/{int(call_id)}/report")

    def applications(
        self, *, call: int | None = None, project: str | None = None, state: str | None = None
    ) -> list[JSON]:
        params = _params(call=call, project=project, state=state)
        return _items(self._json("GET", "/v1/applications", params=params))

    def application(self, application_id: int) -> JSON:
        return self._json("GET", f"/v1/applications/{int(application_id)}")

    def create_application(self, body: Mapping[str, Any]) -> JSON:
        """Write an application (a draft; ``body`` is the body of ``POST /v1/applications``)."""
        return self._json("POST", "/v1/applications", json=dict(body))

    def application_step(self, application_id: int, step: str, body: Mapping[str, Any] | None = None) -> JSON:
        """``submit``, ``withdraw``, ``reviews``, ``award``, ``decline`` or ``outputs``."""
        if step not in ("submit", "withdraw", "reviews", "award", "decline", "outputs"):
            raise ValueError(f"unknown step {step!r} of an application")
        kwargs: dict[str, Any] = {} if body is None else {"json": dict(body)}
        return self._json("POST", f"/v1/applications/{int(application_id)}/{step}", **kwargs)

    # -- reports ---------------------------------------------------------------------------

    def usage_report(
        self,
        *,
        by: str | None = None,
        every: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> JSON:
        """Usage per time bucket, group and accelerator model (``/v1/reports/usage``)."""
        params = _params(by=by, every=every, **{"from": start, "to": end})
        return self._json("GET", "/v1/reports/usage", params=params)

    def public_report(self, period: str) -> JSON:
        """The public report's figures of a period such as ``2026-Q1`` (``/v1/reports/public``)."""
        return self._json("GET", "/v1/reports/public", params={"period": period})

    # -- advance reservations (ADR 0020) ---------------------------------------------------

    def reservations(self) -> list[JSON]:
        """The advance reservations the caller may see (``/v1/reservations``)."""
        got: list[JSON] = self._send("GET", "/v1/reservations").json()
        return got

    def create_reservation(self, body: JSON) -> JSON:
        """Reserve accelerators for a window (pool admins)."""
        return self._json("POST", "/v1/reservations", json=body)

    def delete_reservation(self, reservation_id: int) -> None:
        self._send("DELETE", f"/v1/reservations/{int(reservation_id)}")

    # -- plumbing -------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        return _body_json(self._send(method, path, **kwargs))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as e:
            raise ConnectionFailed(f"{self.url}: no answer in time ({type(e).__name__})") from e
        except httpx.TransportError as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {e}") from e
        if resp.status_code >= 400:
            try:
                body: Any = resp.json()
            except ValueError:
                body = resp.text
            raise error_for(resp.status_code, body, resp.reason_phrase)
        return resp


def page_items(page: Mapping[str, Any]) -> list[JSON]:
    """The objects of a page, whichever name the server gives the list (``items`` or ``jobs``)."""
    for key in ("items", "jobs", "data"):
        got = page.get(key)
        if isinstance(got, list):
            return got
    return []


def _body_json(resp: httpx.Response) -> JSON:
    if not resp.content:
        return {}
    body = resp.json()
    return body if isinstance(body, dict) else {"items": body}


def _items(body: JSON) -> list[JSON]:
    """A JSON list answer (``_body_json`` wraps it as ``{"items": [...]}``)."""
    got = body.get("items", [])
    return got if isinstance(got, list) else []


def _params(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def _path(path: str) -> str:
    """A tenant path (``academia/snu/vision``), each segment quoted."""
    return "/".join(_seg(p) for p in path.strip("/").split("/"))


def _seg(text: str) -> str:
    """One path segment, quoted: a job id must not be able to reach another route."""
    return quote(text, safe="")
