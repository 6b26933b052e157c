"""Every pending job has a reason and a position after every cycle; estimates follow the policy.

Issue 12: jobs past the cycle's budget (``backfill_depth``) used to stay "queued: not yet
considered"; the estimate ordered jobs by static keys, not by the fair-share order the cycle
uses. Each test states one situation.
"""

from __future__ import annotations

from gpupool.core.decisions import Explain, Reason, Start
from gpupool.core.events import JobFinished, JobSubmitted
from gpupool.core.scheduler import Scheduler, SchedulerConfig

from .builders import fleet, job, tenants

H = 3_600_000


def reasons(s: Scheduler) -> dict[str, Reason]:
    return {j.spec.id: j.reason for j in s.pending_jobs()}


def test_jobs_past_the_backfill_depth_are_told_the_pool_is_full_not_queued() -> None:
    # one 8-GPU node, busy; a strict cycle tries one job and blocks the pool: the other
    # nine were never looked at, yet each says what it waits for
    s = Scheduler(
        fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="fifo", backfill_depth=1)
    )
    s.handle([JobSubmitted(job("run", 8, walltime_ms=H))], 0)
    out = s.handle([JobSubmitted(job(f"w{i}", 2, submit=1, walltime_ms=H)) for i in range(10)], 1)
    assert set(reasons(s).values()) == {Reason.RESOURCES}
    told = [d for d in out if isinstance(d, Explain)]
    assert sorted(d.job_id for d in told) == sorted(f"w{i}" for i in range(10))
    assert all(d.detail == "waiting for 2 x H100" for d in told)
    # nothing changed: the next cycle says nothing new
    assert [d for d in s.handle([], 2) if isinstance(d, Explain)] == []


def test_a_job_above_its_borrowing_cap_is_told_so_even_unreached() -> None:
    # p may hold 4 (guarantee 2 + borrow 2) and holds 4; the pool has room for more
    t = tenants("p", "q", p={"guaranteed": {"H100": 2}, "borrow_limit": {"H100": 2}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=2), t, SchedulerConfig(policy="fifo", backfill_depth=1))
    s.handle([JobSubmitted(job("held", 4, walltime_ms=H))], 0)
    # q's 16-GPU job cannot fit (12 free) and blocks the strict cycle before p's job is tried
    s.handle(
        [JobSubmitted(job("big", 16, project="q", walltime_ms=H)), JobSubmitted(job("more", 2, submit=1))], 1
    )
    got = s.job("more")
    assert got is not None and got.reason is Reason.BORROW_LIMIT
    assert got.detail == "sector/p would exceed its borrowing limit of H100"


def test_a_lower_class_behind_a_higher_one_is_told_so() -> None:
    s = Scheduler(
        fleet(racks=1, nodes_per_rack=2),
        tenants("p"),
        SchedulerConfig(policy="priority", backfill_depth=1, preemption=False),
    )
    s.handle([JobSubmitted(job("run", 8, walltime_ms=H))], 0)
    # the high job needs 16 (8 free): it fails and ends the cycle; the low one could fit
    s.handle(
        [
            JobSubmitted(job("hi", 16, priority_class="high", walltime_ms=H)),
            JobSubmitted(job("lo", 4, priority_class="low", submit=1)),
        ],
        1,
    )
    lo = s.job("lo")
    assert lo is not None and lo.reason is Reason.BEHIND and "higher class" in lo.detail


def test_every_pending_job_has_a_place_in_its_pools_order() -> None:
    s = Scheduler(
        fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="fifo", backfill_depth=1)
    )
    s.handle([JobSubmitted(job("run", 8, walltime_ms=H))], 0)
    s.handle([JobSubmitted(job(f"w{i}", 8, submit=1 + i, walltime_ms=H)) for i in range(5)], 10)
    pos = s.queue_positions(10)
    assert pos == {f"w{i}": ("H100 in c0", i + 1) for i in range(5)}


def test_estimates_follow_the_fair_share_order_the_cycle_uses() -> None:
    # The case: p has used the node for 10 h and still holds it; p2 (p's) was
    # submitted before q1 (q's). Fair share serves q first, so q1 starts at 10 h and p2 at
    # 11 h; the estimate used to say the opposite (submission order).
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p", "q"), SchedulerConfig(policy="fairshare"))
    s.handle([JobSubmitted(job("p1", 8, walltime_ms=10 * H))], 0)
    s.handle(
        [
            JobSubmitted(job("p2", 8, submit=1, walltime_ms=H)),
            JobSubmitted(job("q1", 8, project="q", submit=2, walltime_ms=H)),
        ],
        2,
    )
    est = s.estimate_starts(3)
    assert est == {"q1": 10 * H, "p2": 11 * H}
    assert s.queue_positions(3) == {"q1": ("H100 in c0", 1), "p2": ("H100 in c0", 2)}
    p1 = s.job("p1")
    assert p1 is not None
    out = s.handle([JobFinished("p1", p1.allocation_id)], 10 * H)
    assert [d.job_id for d in out if isinstance(d, Start)] == ["q1"]


def test_under_strict_order_an_estimate_waits_for_the_job_that_blocks_its_pools() -> None:
    # 16 GPUs, 8 busy for 10 h; "big" (16) waits for them and, under strict order, holds
    # up "small" (4) though 8 are free now: the cycle blocks big's pools, so must the estimate
    s = Scheduler(fleet(racks=1, nodes_per_rack=2), tenants("p"), SchedulerConfig(policy="fifo"))
    s.handle([JobSubmitted(job("run", 8, walltime_ms=10 * H))], 0)
    out = s.handle(
        [JobSubmitted(job("big", 16, submit=1, walltime_ms=H)), JobSubmitted(job("small", 4, submit=2))], 2
    )
    assert not [d for d in out if isinstance(d, Start)]
    assert s.estimate_starts(3) == {"big": 10 * H, "small": 11 * H}


def test_the_twin_measures_estimates_against_the_starts_that_happened() -> None:
    from gpupool.sim.metrics import compute_metrics
    from gpupool.sim.simulator import SimConfig, simulate
    from gpupool.sim.workload import WorkloadJob

    # one node; "a" runs 1 h, "b" and "c" wait for it in turn: their estimates are exact
    jobs = [
        WorkloadJob("a", 0, H, 8, "p"),
        WorkloadJob("b", 1_000, H, 8, "p"),
        WorkloadJob("c", 2_000, H, 8, "p"),
    ]
    cfg = SimConfig(SchedulerConfig(policy="fifo"), estimates=True)
    r = simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, cfg)
    by = {j.id: j for j in r.jobs}
    assert by["b"].estimated_start_ms == by["b"].first_start_ms == H
    assert by["c"].estimated_start_ms == by["c"].first_start_ms == 2 * H
    m = compute_metrics(r)
    assert (m["estimate_jobs_judged"], m["estimate_error_median"], m["estimate_error_p90"]) == (2, 0.0, 0.0)
    # without ``estimates`` the keys are there, empty
    plain = compute_metrics(simulate(fleet(racks=1, nodes_per_rack=1), tenants("p"), jobs, SimConfig()))
    assert plain["estimate_error_median"] is None and plain["estimate_jobs_judged"] is None
