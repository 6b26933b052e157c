"""Never-startable jobs are refused at admission, naming the limit, in the core and the twin.

The demo's case: on the demo fleet (24 H100) and tenants, ``academia/snu/vision`` may hold
at most 16 accelerators of any model (borrow limit ``"*": 16`` over a ``"*"`` guarantee of
0), so its 24-GPU ``all-h100`` job can never start. It is rejected at submission with the
reason code ``over-limit`` and the limit, and the project's next job is not held up.
"""

from __future__ import annotations

from gpupool.core.decisions import Reason, Reject, Start
from gpupool.core.events import JobSubmitted
from gpupool.core.job import JobSpec
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.fleetfile.fleet_file import load_fleet
from gpupool.fleetfile.tenants_file import load_tenants
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import fleet, job, tenants

VISION = "academia/snu/vision"
WHY = "never startable: 24 H100 exceed academia/snu/vision's guarantee 0 + borrow limit 16 of any model"


def demo() -> Scheduler:
    f = load_fleet("demo")
    return Scheduler(f, load_tenants("demo", f), SchedulerConfig(policy="fairshare"))


def test_the_demos_all_h100_job_is_rejected_with_the_limit_and_the_students_job_starts() -> None:
    s = demo()
    big = JobSpec(id="all-h100", project=VISION, gpus=24, models=("H100",), submit_ms=0)
    student = JobSpec(id="student", project=VISION, gpus=8, models=("H100",), submit_ms=0)
    assert s.refusal(big) == (Reason.OVER_LIMIT, WHY)
    assert s.refusal(student) is None
    out = s.handle([JobSubmitted(big), JobSubmitted(student)], 0)
    assert Reject("all-h100", Reason.OVER_LIMIT, WHY) in out
    assert [d.job_id for d in out if isinstance(d, Start)] == ["student"]
    assert s.job("all-h100") is None and s.pending_count == 0


def test_a_pool_the_limit_rules_out_is_no_candidate_while_another_model_still_is() -> None:
    # a per-model limit: 12 H100 may never run (guarantee 4 + borrow 4), any other model may
    f = fleet(racks=1, nodes_per_rack=2)
    t = tenants("p", p={"guaranteed": {"H100": 4}, "borrow_limit": {"H100": 4}})
    s = Scheduler(f, t)
    assert s.refusal(job("a", 12)) == (
        Reason.OVER_LIMIT,
        "never startable: 12 H100 exceed sector/p's guarantee 4 + borrow limit 4",
    )
    assert s.refusal(job("b", 8)) is None


def test_the_twin_counts_the_demos_job_as_unschedulable_with_the_reason() -> None:
    f = load_fleet("demo")
    jobs = [
        WorkloadJob("all-h100", 0, 600_000, 24, VISION, models=("H100",)),
        WorkloadJob("student", 1_000, 600_000, 8, VISION, models=("H100",)),
    ]
    r = simulate(f, load_tenants("demo", f), jobs, SimConfig(SchedulerConfig(policy="fairshare")))
    by = {j.id: j for j in r.jobs}
    assert by["all-h100"].state == "unschedulable" and by["all-h100"].reason == f"over-limit: {WHY}"
    assert by["student"].state == "finished" and by["student"].first_start_ms == 1_000
