"""Queue positions (issue 12): each pending job's place in its pool's order, through the API."""

from __future__ import annotations

from typing import Any

from tests.service.conftest import Service

POOL = "H100 in kisti"  # the demo fleet's 24 H100 are in cluster kisti


def _pending(service: Service) -> list[dict[str, Any]]:
    items = service.call("GET", "/v1/jobs", params={"state": "pending"}).json()["items"]
    return sorted(items, key=lambda j: j["queue_position"])


def test_queue_positions_follow_the_cycles_order_across_two_projects(service: Service) -> None:
    # vision may hold 16 H100 (its borrow limit), nlp 8: the 24 H100 are full after three jobs
    running = [service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"]]
    running.append(service.submit("minjun.kim", project="vision", gpus=8, models=["H100"]).json()["id"])
    running.append(service.submit("hayoon.choi", project="nlp", gpus=8, models=["H100"]).json()["id"])
    assert service.cycle().starts == 3
    waiting = []
    for user, project in [("minjun.kim", "vision"), ("hayoon.choi", "nlp")] * 2 + [("minjun.kim", "vision")]:
        service.clock.advance(1_000)
        waiting.append(service.submit(user, project=project, gpus=8, models=["H100"]).json()["id"])
    service.cycle()
    pending = _pending(service)
    assert {j["id"] for j in pending} == set(waiting)
    # one pool, places 1..5 with no gap, each with its pool named
    assert [j["queue_position"] for j in pending] == [1, 2, 3, 4, 5]
    assert {j["queue_pool"] for j in pending} == {POOL}
    # ... in the order the cycle looks at them (the core's fair-share order)
    sched = service.runtime.loop.scheduler
    order = [j.spec.id for j in sched.policy_order(service.clock())]
    assert [j["id"] for j in pending] == order
    # the one-job view, explain and the list agree
    first = pending[0]
    got = service.call("GET", f"/v1/jobs/{first['id']}").json()
    assert (got["queue_position"], got["queue_pool"]) == (1, POOL)
    why = service.call("GET", f"/v1/jobs/{first['id']}/explain").json()
    assert (why["queue_position"], why["queue_pool"]) == (1, POOL)
    # a vision job ends: the first vision job in the queue starts (nlp is at its limit), and
    # the places of those behind it close up
    first_vision = next(j["id"] for j in pending if j["project"].endswith("/vision"))
    service.executor.finish(f"{running[0]}.1")
    service.clock.advance(1_000)
    report = service.cycle()
    assert report.starts == 1
    assert service.call("GET", f"/v1/jobs/{first_vision}").json()["state"] == "running"
    assert service.call("GET", f"/v1/jobs/{first_vision}").json()["queue_position"] is None
    after = _pending(service)
    assert [j["queue_position"] for j in after] == [1, 2, 3, 4]
    assert [j["id"] for j in after] == [j.spec.id for j in sched.policy_order(service.clock())]
    assert [j["id"] for j in after] == [j["id"] for j in pending if j["id"] != first_vision]
    # a job that is not pending has no place
    done = service.call("GET", f"/v1/jobs/{running[0]}").json()
    assert done["state"] == "completed" and done["queue_position"] is None and done["queue_pool"] is None
