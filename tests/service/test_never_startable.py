"""A job that could never start is refused at submission, naming the limit (the demo's case).

On the demo fleet and tenants, ``academia/snu/vision`` guarantees 8 H100 and may borrow at
most 16 accelerators of any model above its ``"*"`` guarantee (0): the demo's sample
24-GPU ``all-h100`` job can never start there. It used to be accepted, stay pending as
"estimated start now" and hold up the project's other work; now the API answers 422 with
the limit, and a job made impossible later (a limit lowered) is rejected with the reason
code and stops blocking others.
"""

from __future__ import annotations

from tests.service.conftest import Service

NEVER = "never startable: 24 H100 exceed academia/snu/vision's guarantee 0 + borrow limit 16 of any model"


def test_the_demos_all_h100_job_is_refused_with_the_limit_and_a_student_job_starts(service: Service) -> None:
    r = service.submit("minjun.kim", project="vision", name="all-h100", gpus=24, models=["H100"])
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["detail"] == NEVER and problem["type"].endswith("over-limit")
    listed = service.call("GET", "/v1/jobs", "minjun.kim").json()["items"]
    assert listed == []  # nothing was written: no job waits forever in the queue
    # the same project's 8-GPU job starts at the first cycle on the idle fleet
    ok = service.submit("seoyeon.lee", project="vision", gpus=8, models=["H100"])
    assert ok.status_code == 201, ok.text
    assert service.cycle().starts == 1
    got = service.call("GET", f"/v1/jobs/{ok.json()['id']}", "seoyeon.lee").json()
    assert got["state"] == "running"


def test_a_job_that_fits_its_limit_is_accepted(service: Service) -> None:
    r = service.submit("minjun.kim", project="vision", gpus=16, models=["H100"])
    assert r.status_code == 201, r.text


def test_a_limit_lowered_later_rejects_the_waiting_job_with_the_reason_and_frees_the_queue(
    service: Service,
) -> None:
    # 16 H100 fit vision's limit but not now: llm (no limit) holds 16 of the 24 H100
    hold = service.submit("jiwoo.han", project="llm", gpus=16, models=["H100"])
    assert hold.status_code == 201, hold.text
    service.cycle()
    big = service.submit("minjun.kim", project="vision", gpus=16, models=["H100"])
    assert big.status_code == 201, big.text
    service.cycle()
    assert service.call("GET", f"/v1/jobs/{big.json()['id']}", "minjun.kim").json()["state"] == "pending"
    # the pool admin lowers vision's borrowing limit to 8: 16 can never start any more
    r = service.call("PATCH", "/v1/tenants/academia/snu/vision", json={"borrow_limit": {"*": 8}})
    assert r.status_code == 200, r.text
    service.cycle()
    got = service.call("GET", f"/v1/jobs/{big.json()['id']}", "minjun.kim").json()
    assert got["state"] == "rejected" and got["reason"] == "over-limit"
    assert got["detail"].endswith(
        "16 H100 exceed academia/snu/vision's guarantee 0 + borrow limit 8 of any model"
    )
    # and a job within the new limit is not held up behind it
    small = service.submit("seoyeon.lee", project="vision", gpus=8, models=["H100"])
    assert small.status_code == 201, small.text
    assert service.cycle().starts == 1
