"""``/v1/health`` (the process answers) and ``/v1/ready`` (database reachable, loop running)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from gpupool.service.api.caller import RuntimeDep
from gpupool.service.api.problems import ApiProblem, responses

router = APIRouter(prefix="/v1", tags=["health"])
#: a loop silent for this many cycle intervals is not ready
STALE_CYCLES = 10


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: bool
    loop: bool
    last_cycle_ms: int | None


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses=responses(503), summary="Readiness")
def ready(rt: RuntimeDep) -> Ready:
    db = rt.database_ok()
    loop = rt.loop.alive if rt.run_loop else True
    last = rt.loop.last_cycle_ms
    if rt.run_loop and last is not None:
        loop = loop and rt.clock() - last <= STALE_CYCLES * max(rt.settings.cycle_interval_ms, 1000)
    if not (db and loop):
        raise ApiProblem(
            503,
            f"not ready: database {'ok' if db else 'unreachable'}, loop {'ok' if loop else 'stalled'}",
            kind="not-ready",
            headers={"Retry-After": str(rt.settings.retry_after_s)},
        )
    return Ready(status="ready", database=db, loop=loop, last_cycle_ms=last)
