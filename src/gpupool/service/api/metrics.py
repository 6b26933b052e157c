"""``/metrics``: Prometheus text exposition of the service's registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gpupool.service.api.caller import RuntimeDep

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}, "description": "metrics"}},
)
def metrics(rt: RuntimeDep) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)
