"""A lean entrance for ``POST /v1/jobs``: the one route that must take 1,000 requests a second.

This module owns ``FastSubmit``, an ASGI middleware in front of the FastAPI app. Profiling the
load benchmark showed most of a submission's CPU in the framework (route matching over every
route, dependency solving, exit stacks, a second thread-pool hop to re-validate the answer),
not in the work. So a submission that is plainly well-formed is handled here: the caller from
the directory cache, the body validated by ``JobRequest.model_validate_json``, and the very
same ``jobs.accept_job`` the route calls, in one worker thread.

Anything else goes on to the FastAPI route unchanged, with the body replayed: no or an
unknown token, a token not cached yet (the route reads it and caches it), an expired token
or one without the ``submit`` scope, another content type, a malformed ``Idempotency-Key``,
a body that does not validate. So every error answer,
and every schema in ``/openapi.json``, is the route's own. The problems ``accept_job`` raises
(403, 404, 409, 422) are answered here with the same ``problem_response`` the app's handler
uses, and a 403 among them is audited as the route's would be (``refusals``).
"""

from __future__ import annotations

import re

from anyio import to_thread
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpupool.service.api import problems
from gpupool.service.api.caller import touch
from gpupool.service.api.jobs import accept_job
from gpupool.service.api.rate_limit import AUTHENTICATED
from gpupool.service.auth import Caller
from gpupool.service.auth import Scope as TokenScope
from gpupool.service.job_request import JobRequest
from gpupool.service.refusals import Refusal
from gpupool.service.runtime import Runtime

PATH = "/v1/jobs"
#: what the route's ``Idempotency-Key`` header parameter accepts
KEY = re.compile(r"[\x21-\x7e]{1,255}")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class FastSubmit:
    """Handle well-formed ``POST /v1/jobs`` requests directly; pass everything else on."""

    def __init__(self, app: ASGIApp, runtime: Runtime, enabled: bool = True) -> None:
        self.app = app
        self.runtime = runtime
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        token = key = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"authorization" and token is None:
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    token = ""
            elif name == b"content-type" and not json_body:
                json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")
        caller = None
        if token and len(token) <= 512:
            _, caller = self.runtime.directory.cached_caller(token)
        if caller is not None and (caller.expired(self.runtime.clock()) or not caller.has(TokenScope.SUBMIT)):
            caller = None  # the route answers (401 or 403) and audits it
        if caller is None or not json_body or (key is not None and not KEY.fullmatch(key)):
            await self.app(scope, receive, send)
            return
        scope[AUTHENTICATED] = True  # the rate limiter's proof the token is valid
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            req = JobRequest.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(messages, receive), send)  # the route's 422
            return
        try:
            status, out = await to_thread.run_sync(self._accept, caller, req, key)
        except problems.ApiProblem as p:
            if p.status in (401, 403):
                client = scope.get("client")
                host = client[0] if client else ""
                refusal = Refusal(caller.name, "POST", PATH, PATH, p.status, p.detail, host)
                await to_thread.run_sync(self.runtime.refusals.record, refusal)
            answer = problems.problem_response(p.status, p.detail, p.kind, p.errors, p.headers)
            await answer(scope, receive, send)
            return
        headers = [*_JSON_HEADERS, (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    def _accept(self, caller: Caller, req: JobRequest, key: str | None) -> tuple[int, bytes]:
        rt = self.runtime
        now = rt.clock()
        if caller.token_id is not None and rt.directory.touch(caller.token_id, now):
            touch(rt, caller.token_id, now)
        return accept_job(rt, caller, req, key)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = iter(messages)

    async def replayed() -> Message:
        return next(pending, None) or await receive()

    return replayed
