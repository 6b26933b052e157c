"""A live event log replayed through a fresh core gives the very decisions the live loop made.

The core is one pure function of its events (docs/adr/0001-core-and-twin.md): the same
events and seed give the same decisions, in the simulator and live, so a test replays a live
event log and compares the decision streams. The
scenario goes through the API and the executor (submissions of several projects and sizes,
finishes, a failure, cancels of a pending and of a running job, a drain); then a
``Scheduler`` built from the same fleet and tenancy is fed the logged events at their logged
times, call by call, and must return the logged decisions.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select

from gpupool.core.decisions import Start, Stop
from gpupool.core.events import JobCancelled, JobFinished, JobSubmitted, NodeDrained
from gpupool.core.scheduler import Scheduler
from gpupool.service.db import EventLogRow
from gpupool.service.event_codec import decode, encode
from gpupool.service.replay import logged_cycles, replay
from gpupool.service.tenant_tree import active_allocations, build_tenancy, tenant_rows
from tests.service.conftest import Service

MIN = 60_000


def _scenario(service: Service) -> None:
    owners: dict[str, str] = {}  # job id -> the user who submitted it

    def submit(user: str, project: str, gpus: int, **more: object) -> str:
        r = service.submit(user, project=project, gpus=gpus, walltime_s=7200, **more)
        assert r.status_code == 201, r.text
        owners[r.json()["id"]] = user
        return str(r.json()["id"])

    ids = [
        submit("minjun.kim", "vision", 8, models=["H100"]),
        submit("minjun.kim", "vision", 16, models=["H100"]),
        submit("jungmin.park", "climate", 8, models=["H100"]),
        submit("jungmin.park", "climate", 4, models=["H200"]),
        submit("minjun.kim", "vision", 8, models=["H100"]),
        submit("jungmin.park", "climate", 8, models=["H100"]),
    ]
    service.cycle()
    service.clock.advance(5 * MIN)
    running = [launch.allocation_id for launch in service.executor.launches]
    service.executor.finish(running[0], 0)
    assert service.call("POST", f"/v1/jobs/{ids[-1]}/cancel", "jungmin.park").status_code == 202  # pending
    service.cycle()
    service.clock.advance(7 * MIN)
    service.executor.finish(running[1], 3)  # a failure
    submit("minjun.kim", "vision", 2)
    service.cycle()
    service.clock.advance(MIN)
    node = service.executor.launches[-1].placement[0][0]
    assert service.call("POST", f"/v1/fleet/nodes/{node}/drain", json={"reason": "test"}).status_code == 200
    victim = sorted(service.executor.live)[0].split(".")[0]
    assert service.call("POST", f"/v1/jobs/{victim}/cancel", owners[victim]).status_code == 202  # running
    service.cycle()
    service.clock.advance(30 * MIN)
    for aid in sorted(service.executor.live):
        service.executor.finish(aid, 0)
    service.cycle()
    service.clock.advance(MIN)
    service.cycle()


def test_the_live_log_replays_to_the_same_decisions(service: Service) -> None:
    start = service.clock()
    with service.runtime.factory() as s:
        tenancy = build_tenancy(tenant_rows(s), active_allocations(s, start), service.runtime.fleet)
    _scenario(service)
    with service.runtime.factory() as s:
        cycles = logged_cycles(s)
        logged_rows = s.scalar(
            select(func.count()).select_from(EventLogRow).where(EventLogRow.kind != "executor")
        )
    events = [e for c in cycles for e in c.events]
    decisions = [d for c in cycles for d in c.decisions]
    # nothing left out (a rebuild's restore point is one row)
    assert sum(len(c.events) + len(c.decisions) + (c.restore is not None) for c in cycles) == logged_rows
    kinds = {type(e) for e in events}
    assert {JobSubmitted, JobFinished, JobCancelled, NodeDrained} <= kinds
    assert sum(isinstance(d, Start) for d in decisions) >= 4
    assert any(isinstance(d, Stop) for d in decisions)  # the running job's cancel
    fresh = Scheduler(service.runtime.fleet, tenancy, service.runtime.config)
    again = replay(fresh, cycles)
    assert [c.decisions for c in cycles] == again
    fresh.validate()


def test_every_event_and_decision_survives_the_log() -> None:
    from gpupool.core.decisions import Explain, Preempt, Reason, Reject, Reserve
    from gpupool.core.events import NodeDown, NodeUp, Tick
    from gpupool.core.fleet import Level
    from gpupool.core.job import JobSpec, TaskGroup

    spec = JobSpec(
        "j1", "a/b", 8, 5, user="u", groups=(TaskGroup(2, 4),), models=("H100", "H200"), stacks=("cuda",),
        topology=Level.NVLINK, walltime_ms=9, priority_class="high", checkpoint_interval_ms=3,
        kind="inference", workload_class="w", duration_hint_ms=7, clusters=("c",),
    )  # fmt: skip
    items = [
        JobSubmitted(spec), JobCancelled("j1"), JobFinished("j1", "a", "timeout"), NodeDown("n"),
        NodeDrained("n"), NodeUp("n"), Tick(), Start("j1", "a", "c", "H100", (("n", (0, 1)),), True),
        Preempt("j1", "a", Reason.ROUND, "d"), Stop("j1", "a", Reason.CANCELLED),
        Reserve("j1", "c", "H100", 12), Explain("j1", Reason.RESOURCES, "x"),
        Reject("j1", Reason.INVALID, "y"),
    ]  # fmt: skip

    for item in items:
        assert decode(type(item).__name__, json.loads(json.dumps(encode(item)))) == item
