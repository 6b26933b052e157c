"""``/metrics``: Prometheus text exposition of the service's registry.

A token is required unless ``metrics_public`` is set: a pool admin's or a viewer's (both see
the whole pool anyway); a member's token gets 403. The figures name no tenant, but they tell
anyone who can reach the port how busy each cluster is and how many jobs arrive: off by
default, open only where the port is private (a scrape network).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from gpupool.service.api.caller import RuntimeDep, get_caller
from gpupool.service.api.problems import ApiProblem, responses

router = APIRouter(tags=["health"])
_bearer = HTTPBearer(auto_error=False, description="A pool admin's or a viewer's token")


async def _allowed(
    request: Request,
    rt: RuntimeDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if rt.settings.metrics_public:
        return
    caller = await get_caller(request, rt, creds)
    if not caller.sees_all:
        raise ApiProblem(403, "metrics need a pool admin's or a viewer's token", kind="forbidden")


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}, "description": "metrics"}, **responses(401, 403)},
)
def metrics(rt: RuntimeDep, _: Annotated[None, Depends(_allowed)]) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)
