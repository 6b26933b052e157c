"""Job dependencies in the core: parsing, the rules, held jobs released or ended on events."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.core.decisions import Decision, Explain, Reason, Reject, Start
from gpupool.core.dependencies import (
    Dependency,
    DependencyError,
    DependencyKind,
    Milestone,
    Verdict,
    find_cycle,
    format_dependencies,
    parse_dependencies,
    verdict,
)
from gpupool.core.events import JobCancelled, JobFinished, JobSubmitted
from gpupool.core.scheduler import Scheduler, SchedulerConfig

from .builders import fleet, job, tenants

K = DependencyKind


def starts(ds: list[Decision]) -> list[str]:
    return [d.job_id for d in ds if isinstance(d, Start)]


def alloc(ds: list[Decision], jid: str) -> str:
    return next(d.allocation_id for d in ds if isinstance(d, Start) and d.job_id == jid)


def sched(policy: str = "fifo") -> Scheduler:
    return Scheduler(fleet(racks=1, nodes_per_rack=1, gpus=8), tenants("p"), SchedulerConfig(policy=policy))


def dep(text: str) -> tuple[Dependency, ...]:
    return parse_dependencies(text)


# -- the text form and the rules -------------------------------------------------------


def test_parse_reads_slurm_syntax_and_drops_repeats() -> None:
    assert dep("afterok:j1:j2,afterany:j3,afterok:j1") == (
        Dependency(K.AFTEROK, "j1"),
        Dependency(K.AFTEROK, "j2"),
        Dependency(K.AFTERANY, "j3"),
    )
    assert dep("") == ()
    assert format_dependencies(dep("afterok:j1:j2,after:j3")) == "afterok:j1:j2,after:j3"


@pytest.mark.parametrize(
    "text,words",
    [
        ("afterwards:j1", "unknown dependency type"),
        ("afterok", "names no job"),
        ("afterok:j1::j2", "not a job id"),
    ],
)
def test_parse_refuses_bad_text_saying_what(text: str, words: str) -> None:
    with pytest.raises(DependencyError, match=words):
        parse_dependencies(text)


def test_verdicts_follow_slurm() -> None:
    S, OK, NOK = Milestone.STARTED, Milestone.SUCCEEDED, Milestone.FAILED
    table = {
        K.AFTER: (Verdict.WAIT, Verdict.MET, Verdict.MET, Verdict.MET),
        K.AFTERANY: (Verdict.WAIT, Verdict.WAIT, Verdict.MET, Verdict.MET),
        K.AFTEROK: (Verdict.WAIT, Verdict.WAIT, Verdict.MET, Verdict.NEVER),
        K.AFTERNOTOK: (Verdict.WAIT, Verdict.WAIT, Verdict.NEVER, Verdict.MET),
    }
    for kind, row in table.items():
        assert tuple(verdict(kind, m) for m in (None, S, OK, NOK)) == row, kind


def test_find_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": ["x"]}) == ["x", "x"]


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdefg"), st.lists(st.sampled_from("abcdefg"), max_size=3), max_size=7)
)
def test_find_cycle_finds_a_real_cycle_or_the_graph_orders(edges: dict[str, list[str]]) -> None:
    cyc = find_cycle(edges)
    if cyc is not None:
        assert cyc[0] == cyc[-1] and all(b in edges.get(a, []) for a, b in itertools.pairwise(cyc))
        return
    # acyclic: a topological order exists (repeatedly remove nodes with no dependency left)
    left = {k: set(v) for k, v in edges.items()}
    nodes = set(left) | {n for v in left.values() for n in v}
    done: set[str] = set()
    while len(done) < len(nodes):
        ready = {n for n in nodes - done if left.get(n, set()) <= done}
        assert ready
        done |= ready


# -- held jobs in the scheduler --------------------------------------------------------


def test_an_afterok_chain_of_three_runs_in_order() -> None:
    s = sched()
    d = s.handle(
        [
            JobSubmitted(job("a", 8)),
            JobSubmitted(job("b", 8, dependencies=dep("afterok:a"))),
            JobSubmitted(job("c", 8, dependencies=dep("afterok:b"))),
        ],
        0,
    )
    assert starts(d) == ["a"]
    waits = {x.job_id: x for x in d if isinstance(x, Explain) and x.reason is Reason.DEPENDENCY}
    assert waits["b"].detail == "waiting for dependency a (afterok)"
    assert waits["c"].detail == "waiting for dependency b (afterok)"
    assert s.pending_count == 0 and len(s.held) == 2  # held jobs are in no queue
    d = s.handle([JobFinished("a", alloc(d, "a"))], 10)
    assert starts(d) == ["b"]
    d = s.handle([JobFinished("b", alloc(d, "b"))], 20)
    assert starts(d) == ["c"]
    assert len(s.held) == 0
    s.validate()


def test_held_job_does_not_take_free_accelerators_a_later_job_gets_them() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=2, gpus=8), tenants("p"), SchedulerConfig(policy="fifo"))
    d = s.handle(
        [
            JobSubmitted(job("a", 8)),
            JobSubmitted(job("b", 8, dependencies=dep("afterany:a"))),
            JobSubmitted(job("c", 8, submit=1)),
        ],
        0,
    )
    assert starts(d) == ["a", "c"]


def test_afterok_on_a_failed_job_ends_the_chain_with_the_reason() -> None:
    s = sched()
    d = s.handle(
        [
            JobSubmitted(job("a", 8)),
            JobSubmitted(job("b", 8, dependencies=dep("afterok:a"))),
            JobSubmitted(job("c", 8, dependencies=dep("afterany:b"))),
            JobSubmitted(job("d", 8, dependencies=dep("afternotok:a"))),
        ],
        0,
    )
    d = s.handle([JobFinished("a", alloc(d, "a"), "failed")], 5)
    rej = {x.job_id: x for x in d if isinstance(x, Reject)}
    assert set(rej) == {"b"}
    assert rej["b"].reason is Reason.DEPENDENCY_NEVER_MET
    assert rej["b"].detail == "dependency afterok:a can never be met: a did not complete"
    # b's end is an end: c (afterany on b) and d (afternotok on a) are released; d, released
    # first (a's direct dependant), enters the queue first and starts on the one node
    assert starts(d) == ["d"]
    assert s.job("c") is not None
    assert s.pending_count == 1 and len(s.held) == 0


def test_afternotok_on_a_completed_job_is_never_met() -> None:
    s = sched()
    d = s.handle([JobSubmitted(job("a", 8)), JobSubmitted(job("b", 8, dependencies=dep("afternotok:a")))], 0)
    d = s.handle([JobFinished("a", alloc(d, "a"))], 5)
    assert [(x.job_id, x.reason) for x in d if isinstance(x, Reject)] == [("b", Reason.DEPENDENCY_NEVER_MET)]


def test_after_releases_when_the_job_starts_in_the_same_cycle() -> None:
    s = Scheduler(fleet(racks=1, nodes_per_rack=2, gpus=8), tenants("p"), SchedulerConfig(policy="fifo"))
    d = s.handle([JobSubmitted(job("a", 8)), JobSubmitted(job("b", 8, dependencies=dep("after:a")))], 0)
    assert starts(d) == ["a", "b"]  # b is queued after a's start and the cycle runs again


def test_cancelling_a_held_job_tells_its_dependants() -> None:
    s = sched()
    d = s.handle(
        [
            JobSubmitted(job("a", 8)),
            JobSubmitted(job("b", 8, dependencies=dep("afterok:a"))),
            JobSubmitted(job("c", 8, dependencies=dep("afterok:b"))),
        ],
        0,
    )
    d = s.handle([JobCancelled("b")], 1)
    assert [(x.job_id, x.reason) for x in d if isinstance(x, Reject)] == [("c", Reason.DEPENDENCY_NEVER_MET)]
    assert len(s.held) == 0


def test_dependency_on_a_forgotten_job_uses_what_the_driver_settled() -> None:
    s = sched()
    d = s.handle([JobSubmitted(job("a", 8))], 0)
    s.handle([JobFinished("a", alloc(d, "a"))], 5)  # the core forgets a
    d = s.handle([JobSubmitted(job("b", 8, dependencies=dep("afterok:a")), (("a", Milestone.SUCCEEDED),))], 6)
    assert starts(d) == ["b"]
    d = s.handle([JobSubmitted(job("c", 8, dependencies=dep("afterok:zz")))], 7)
    rej = [x for x in d if isinstance(x, Reject)]
    assert rej and rej[0].detail == "dependency afterok:zz: no job zz"


def test_a_job_ended_earlier_in_the_same_batch_is_known_to_a_later_submission() -> None:
    s = sched()
    d = s.handle([JobSubmitted(job("a", 8))], 0)
    d = s.handle(
        [JobFinished("a", alloc(d, "a")), JobSubmitted(job("b", 8, dependencies=dep("afterok:a")))], 5
    )
    assert starts(d) == ["b"]


def test_a_duplicate_id_rejected_does_not_doom_the_real_jobs_dependants() -> None:
    s = sched()
    d = s.handle([JobSubmitted(job("a", 8)), JobSubmitted(job("b", 8, dependencies=dep("afterok:a")))], 0)
    d2 = s.handle([JobSubmitted(job("a", 8))], 1)
    assert [x.job_id for x in d2 if isinstance(x, Reject)] == ["a"]
    assert "b" in s.held
    d = s.handle([JobFinished("a", alloc(d, "a"))], 2)
    assert starts(d) == ["b"]


def test_a_self_dependency_is_invalid() -> None:
    s = sched()
    d = s.handle([JobSubmitted(job("a", 8, dependencies=dep("afterok:a")))], 0)
    rej = [x for x in d if isinstance(x, Reject)]
    assert rej and rej[0].reason is Reason.INVALID and "dependency" in rej[0].detail


def test_no_dependency_decides_exactly_as_before() -> None:
    """Jobs without dependencies meet no held-job code path that changes a decision."""
    a, b = sched("las"), sched("las")
    specs = [job(f"x{i}", 1 + i % 8, submit=i) for i in range(30)]
    da = a.handle([JobSubmitted(x) for x in specs], 0)
    db = b.handle([JobSubmitted(x) for x in specs], 0)
    assert da == db and len(a.held) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.sampled_from(list(K)), st.integers(0, 20)), max_size=3),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_job_starts_only_when_its_dependencies_hold_and_none_waits_forever(
    jobs: list[tuple[list[tuple[DependencyKind, int]], bool]],
) -> None:
    """Random pipelines (each job names earlier ones; each job fails or completes): a job
    starts only once every dependency is met, is rejected only when one never can be, and
    when nothing runs any more no job is left held or queued."""
    s = Scheduler(fleet(racks=1, nodes_per_rack=2, gpus=8), tenants("p"), SchedulerConfig(policy="fifo"))
    specs = []
    for i, (deps, _) in enumerate(jobs):
        named = tuple(dict.fromkeys(Dependency(k, f"x{t % i}") for k, t in deps)) if i else ()
        specs.append(job(f"x{i}", 8, submit=i, dependencies=named))
    ok = {f"x{i}": good for i, (_, good) in enumerate(jobs)}
    milestone: dict[str, Milestone] = {}
    now = 0
    ds = s.handle([JobSubmitted(x) for x in specs], now)
    for _ in range(100):
        for d in ds:
            if isinstance(d, Start):
                spec = next(x for x in specs if x.id == d.job_id)
                for dp in spec.dependencies:  # every dependency holds at its start
                    assert verdict(dp.kind, milestone.get(dp.job_id)) is Verdict.MET, (d, milestone)
                milestone[d.job_id] = Milestone.STARTED
            elif isinstance(d, Reject):
                assert d.reason is Reason.DEPENDENCY_NEVER_MET
                spec = next(x for x in specs if x.id == d.job_id)
                assert any(
                    verdict(dp.kind, milestone.get(dp.job_id)) is Verdict.NEVER for dp in spec.dependencies
                )
                milestone[d.job_id] = Milestone.FAILED
        running = list(s.running.values())
        if not running:
            break
        now += 10
        ends = []
        for j in running:
            good = ok[j.spec.id]
            milestone[j.spec.id] = Milestone.SUCCEEDED if good else Milestone.FAILED
            ends.append(JobFinished(j.spec.id, j.allocation_id, "completed" if good else "failed"))
        ds = s.handle(ends, now)
    assert not s.running and s.pending_count == 0 and len(s.held) == 0
    assert set(milestone) == set(ok)  # every job either ran or was ended
