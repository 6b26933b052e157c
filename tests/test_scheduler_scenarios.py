"""Scenario tests of the scheduling core: one situation each, stated in its name."""

from __future__ import annotations

from gpupool.core.decisions import Explain, Preempt, Reason, Reject, Reserve, Start
from gpupool.core.events import JobCancelled, JobFinished, JobSubmitted, NodeDown, NodeUp
from gpupool.core.fleet import Level
from gpupool.core.job import TaskGroup
from gpupool.core.scheduler import Scheduler, SchedulerConfig

from .builders import fleet, job, tenants


def starts(decisions: list[object]) -> dict[str, Start]:
    return {d.job_id: d for d in decisions if isinstance(d, Start)}


def test_a_4x8_gang_waits_for_a_whole_rack() -> None:
    # two racks of 4 nodes; one GPU busy in each rack: no rack has 4 whole nodes
    s = Scheduler(fleet(racks=2, nodes_per_rack=4), tenants("p"), SchedulerConfig(policy="fifo"))
    s.handle([JobSubmitted(job("x", 1)), JobSubmitted(job("y", 1))], 0)
    # pin the second single-GPU job into the other rack by filling rack 0's first node
    gang = job("gang", 32, submit=1, groups=(TaskGroup(4, 8),), topology=Level.RACK)
    d = s.handle([JobSubmitted(gang)], 1)
    # both 1-GPU jobs went best-fit onto the same node, so rack 1 is whole: the gang starts
    assert "gang" in starts(d)
    racks = {name.split("n")[0] for name, _ in starts(d)["gang"].placement}
    assert len(racks) == 1
    s.validate()


def test_a_13_gpu_gang_on_8_gpu_nodes_holds_13_and_leaves_the_rest_of_its_second_node() -> None:
    # one whole node plus a 5-GPU remainder worker: the remainder is a chunk, not a whole node
    # (it once took the whole second node, so the gang held 16 of its 13 and validate() failed)
    for backfill in ("none", "easy"):
        s = Scheduler(fleet(racks=1, nodes_per_rack=2), tenants("p"), SchedulerConfig(backfill=backfill))
        d = s.handle([JobSubmitted(job("g", 13)), JobSubmitted(job("small", 3, submit=1))], 0)
        held = {n: len(ids) for n, ids in starts(d)["g"].placement}
        assert sorted(held.values()) == [5, 8], held
        assert "small" in starts(d)  # the 3 accelerators the gang left on its second node
        s.validate()


def test_gang_needing_a_rack_waits_while_each_rack_has_a_busy_node() -> None:
    s = Scheduler(fleet(racks=2, nodes_per_rack=4), tenants("p"), SchedulerConfig(policy="fifo"))
    # fill one node in each rack with an 8-GPU job
    d = s.handle([JobSubmitted(job("a", 8)), JobSubmitted(job("b", 8))], 0)
    assert set(starts(d)) == {"a", "b"}
    # a and b both land in rack 0 (lowest index best fit), so make rack 1 busy too
    d = s.handle([JobSubmitted(job("c", 32, groups=(TaskGroup(4, 8),), topology=Level.RACK))], 1)
    assert "c" in starts(d)  # rack 1 is whole
    d = s.handle([JobSubmitted(job("g", 16, groups=(TaskGroup(2, 8),), topology=Level.RACK))], 2)
    assert "g" in starts(d)  # rack 0 has two whole nodes left
    d = s.handle([JobSubmitted(job("h", 32, groups=(TaskGroup(4, 8),), topology=Level.RACK))], 3)
    assert "h" not in starts(d)
    assert s.job("h") is not None and s.job("h").reason in (Reason.RESOURCES, Reason.TOPOLOGY)  # type: ignore[union-attr]
    s.validate()


def test_job_too_big_for_any_rack_is_rejected_as_unschedulable() -> None:
    s = Scheduler(fleet(racks=2, nodes_per_rack=4), tenants("p"), SchedulerConfig(policy="fifo"))
    d = s.handle([JobSubmitted(job("big", 40, groups=(TaskGroup(5, 8),), topology=Level.RACK))], 0)
    rej = [x for x in d if isinstance(x, Reject)]
    assert rej and rej[0].reason is Reason.UNSCHEDULABLE
    assert "rack" in rej[0].detail and "at most 32" in rej[0].detail


def test_unknown_model_and_unknown_project_and_invalid_job_are_rejected_with_reasons() -> None:
    s = Scheduler(fleet(), tenants("p"), SchedulerConfig(policy="fifo"))
    d = s.handle(
        [
            JobSubmitted(job("m", 1, models=("Z9000",))),
            JobSubmitted(job("u", 1, project="nobody")),
            JobSubmitted(job("n", 0)),
            JobSubmitted(job("w", 9, groups=(TaskGroup(1, 9),))),
        ],
        0,
    )
    reasons = {x.job_id: x for x in d if isinstance(x, Reject)}
    assert "Z9000" in reasons["m"].detail
    assert reasons["u"].reason is Reason.UNKNOWN_PROJECT
    assert reasons["n"].reason is Reason.INVALID and "gpus" in reasons["n"].detail
    assert reasons["w"].reason is Reason.UNSCHEDULABLE


def test_stack_constraint_sends_job_only_to_matching_accelerators() -> None:
    s = Scheduler(fleet(model="ATOM"), tenants("p"), SchedulerConfig(policy="fifo"))
    d = s.handle([JobSubmitted(job("c", 1, stacks=("cuda",)))], 0)
    rej = [x for x in d if isinstance(x, Reject)]
    assert rej and "rbln" in rej[0].detail


def test_strict_fifo_blocks_behind_the_head_but_easy_backfills_short_jobs() -> None:
    for backfill, expect_small in (("none", False), ("easy", True)):
        s = Scheduler(
            fleet(racks=1, nodes_per_rack=2), tenants("p"), SchedulerConfig(policy="fifo", backfill=backfill)
        )
        s.handle([JobSubmitted(job("long", 8, walltime_ms=100_000))], 0)
        d = s.handle(
            [
                JobSubmitted(job("head", 16, submit=1, walltime_ms=10_000)),
                JobSubmitted(job("small", 4, submit=2, walltime_ms=50_000)),
            ],
            2,
        )
        assert ("small" in starts(d)) is expect_small, backfill
        if backfill == "easy":
            resv = [x for x in d if isinstance(x, Reserve)]
            assert resv and resv[0].job_id == "head" and resv[0].start_ms == 100_000
        s.validate()


def test_easy_backfill_refuses_a_job_that_would_delay_the_reservation() -> None:
    s = Scheduler(
        fleet(racks=1, nodes_per_rack=2), tenants("p"), SchedulerConfig(policy="fifo", backfill="easy")
    )
    s.handle([JobSubmitted(job("long", 8, walltime_ms=100_000))], 0)
    d = s.handle(
        [
            JobSubmitted(job("head", 16, submit=1, walltime_ms=10_000)),
            JobSubmitted(job("late", 4, submit=2, walltime_ms=500_000)),
        ],
        2,
    )
    assert "late" not in starts(d)
    expl = {x.job_id: x for x in d if isinstance(x, Explain)}
    assert expl["late"].reason is Reason.RESERVATION and "head" in expl["late"].detail


def test_fairshare_serves_the_tenant_that_used_less() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p", "q"), SchedulerConfig(policy="fairshare"))
    s.handle([JobSubmitted(job("p1", 8, project="p"))], 0)
    # p used the node for an hour; then both tenants queue a job
    d = s.handle(
        [
            JobSubmitted(job("p2", 8, project="p", submit=1)),
            JobSubmitted(job("q1", 8, project="q", submit=2)),
        ],
        1_000,
    )
    d = s.handle([JobFinished("p1", "p1#1")], 3_600_000)
    assert list(starts(d)) == ["q1"]


def test_tenant_under_its_guarantee_reclaims_borrowed_capacity_in_one_cycle() -> None:
    t = tenants("owner", "borrower", owner={"guaranteed": {"H100": 8}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), t, SchedulerConfig(policy="fairshare"))
    d = s.handle([JobSubmitted(job("b", 8, project="borrower"))], 0)
    assert "b" in starts(d)
    d = s.handle([JobSubmitted(job("o", 8, project="owner", submit=5))], 5_000)
    pre = [x for x in d if isinstance(x, Preempt)]
    assert pre and pre[0].job_id == "b" and pre[0].reason is Reason.RECLAIM
    assert "o" in starts(d)
    s.validate()
    # the preempted job is back in the queue, not lost
    assert s.job("b") is not None and s.pending_count == 1


def test_victims_are_chosen_to_lose_the_least_work() -> None:
    t = tenants("owner", "borrower", owner={"guaranteed": {"H100": 4}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), t, SchedulerConfig(policy="fairshare"))
    s.handle([JobSubmitted(job("old", 4, project="borrower", checkpoint_interval_ms=3_600_000))], 0)
    s.handle([JobSubmitted(job("new", 4, project="borrower", submit=1))], 3_500_000)
    # at t=3.6e6+1: 'old' checkpointed 1 ms ago; 'new' ran 100 s with no checkpoint
    d = s.handle([JobSubmitted(job("o", 4, project="owner", submit=2))], 3_600_001)
    pre = [x.job_id for x in d if isinstance(x, Preempt)]
    assert pre == ["old"]


def test_minimum_runtime_protects_young_jobs_from_preemption() -> None:
    t = tenants("owner", "borrower", owner={"guaranteed": {"H100": 8}})
    cfg = SchedulerConfig(policy="fairshare", min_runtime_ms=600_000)
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), t, cfg)
    s.handle([JobSubmitted(job("b", 8, project="borrower"))], 0)
    d = s.handle([JobSubmitted(job("o", 8, project="owner", submit=1))], 1_000)
    assert not [x for x in d if isinstance(x, Preempt)]
    d = s.handle([], 700_000)
    assert [x.job_id for x in d if isinstance(x, Preempt)] == ["b"]


def test_higher_priority_class_preempts_preemptible_work() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="priority"))
    s.handle([JobSubmitted(job("cheap", 8, priority_class="preemptible"))], 0)
    d = s.handle([JobSubmitted(job("vip", 8, priority_class="reserved", submit=1))], 10)
    assert [x.job_id for x in d if isinstance(x, Preempt)] == ["cheap"]
    assert "vip" in starts(d)


def test_borrow_limit_caps_a_tenant_above_its_guarantee() -> None:
    t = tenants("p", p={"guaranteed": {"H100": 8}, "borrow_limit": {"H100": 8}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=4), t, SchedulerConfig(policy="fairshare"))
    d = s.handle([JobSubmitted(job(f"j{i}", 8, submit=i)) for i in range(3)], 0)
    assert set(starts(d)) == {"j0", "j1"}
    assert s.job("j2").reason is Reason.BORROW_LIMIT  # type: ignore[union-attr]


def test_srtf_preempts_the_job_with_most_remaining_time() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="srtf"))
    s.handle([JobSubmitted(job("long", 8, duration_hint_ms=1_000_000))], 0)
    d = s.handle([JobSubmitted(job("short", 8, submit=1, duration_hint_ms=1_000))], 10)
    assert [x.job_id for x in d if isinstance(x, Preempt)] == ["long"]
    assert "short" in starts(d)
    d = s.handle([JobFinished("short", "short#1")], 1_010)
    assert starts(d)["long"].resumed


def test_las_prefers_the_job_that_has_received_least_service() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="las"))
    s.handle([JobSubmitted(job("a", 8))], 0)
    d = s.handle([JobSubmitted(job("b", 8, submit=1))], 60_000)
    assert [x.job_id for x in d if isinstance(x, Preempt)] == ["a"]
    assert "b" in starts(d)


def test_cancel_releases_and_stale_finish_is_ignored() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="fifo"))
    s.handle([JobSubmitted(job("a", 8)), JobSubmitted(job("b", 8))], 0)
    d = s.handle([JobCancelled("a")], 5)
    assert "b" in starts(d)
    s.handle([JobFinished("a", "a#1")], 6)  # late report of the cancelled allocation
    s.validate()
    assert s.busy_gpus() == 8


def test_node_down_requeues_its_jobs_and_node_up_brings_it_back() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="fifo"))
    s.handle([JobSubmitted(job("a", 8))], 0)
    d = s.handle([NodeDown("c0b0r0n0")], 5)
    assert [x.job_id for x in d if isinstance(x, Preempt)] == ["a"]
    assert s.busy_gpus() == 0 and s.pending_count == 1
    d = s.handle([NodeUp("c0b0r0n0")], 10)
    assert "a" in starts(d)
    s.validate()


def test_estimated_starts_follow_walltimes() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="fifo"))
    s.handle([JobSubmitted(job("a", 8, walltime_ms=1_000))], 0)
    s.handle([JobSubmitted(job("b", 8, walltime_ms=2_000)), JobSubmitted(job("c", 4, walltime_ms=1))], 0)
    est = s.estimate_starts(0)
    assert est == {"b": 1_000, "c": 3_000}


def test_restored_running_job_holds_its_accelerators_and_finishes_normally() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=2), tenants("p"), SchedulerConfig(policy="fifo"))
    s.restore_running(job("r", 4), [("c0b0r0n1", (0, 1, 2, 3))], start_ms=0, attempt=2)
    s.validate()
    d = s.handle([JobSubmitted(job("x", 8, submit=1)), JobSubmitted(job("y", 8, submit=2))], 10)
    assert starts(d)["x"].placement[0][0] == "c0b0r0n0"  # n1 is partly taken by the restored job
    d = s.handle([JobFinished("r", "r#2")], 20)
    assert "y" in starts(d)
    s.validate()


def test_restore_refuses_a_double_booked_accelerator() -> None:
    import pytest

    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(policy="fifo"))
    s.restore_running(job("a", 2), [("c0b0r0n0", (0, 1))], start_ms=0, attempt=1)
    with pytest.raises(ValueError, match="not free"):
        s.restore_running(job("b", 2), [("c0b0r0n0", (1, 2))], start_ms=0, attempt=1)
    s.validate()  # the failed restore left nothing behind


def test_a_tenant_whose_backlog_cannot_run_does_not_stall_the_rest_of_the_pool() -> None:
    # "stuck" may only use cluster c0, which its own long job fills, and it comes first in
    # fair-share order (weight 10, while "other" has used c1 for an hour) with a backlog
    # longer than backfill_depth. Its jobs cannot start: when c1 frees up, "other" must get
    # it in that very cycle (backfill_depth_per_project, as Slurm's bf_max_job_assoc).
    t = tenants("stuck", "other", stuck={"clusters": ("c0",), "weight": 10.0})
    cfg = SchedulerConfig(policy="fairshare", backfill="easy", backfill_depth=3, backfill_depth_per_project=1)
    s = Scheduler(fleet(racks=1, nodes_per_rack=1, clusters=2), t, cfg)
    hour = 3_600_000
    d = s.handle(
        [
            JobSubmitted(job("hold", 8, project="stuck", walltime_ms=10 * hour)),
            JobSubmitted(job("o0", 8, project="other", submit=1, walltime_ms=hour)),
        ],
        1,
    )
    assert starts(d)["hold"].cluster == "c0" and starts(d)["o0"].cluster == "c1"
    s.handle(
        [JobSubmitted(job(f"s{i}", 8, project="stuck", submit=2 + i, walltime_ms=hour)) for i in range(20)], 2
    )
    d = s.handle([JobFinished("o0", "o0#1"), JobSubmitted(job("o1", 8, project="other", submit=hour))], hour)
    assert "o1" in starts(d) and starts(d)["o1"].cluster == "c1"
    s.validate()


def test_higher_class_borrower_does_not_preempt_a_tenant_within_its_guarantee() -> None:
    # owner runs within its guarantee of 8; a borrower's high-class job used to preempt it
    # (priority), and the owner's job took the node back the next cycle (reclaim): the two
    # rules undid each other every cycle and each round threw away both jobs' work
    t = tenants("owner", "borrower", owner={"guaranteed": {"H100": 8}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), t, SchedulerConfig(policy="fairshare", backfill="easy"))
    d = s.handle([JobSubmitted(job("o", 8, project="owner"))], 0)
    assert "o" in starts(d)
    d = s.handle([JobSubmitted(job("vip", 8, project="borrower", submit=1, priority_class="high"))], 1_000)
    assert not [x for x in d if isinstance(x, Preempt)] and "vip" not in starts(d)
    for now in range(2_000, 10_000, 1_000):
        assert not [x for x in s.handle([], now) if isinstance(x, Preempt)]
    s.validate()


def test_higher_class_takes_only_what_another_tenant_borrows_above_its_guarantee() -> None:
    # owner holds 16 with a guarantee of 8: a high-class job of another tenant may take the
    # 8 it borrows, not the 8 it is guaranteed (which it would reclaim at the next cycle)
    t = tenants("owner", "other", owner={"guaranteed": {"H100": 8}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=2), t, SchedulerConfig(policy="fairshare"))
    d = s.handle([JobSubmitted(job(f"o{i}", 4, project="owner", submit=i)) for i in range(4)], 0)
    assert len(starts(d)) == 4
    d = s.handle([JobSubmitted(job("vip", 12, project="other", submit=9, priority_class="high"))], 1_000)
    assert not [x for x in d if isinstance(x, Preempt)]  # 12 > the 8 it borrows
    vip2 = JobSubmitted(job("vip2", 8, project="other", submit=10, priority_class="high"))
    d = s.handle([JobCancelled("vip"), vip2], 2_000)
    assert len([x for x in d if isinstance(x, Preempt) and x.reason is Reason.PRIORITY]) == 2
    assert "vip2" in starts(d)
    for now in range(3_000, 10_000, 1_000):
        assert not [x for x in s.handle([], now) if isinstance(x, Preempt)]
    s.validate()


def test_preemption_spares_victims_on_nodes_the_placement_does_not_use() -> None:
    # victims go in least-lost-work order until the job fits: 'a' (n0) then 'c' (n1); the
    # 8-GPU job lands on n1 alone, so preempting 'a' threw its work away for nothing
    t = tenants("owner", "borrower", owner={"guaranteed": {"H100": 8}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=2), t, SchedulerConfig(policy="fairshare"))
    s.handle([JobSubmitted(job("b", 4, project="borrower"))], 0)
    s.handle([JobSubmitted(job("c", 8, project="borrower", submit=1))], 800_000)
    d = s.handle([JobSubmitted(job("a", 4, project="borrower", submit=2))], 900_000)
    assert starts(d)["a"].placement[0][0] == "c0b0r0n0"  # next to 'b'; 'c' holds n1
    d = s.handle([JobSubmitted(job("o", 8, project="owner", submit=3))], 1_000_000)
    assert [x.job_id for x in d if isinstance(x, Preempt)] == ["c"]
    assert starts(d)["o"].placement == (("c0b0r0n1", tuple(range(8))),)
    assert {j.spec.id for j in s.running.values()} == {"a", "b", "o"}
    s.validate()
