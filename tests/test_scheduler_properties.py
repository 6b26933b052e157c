"""Property tests of the core's invariants (Hypothesis): random event streams, any policy."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.core.decisions import Preempt, Start
from gpupool.core.events import Event, JobCancelled, JobFinished, JobSubmitted, NodeDown, NodeUp, Tick
from gpupool.core.fleet import Level
from gpupool.core.job import TaskGroup
from gpupool.core.policy import POLICIES as ALL_POLICIES
from gpupool.core.scheduler import Scheduler, SchedulerConfig

from .builders import fleet, job, tenants

POLICIES = list(ALL_POLICIES)  # every registered policy, so a new one is tested too
NODES = [f"c0b{b}r{r}n{n}" for b in range(2) for r in range(2) for n in range(2)]


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[str, object]]:
    """A random script of submissions, finishes, cancels and node failures."""
    steps: list[tuple[str, object]] = []
    n = draw(st.integers(1, 40))
    for i in range(n):
        kind = draw(st.sampled_from(["submit", "submit", "submit", "finish", "cancel", "down", "up", "tick"]))
        if kind == "submit":
            gpus = draw(st.sampled_from([1, 2, 4, 8, 16, 24]))
            shaped = gpus % 8 == 0 and gpus > 8 and draw(st.booleans())
            steps.append(
                (
                    "submit",
                    dict(
                        id=f"j{i}",
                        gpus=gpus,
                        project=draw(st.sampled_from(["a", "b", "c"])),
                        submit=i,
                        groups=(TaskGroup(gpus // 8, 8),) if shaped else (),
                        topology=draw(st.sampled_from([Level.CLUSTER, Level.BLOCK, Level.RACK])),
                        duration_hint_ms=draw(st.integers(1, 10_000)),
                        walltime_ms=draw(st.integers(0, 10_000)),
                        priority_class=draw(st.sampled_from(["normal", "preemptible", "high"])),
                    ),
                )
            )
        elif kind in ("finish", "cancel"):
            steps.append((kind, draw(st.integers(0, max(0, i)))))
        elif kind in ("down", "up"):
            steps.append((kind, draw(st.sampled_from(NODES))))
        else:
            steps.append(("tick", None))
    return steps


def run(policy: str, backfill: str, script: list[tuple[str, object]]) -> list[object]:
    t = tenants(
        "a",
        "b",
        "c",
        a={"guaranteed": {"H100": 16}},
        b={"guaranteed": {"H100": 8}, "borrow_limit": {"H100": 24}},
    )
    s = Scheduler(
        fleet(racks=2, nodes_per_rack=2, blocks=2), t, SchedulerConfig(policy=policy, backfill=backfill)
    )
    stream: list[object] = []
    now = 0
    for kind, arg in script:
        now += 1_000
        events: list[Event] = []
        if kind == "submit":
            assert isinstance(arg, dict)
            events.append(JobSubmitted(job(**arg)))
        elif kind in ("finish", "cancel"):
            running = sorted(s.running.values(), key=lambda j: j.seq)
            pend = sorted(s.jobs.values(), key=lambda j: j.seq)
            if kind == "finish" and running:
                j = running[int(arg) % len(running)]  # type: ignore[call-overload]
                events.append(JobFinished(j.spec.id, j.allocation_id))
            elif kind == "cancel" and pend:
                events.append(JobCancelled(pend[int(arg) % len(pend)].spec.id))  # type: ignore[call-overload]
        elif kind == "down":
            events.append(NodeDown(str(arg)))
        elif kind == "up":
            events.append(NodeUp(str(arg)))
        else:
            events.append(Tick())
        out = s.handle(events, now)
        s.validate()  # no accelerator double-booked, gangs whole, ledger = running
        for d in out:
            if isinstance(d, Start):
                assert sum(len(ids) for _, ids in d.placement) == s.job(d.job_id).gpus  # type: ignore[union-attr]
        stream.extend(out)
    return stream


@settings(max_examples=60, deadline=None)
@given(scripts(), st.sampled_from(POLICIES), st.sampled_from(["none", "easy"]))
def test_invariants_hold_and_decisions_are_deterministic(
    script: list[tuple[str, object]], policy: str, backfill: str
) -> None:
    first = run(policy, backfill, script)
    second = run(policy, backfill, script)
    assert first == second  # same events, same decisions


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=12), st.sampled_from([4, 8, 16]))
def test_tenant_under_guarantee_gets_it_back_within_one_cycle(borrowed: list[int], asked: int) -> None:
    # 'owner' is guaranteed 16 GPUs; 'borrower' fills the cluster, then owner asks.
    t = tenants("owner", "borrower", owner={"guaranteed": {"H100": 16}})
    s = Scheduler(fleet(racks=2, nodes_per_rack=2), t, SchedulerConfig(policy="fairshare"))
    s.handle([JobSubmitted(job(f"b{i}", g, project="borrower", submit=i)) for i, g in enumerate(borrowed)], 0)
    s.handle([JobSubmitted(job(f"fill{i}", 1, project="borrower", submit=100 + i)) for i in range(32)], 1)
    out = s.handle([JobSubmitted(job("mine", asked, project="owner", submit=500))], 10_000)
    assert "mine" in {d.job_id for d in out if isinstance(d, Start)}
    assert all(s.job(d.job_id) is not None for d in out if isinstance(d, Preempt))  # requeued, not lost
    s.validate()
