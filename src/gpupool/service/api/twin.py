"""``/v1/twin``: the live pool as the digital twin reads it (ADR 0017).

This module owns ``GET /v1/twin/snapshot``: the fleet with its drains, the tenancy, running
and pending jobs, decayed usage, recent history and (with ``since``) the event log from the
last restore point at or before that time, as ``gpupool.service.twin_snapshot.take`` builds
it. It exposes every tenant's jobs, so only pool admins and viewers read it (403 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from gpupool.service.api.caller import CallerDep, RuntimeDep
from gpupool.service.api.problems import ApiProblem, responses
from gpupool.service.twin_snapshot import take

router = APIRouter(tags=["twin"])
MAX_HISTORY_H = 24 * 30


@router.get(
    "/v1/twin/snapshot",
    responses=responses(401, 403, 422),
    summary="The live pool as the twin's files: fleet, tenants, state, history, event log since a time",
)
async def twin_snapshot(
    caller: CallerDep,
    rt: RuntimeDep,
    since: Annotated[
        int | None, Query(ge=0, description="include the event log from this time (ms) on")
    ] = None,
    history_h: Annotated[
        float, Query(gt=0, le=MAX_HISTORY_H, description="recent history kept, hours")
    ] = 24.0,
) -> dict[str, Any]:
    if not caller.sees_all:
        raise ApiProblem(
            403, "the twin's snapshot shows every tenant: pool admins and viewers only", kind="forbidden"
        )

    def read() -> dict[str, Any]:
        with rt.reader() as s:
            return take(s, rt.fleet, rt.config, rt.clock(), since_ms=since, history_h=history_h)

    return await run_in_threadpool(read)
