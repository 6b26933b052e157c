"""Advance reservations in the core: maintenance windows and workshops the planner respects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.core.advance_reservations import AdvanceReservation, ReservationConflict
from gpupool.core.decisions import Decision, Explain, Preempt, Start
from gpupool.core.events import JobFinished, JobSubmitted, ReservationCreated, ReservationDeleted, Tick
from gpupool.core.scheduler import Scheduler, SchedulerConfig

from .builders import fleet, job, tenants

H = 3_600_000
MAINT = AdvanceReservation("m1", 10 * H, 12 * H, nodes=("c0b0r0n0",))


def sched(nodes: int = 1, backfill: str = "none") -> Scheduler:
    return Scheduler(
        fleet(racks=1, nodes_per_rack=nodes, gpus=8),
        tenants("p", "ws", "other"),
        SchedulerConfig(policy="fifo", backfill=backfill),
    )


def starts(ds: list[Decision]) -> dict[str, Start]:
    return {d.job_id: d for d in ds if isinstance(d, Start)}


def explains(ds: list[Decision], jid: str) -> list[str]:
    return [d.detail for d in ds if isinstance(d, Explain) and d.job_id == jid]


@pytest.mark.parametrize("backfill", ["none", "easy"])
def test_a_4_gpu_job_does_not_start_into_a_maintenance_window(backfill: str) -> None:
    s = sched(backfill=backfill)
    s.handle([ReservationCreated(MAINT)], 0)
    out = s.handle([JobSubmitted(job("j1", 4, walltime_ms=11 * H))], 0)
    assert "j1" not in starts(out)
    why = "waiting: accelerators reserved for maintenance from 36000000 ms"
    assert any(why in d for d in explains(out, "j1"))
    # its estimate is after the window, not on the reserved node
    assert s.estimate_starts(0)["j1"] == 12 * H
    # the window ends: it starts
    assert "j1" in starts(s.handle([Tick()], 12 * H))


def test_it_starts_when_its_walltime_ends_before_the_window() -> None:
    s = sched()
    s.handle([ReservationCreated(MAINT)], 0)
    out = s.handle([JobSubmitted(job("j1", 4, walltime_ms=10 * H))], 0)
    assert starts(out)["j1"].placement[0][0] == "c0b0r0n0"


def test_inside_the_window_nobody_starts_on_maintenance_nodes_and_deleting_frees_them() -> None:
    s = sched()
    s.handle([ReservationCreated(MAINT)], 0)
    out = s.handle([JobSubmitted(job("j1", 1, walltime_ms=60_000))], 10 * H + 5)
    assert "j1" not in starts(out)
    assert "j1" in starts(s.handle([ReservationDeleted("m1")], 10 * H + 10))


def test_a_workshops_tenant_uses_the_reserved_nodes_during_the_window_another_waits() -> None:
    # EASY: under strict order the waiting o1 would hold its pool for everyone behind it
    s = sched(nodes=2, backfill="easy")
    ws = AdvanceReservation("ws", 1 * H, 5 * H, tenants=("sector/ws",), cluster="c0", model="H100", count=8)
    s.handle([ReservationCreated(ws)], 0)
    assert s.state.advance.nodes_of("ws") == ["c0b0r0n1"]  # the highest index: best fit starts low
    out = s.handle(
        [JobSubmitted(job(f"o{i}", 8, project="other", walltime_ms=2 * H)) for i in range(2)],
        1 * H,
    )
    assert list(starts(out)) == ["o0"] and starts(out)["o0"].placement[0][0] == "c0b0r0n0"
    assert any("reserved for reservation ws" in d for d in explains(out, "o1"))
    out = s.handle([JobSubmitted(job("w1", 8, project="ws", walltime_ms=2 * H))], 1 * H)
    assert starts(out)["w1"].placement[0][0] == "c0b0r0n1"
    # the workshop's job ends; the other tenant still waits until the window closes
    w1 = starts(out)["w1"]
    assert "o1" not in starts(s.handle([JobFinished("w1", w1.allocation_id)], 3 * H))
    assert starts(s.handle([Tick()], 5 * H))["o1"].placement[0][0] == "c0b0r0n1"


def test_refused_reservations_name_the_field() -> None:
    s = sched(nodes=2)
    adv = s.state.advance
    with pytest.raises(ReservationConflict) as e:
        adv.add(AdvanceReservation("x", 0, 10, cluster="c0", model="H100", count=17))
    assert e.value.field == "count"
    with pytest.raises(ReservationConflict) as e:
        adv.add(AdvanceReservation("x", 0, 10, nodes=("nope",)))
    assert e.value.field == "nodes"
    with pytest.raises(ReservationConflict) as e:
        adv.add(AdvanceReservation("x", 10, 10, nodes=("c0b0r0n0",)))
    assert e.value.field == "end"
    with pytest.raises(ReservationConflict) as e:
        adv.add(AdvanceReservation("x", 0, 10, cluster="c0", model="H200", count=1))
    assert e.value.field == "model"
    with pytest.raises(ReservationConflict) as e:
        adv.add(AdvanceReservation("x", 0, 10, tenants=("sector/nobody",), nodes=("c0b0r0n0",)))
    assert e.value.field == "tenants"
    # overlapping reservations get distinct nodes, and no more than the fleet has
    adv.add(AdvanceReservation("a", 0, 10, cluster="c0", model="H100", count=8))
    adv.add(AdvanceReservation("b", 5, 15, cluster="c0", model="H100", count=8))
    assert set(adv.nodes_of("a")).isdisjoint(adv.nodes_of("b"))
    with pytest.raises(ReservationConflict) as e:
        adv.add(AdvanceReservation("c", 9, 11, cluster="c0", model="H100", count=1))
    assert e.value.field == "count"
    adv.add(AdvanceReservation("c", 15, 20, cluster="c0", model="H100", count=16))  # after both


def test_no_reservation_changes_nothing() -> None:
    a, b = sched(backfill="easy"), sched(backfill="easy")
    b.handle([ReservationCreated(MAINT), ReservationDeleted("m1")], 0)
    jobs = [JobSubmitted(job(f"j{i}", 1 + i % 8, walltime_ms=(1 + i) * H)) for i in range(6)]
    assert a.handle(jobs, 0) == b.handle(jobs, 0)


@settings(max_examples=60, deadline=None)
@given(
    window=st.tuples(st.integers(0, 20), st.integers(1, 10)),
    reserved=st.integers(1, 3),
    maintenance=st.booleans(),
    jobs=st.lists(
        st.tuples(
            st.sampled_from([1, 2, 3, 4, 5, 8, 13, 16]),  # gpus (13: a node plus a 5-GPU remainder)
            st.integers(1, 12),  # walltime, hours
            st.sampled_from(["ws", "other"]),  # tenant
            st.integers(0, 20),  # submitted at, hours
        ),
        min_size=1,
        max_size=25,
    ),
    backfill=st.sampled_from(["none", "easy"]),
    guaranteed=st.booleans(),
)
def test_no_non_member_job_ever_runs_on_reserved_accelerators_inside_the_window(
    window: tuple[int, int],
    reserved: int,
    maintenance: bool,
    jobs: list[tuple[int, int, str, int]],
    backfill: str,
    guaranteed: bool,
) -> None:
    # a guarantee for "other" lets it preempt "ws" to reclaim it: preemption is fenced too
    kw = {"other": {"guaranteed": {"H100": 16}}} if guaranteed else {}
    s = Scheduler(
        fleet(racks=1, nodes_per_rack=4, gpus=8),
        tenants("ws", "other", **kw),
        SchedulerConfig(policy="fairshare", backfill=backfill),
    )
    start, end = window[0] * H, (window[0] + window[1]) * H
    who = () if maintenance else ("sector/ws",)
    r = AdvanceReservation("r", start, end, tenants=who, cluster="c0", model="H100", count=8 * reserved)
    s.handle([ReservationCreated(r)], 0)
    held = set(s.state.advance.nodes_of("r"))
    walls = {f"j{i}": w * H for i, (_, w, _, _) in enumerate(jobs)}
    owner = {f"j{i}": p for i, (_, _, p, _) in enumerate(jobs)}
    # events in time order: submissions at their hour, finishes at walltime, a tick each hour
    arrivals: dict[int, list[JobSubmitted]] = {}
    for i, (g, w, p, at) in enumerate(jobs):
        arrivals.setdefault(at * H, []).append(JobSubmitted(job(f"j{i}", g, project=p, walltime_ms=w * H)))
    finishes: dict[int, list[JobFinished]] = {}
    for t in range(0, 60 * H, H):
        out = s.handle([*finishes.pop(t, []), *arrivals.pop(t, []), Tick()], t)
        for d in out:
            if not isinstance(d, Start):
                continue
            member = owner[d.job_id] == "ws" and not maintenance and start <= t < end
            on_reserved = any(node in held for node, _ in d.placement)
            overlaps = t < end and start < t + walls[d.job_id]
            assert not (on_reserved and overlaps and not member), (d, t)
            finishes.setdefault(t + walls[d.job_id], []).append(JobFinished(d.job_id, d.allocation_id))
        for jid, est in s.estimate_starts(t).items():
            j = s.state.jobs[jid]
            member = owner[jid] == "ws" and not maintenance
            # an estimate that overlaps the window leaves room outside the reserved nodes
            if est is not None and not member and est < end and start < est + walls[jid]:
                assert j.gpus <= 32 - 8 * reserved, (jid, est)
        s.validate()


@pytest.mark.parametrize("first", ["n0", "n1"])
def test_a_guarantee_reclaimed_by_preemption_is_not_placed_on_reserved_nodes(first: str) -> None:
    s = Scheduler(
        fleet(racks=1, nodes_per_rack=2, gpus=8),
        tenants("ws", "other", other={"guaranteed": {"H100": 8}}),
        SchedulerConfig(policy="fairshare"),
    )
    ws = AdvanceReservation("ws", 0, 10 * H, tenants=("sector/ws",), nodes=("c0b0r0n1",))
    s.handle([ReservationCreated(ws)], 0)
    # ws fills both nodes (the reserved one is its own inside the window); which started
    # first decides which one a victim search would look at first
    placed = {}
    for t, k in enumerate(["a", "b"] if first == "n0" else ["b", "a"], 1):
        placed.update(starts(s.handle([JobSubmitted(job(k, 8, project="ws", walltime_ms=5 * H))], t)))
    assert {st.placement[0][0] for st in placed.values()} == {"c0b0r0n0", "c0b0r0n1"}
    out = s.handle([JobSubmitted(job("o", 8, project="other", walltime_ms=H))], 3)
    victim = next(d.job_id for d in out if isinstance(d, Preempt))
    assert placed[victim].placement[0][0] == "c0b0r0n0"  # the victim search is fenced too
    assert starts(out)["o"].placement[0][0] == "c0b0r0n0"
    s.validate()


def test_a_reservation_that_blocks_nobody_changes_no_decision() -> None:
    """EASY's shadow with reservations walks running jobs as ``shadow_time`` does."""

    def run(far: bool) -> list[Decision]:
        s = Scheduler(
            fleet(racks=8, nodes_per_rack=8, gpus=8),
            tenants(*[f"p{i}" for i in range(20)]),
            SchedulerConfig(policy="fairshare", backfill="easy"),
        )
        if far:  # long after every walltime below
            far_off = AdvanceReservation("m", 10**12, 10**12 + H, nodes=("c0b0r0n0",))
            s.handle([ReservationCreated(far_off)], 0)
        subs = [
            JobSubmitted(job(f"j{i}", 1 + (i * 7) % 16, project=f"p{i % 20}", walltime_ms=(1 + i % 5) * H))
            for i in range(1500)
        ]
        out = s.handle(subs, 0)
        ran = [(d.job_id, d.allocation_id) for d in out if isinstance(d, Start)]
        for c in range(1, 30):
            step = s.handle([JobFinished(*ran.pop(0))] if ran else [], c * 60_000)
            ran += [(d.job_id, d.allocation_id) for d in step if isinstance(d, Start)]
            out += step
        return out

    assert run(True) == run(False)
