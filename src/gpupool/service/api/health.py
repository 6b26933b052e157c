"""``/v1/health`` (the process answers) and ``/v1/ready`` (database reachable, the pool scheduled).

``/v1/ready`` also says this process's role (ADR 0006): ``leader`` when its loop holds the
leader lease, ``standby`` when it serves the API while another process schedules (or waits to).
It is ready when the database answers and some loop schedules the pool: a leader that renewed
its lease and cycled lately. During a failover every process answers 503 for a few seconds;
a load balancer that should keep standbys in rotation regardless checks ``/v1/health``.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from gpupool.service.api.caller import RuntimeDep
from gpupool.service.api.problems import ApiProblem, responses
from gpupool.service.leader import Role

router = APIRouter(prefix="/v1", tags=["health"])
#: a loop silent for this many cycle intervals is not ready
STALE_CYCLES = 10


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: bool
    #: a loop schedules the pool (this process's or the leader's)
    loop: bool
    last_cycle_ms: int | None
    #: ``leader`` or ``standby``
    role: Role
    #: the ``gpupool serve`` instance whose loop leads (host:pid), when the pool has a lease
    leader: str | None = None
    #: the lease's fencing token (it grows at every take-over)
    epoch: int | None = None


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses=responses(503), summary="Readiness and role")
def ready(rt: RuntimeDep) -> Ready:
    db = rt.database_ok()
    stale_ms = STALE_CYCLES * max(rt.settings.cycle_interval_ms, 1000)
    leader: str | None = None
    epoch: int | None = None
    if rt.scheduler == "inline" and rt.lease is None:
        role = Role.LEADER
        loop = rt.loop.alive if rt.run_loop else True
        last = rt.loop.last_cycle_ms
    else:
        try:
            role, lease = rt.role()
        except Exception:  # the database is away: said below
            role, lease = Role.STANDBY, None
        loop = lease is not None and lease.fresh
        last = lease.last_cycle_ms if lease is not None else None
        if lease is not None and lease.holder:
            leader, epoch = lease.holder, lease.epoch
    if rt.run_loop and last is not None:
        loop = loop and rt.clock() - last <= stale_ms
    if not (db and loop):
        raise ApiProblem(
            503,
            f"not ready: database {'ok' if db else 'unreachable'}, "
            f"loop {'ok' if loop else 'stalled or no leader yet'} (this process: {role.value})",
            kind="not-ready",
            headers={"Retry-After": str(rt.settings.retry_after_s)},
        )
    return Ready(
        status="ready", database=db, loop=loop, last_cycle_ms=last, role=role, leader=leader, epoch=epoch
    )
