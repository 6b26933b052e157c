"""The parts of the core, each alone: made from a pool state (and peers), never a Scheduler.

Capacity, the pool state's primitives and its trial (rollback), the memo rule, the wait
index, the victim search (Preemptor), the bulk pass (WaitingJobs), the fair-share order
(FairShareOrder), Gavel's rounds (RoundMechanism), and the decay of fair-share usage
(half-life) with its restoration after a restart.
"""

from __future__ import annotations

import math

import pytest

from gpupool.core.capacity import Capacity
from gpupool.core.cycle_scratch import CycleScratch, Reservation
from gpupool.core.decisions import Decision, Explain, Preempt, Reason, Start
from gpupool.core.events import JobFinished, JobSubmitted, Tick
from gpupool.core.fairshare import FairShareOrder
from gpupool.core.fleet import Level
from gpupool.core.heterogeneity import RoundMechanism
from gpupool.core.job_state import PENDING, RUNNING, JobState
from gpupool.core.policies import Pass, get_policy, with_policy_defaults
from gpupool.core.pool_state import Memo, PoolState, Refusal
from gpupool.core.preemption import Preemptor
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.wait_index import UNNAMED
from gpupool.core.waiting import WaitingJobs

from .builders import fleet, job, tenants

H = 3_600_000


def state_of(policy: str = "fairshare", **kw: object) -> PoolState:
    cfg = SchedulerConfig(policy=policy, **kw)  # type: ignore[arg-type]
    return PoolState(fleet(racks=1, nodes_per_rack=2), tenants("p", "q"), cfg, get_policy(policy))


def admitted(state: PoolState, id: str, gpus: int, project: str = "p", **kw: object) -> JobState:
    spec = job(id, gpus, project, **kw)  # type: ignore[arg-type]
    p, cands, cset = state.admit(spec)
    j = state.new_job(spec, p, cands, spec.rank, cset)
    state.enqueue(j)
    return j


# -- Capacity and the trial --------------------------------------------------------------


def test_capacity_plans_applies_and_undoes_a_gang() -> None:
    cap = Capacity(fleet(racks=1, nodes_per_rack=2))
    (pool,) = cap.pools
    plan = cap.plan(0, 12, job("g", 12).shape(8), Level.CLUSTER)
    assert plan is not None and sum(n for _, n in plan) == 12
    placement = cap.apply(plan)
    assert pool.free == 4
    cap.validate()
    cap.undo(placement)
    assert pool.free == 16
    assert cap.plan(0, 17, job("big", 17).shape(8), Level.CLUSTER) is None


def test_capacity_drained_node_leaves_the_schedulable_count() -> None:
    cap = Capacity(fleet(racks=1, nodes_per_rack=2))
    cap.set_schedulable(0, False)
    assert cap.pools[0].schedulable == 8
    assert cap.plan(0, 9, job("g", 9).shape(8), Level.CLUSTER) is None
    cap.set_schedulable(0, True)
    assert cap.pools[0].schedulable == 16


def test_trial_rolls_back_exactly_what_it_changed() -> None:
    state = state_of()
    cap = state.capacity
    placement = cap.apply([(0, 3), (1, 5)])
    before = (list(cap.mask), list(cap.free))
    t = state.trial()
    t.release(placement)
    assert cap.pools[0].free == 16
    t.retake(((0, placement[0][1]),))
    assert cap.pools[0].free == 13
    t.rollback()
    assert (list(cap.mask), list(cap.free)) == before
    cap.validate()


def test_trial_commit_keeps_the_changes() -> None:
    state = state_of()
    placement = state.capacity.apply([(0, 8)])
    t = state.trial()
    t.release(placement)
    t.commit()
    t.rollback()  # nothing left to undo
    assert state.capacity.pools[0].free == 16


# -- the pool state's primitives ---------------------------------------------------------


def test_admit_refuses_with_a_reason_code() -> None:
    state = state_of()
    admitted(state, "a", 1)
    cases = [
        (job("a", 1), Reason.INVALID),  # a duplicate id
        (job("b", 0), Reason.INVALID),
        (job("c", 1, "nobody"), Reason.UNKNOWN_PROJECT),
        (job("d", 64), Reason.UNSCHEDULABLE),
    ]
    for spec, reason in cases:
        with pytest.raises(Refusal) as e:
            state.admit(spec)
        assert e.value.reason is reason, spec.id


def test_enqueue_start_stop_keep_every_index_in_step() -> None:
    state = state_of()
    j = admitted(state, "a", 8)
    assert state.pending == 1 and j.status == PENDING
    v = state.version
    out: list[Decision] = []
    state.start(j, 0, [(0, 8)], 100, out)
    assert state.version > v
    (started,) = out
    assert isinstance(started, Start) and started.allocation_id == "a#1"
    assert state.pending == 0 and j.status == RUNNING
    assert state.node_jobs[0] == {j.seq} and state.ledger.held_all[j.project] == 8
    assert state.groups.rank_gpus[0][j.rank] == 8
    state.stop(j, 100 + H)
    assert state.ledger.held_all[j.project] == 0 and not state.running
    assert j.run_ms == H and j.attained == 8 * H
    assert state.groups.rank_gpus[0] == [0] * len(state.groups.rank_gpus[0])
    state.capacity.validate()


def test_memo_holds_until_the_state_changes() -> None:
    state = state_of()
    memo: Memo[str, int] = Memo(state)
    memo.put("k", 1)
    assert memo.get("k") == 1
    admitted(state, "a", 1)  # a queue change bumps the version
    assert memo.get("k") is None
    memo.put("k", 2)
    state.touch()
    assert memo.get("k") is None


def test_explain_derives_the_wait_signature_from_the_subject_not_the_text() -> None:
    state = state_of()
    j = admitted(state, "a", 4)
    out: list[Decision] = []
    label = state.models_label(j.candidates)
    state.explain(j, Reason.RESOURCES, "any text at all", out, label)
    assert out == [Explain("a", Reason.RESOURCES, "any text at all")]
    assert j.wait_sig == (j.candidates, None)
    assert state.waits.index[j.qkey].keys[0] == j.skey
    state.explain(j, Reason.RESERVATION, "would delay job x", out, "x")
    assert j.wait_sig == (j.candidates, "x")  # type: ignore[comparison-overlap]
    state.explain(j, Reason.RESERVATION, "would delay job x", out, "x")
    assert len(out) == 2  # no change, nothing said
    state.explain(j, Reason.TOPOLOGY, "fragmented", out)
    assert j.wait_sig is None and j.qkey not in state.waits.index


def test_an_over_budget_note_leaves_a_signature_that_names_no_job() -> None:
    state = state_of()
    j = admitted(state, "a", 4)
    j.reason = Reason.OVER_BUDGET
    out: list[Decision] = []
    state.explain(j, Reason.RESERVATION, "would delay job x", out, "x")
    assert isinstance(out[0], Explain) and out[0].detail.endswith("(over budget: runs as preemptible)")
    assert j.wait_sig == (j.candidates, UNNAMED)


# -- the victim search, the bulk pass, the fair-share order ------------------------------


def test_preemptor_makes_room_for_a_higher_class_and_rolls_back_when_it_cannot() -> None:
    state = state_of("priority")
    pre = Preemptor(state)
    out: list[Decision] = []
    low = [admitted(state, f"low{i}", 8, priority_class="low") for i in range(2)]
    for i, j in enumerate(low):
        state.start(j, 0, [(i, 8)], 0, out)
    high = admitted(state, "high", 8, priority_class="high")
    cyc = CycleScratch(1_000, out)
    assert not pre.hopeless(high.project, high.rank, high.candidates, 8)
    assert pre.try_for(high, high.candidates, cyc)
    preempted = [d for d in out if isinstance(d, Preempt)]
    assert len(preempted) == 1 and preempted[0].reason is Reason.PRIORITY
    assert high.status == RUNNING
    # a second high job: the only victim left is one low job, but it needs 16: hopeless
    big = admitted(state, "big", 16, priority_class="high")
    masks = list(state.capacity.mask)
    assert not pre.try_for(big, big.candidates, cyc)
    assert list(state.capacity.mask) == masks  # the trial was rolled back


def test_bulk_pass_passes_over_a_run_of_jobs_told_the_same() -> None:
    state = state_of("fifo", backfill="easy")
    pre = Preemptor(state)
    waiting = WaitingJobs(state, pre)
    out: list[Decision] = []
    head = admitted(state, "head", 16)
    jobs = [admitted(state, f"w{i}", 16) for i in range(5)]
    blocker = admitted(state, "run", 16)
    state.start(blocker, 0, [(0, 8), (1, 8)], 0, out)
    label = state.models_label(head.candidates)
    for j in jobs:
        state.explain(j, Reason.RESOURCES, "waiting", out, label)
    cyc = CycleScratch(10, out)
    cyc.reservations[0] = Reservation(head, float(H), 0)
    (qkey,) = state.queues
    q = state.queues[qkey]
    n = waiting.bulk_fail(jobs[0], q, qkey, 1, (), cyc, False, [])
    assert n == 5 and cyc.failures == 1
    cyc.reservations.clear()  # no reservation: the jobs must be tried
    assert waiting.bulk_fail(jobs[0], q, qkey, 1, (), cyc, False, []) == 0


def test_fairshare_order_puts_the_project_with_less_decayed_usage_first() -> None:
    state = state_of("fairshare")
    order = FairShareOrder(state)
    out: list[Decision] = []
    used = admitted(state, "used", 8, "p")
    state.start(used, 0, [(0, 8)], 0, out)
    state.stop(used, H)
    a = admitted(state, "a", 1, "p")
    b = admitted(state, "b", 1, "q")
    order.new_cycle()
    pa, pb = order.prefix(a.qkey, 2 * H), order.prefix(b.qkey, 2 * H)
    assert pb < pa  # q has used nothing
    assert order.prefix(a.qkey, 2 * H) is pa  # memoised while the state holds


def test_round_mechanism_starts_jobs_at_a_round_and_fills_between() -> None:
    cfg = with_policy_defaults(SchedulerConfig(policy="gavel-las"))
    state = PoolState(fleet(racks=1, nodes_per_rack=2), tenants("p"), cfg, get_policy("gavel-las"))
    rounds = RoundMechanism(state, Preemptor(state))
    for i in range(3):
        admitted(state, f"j{i}", 8)
    out: list[Decision] = []
    rounds.cycle(0, out)  # the first cycle is a full round
    assert sum(isinstance(d, Start) for d in out) == 2
    assert state.pending == 1


def test_every_policy_implements_the_protocol() -> None:
    from gpupool.core.policies import LISTING, POLICIES

    assert [p.name for p in LISTING] == list(POLICIES)
    for p in LISTING:
        assert p is get_policy(p.name)
        assert p.preemptive is (p.cycle is not Pass.QUEUE)
        if p.cycle is Pass.ROUNDS:
            assert p.objective
        if p.cycle is Pass.WANTED_SET:
            state = state_of(p.name)
            j = admitted(state, "a", 1)
            assert p.running_key(j, 10, 0, state.config)[-1] == j.seq
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        get_policy("nope")
    las = with_policy_defaults(SchedulerConfig(policy="las"))
    assert (las.round_ms, las.min_runtime_ms) == (60_000, 1_260_000)
    assert with_policy_defaults(SchedulerConfig(policy="gavel-fifo")).round_ms == 360_000
    assert with_policy_defaults(SchedulerConfig(policy="fifo", round_ms=5)).round_ms == 5


# -- fair-share usage: decay and restoration --------------------------------------------


def test_fair_share_usage_halves_every_half_life() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=1), tenants("p"), SchedulerConfig(decay_half_life_ms=H))
    (start,) = s.handle([JobSubmitted(job("a", 8))], 0)
    assert isinstance(start, Start)
    s.handle([JobFinished("a", start.allocation_id)], H)
    p = s.tenancy.resolve("p")
    assert p is not None
    # 8 GPUs for one half-life, decaying as it accrues: 8 * H / ln 2 * (1 - 1/2)
    at_end = 8 * H / math.log(2) * 0.5
    assert s.ledger.decayed(p, H) == pytest.approx(at_end)
    assert s.ledger.decayed(p, 2 * H) == pytest.approx(at_end / 2)
    assert s.ledger.decayed(p, 4 * H) == pytest.approx(at_end / 8)


def test_fair_share_usage_is_restored_after_a_restart() -> None:
    cfg = SchedulerConfig(decay_half_life_ms=H)
    a = Scheduler(fleet(racks=1, nodes_per_rack=2), tenants("p", "q"), cfg)
    d1 = a.handle([JobSubmitted(job("done", 8, "p")), JobSubmitted(job("runs", 8, "q", submit=0))], 0)
    starts = {d.job_id: d for d in d1 if isinstance(d, Start)}
    a.handle([JobFinished("done", starts["done"].allocation_id)], H)
    now = 3 * H
    # the restart: the closed interval replayed, the running job restored where it runs
    b = Scheduler(fleet(racks=1, nodes_per_rack=2), tenants("p", "q"), cfg)
    b.restore_usage("p", "H100", 8, 0)
    b.restore_running(job("runs", 8, "q"), starts["runs"].placement, 0, attempt=1)
    b.restore_usage("p", "H100", -8, H)
    for name in ("p", "q", "sector"):
        i = a.tenancy.resolve(name) if name != "sector" else 0
        assert i is not None
        assert b.ledger.decayed(i, now) == pytest.approx(a.ledger.decayed(i, now)), name
    assert b.ledger.held_all == a.ledger.held_all
    b.validate()
    # and it orders the same: after the restart q (still running) ranks behind p
    out = b.handle(
        [JobSubmitted(job("p2", 8, "p", submit=now)), JobSubmitted(job("q2", 8, "q", submit=now))], now
    )
    started = [d.job_id for d in out if isinstance(d, Start)]
    assert started == ["p2"]
    b.handle([Tick()], now + 1)
