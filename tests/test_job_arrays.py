"""Job arrays in the core: the text form, the %N limit, a window of tasks, cancel, dependencies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.core.array_spec import ArrayError, ArraySpec, format_array, parse_array
from gpupool.core.decisions import Decision, Start
from gpupool.core.dependencies import parse_dependencies
from gpupool.core.events import JobCancelled, JobFinished, JobSubmitted
from gpupool.core.job_arrays import WINDOW
from gpupool.core.scheduler import Scheduler, SchedulerConfig

from .builders import fleet, job, tenants


def starts(ds: list[Decision]) -> list[Start]:
    return [d for d in ds if isinstance(d, Start)]


def sched(nodes: int = 2) -> Scheduler:
    return Scheduler(
        fleet(racks=1, nodes_per_rack=nodes, gpus=8), tenants("p"), SchedulerConfig(policy="fifo")
    )


def test_parse_ranges_steps_lists_and_limits() -> None:
    assert parse_array("0-3") == ArraySpec((0, 1, 2, 3))
    assert parse_array("0-9:3%2") == ArraySpec((0, 3, 6, 9), 2)
    assert parse_array("1,3,5-7") == ArraySpec((1, 3, 5, 6, 7))
    assert format_array(parse_array("5-7,1,3%4")) == "1,3,5-7%4"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "not an index"),
        ("3-1", "ends before"),
        ("0-9%0", "limit"),
        ("0-9:0", "step"),
        ("0-999999", "at most"),
    ],
)
def test_parse_refuses_bad_text(text: str, words: str) -> None:
    with pytest.raises(ArrayError, match=words):
        parse_array(text)


@settings(max_examples=80, deadline=None)
@given(st.sets(st.integers(0, 500), min_size=1, max_size=40), st.integers(0, 9))
def test_format_and_parse_round_trip(indices: set[int], limit: int) -> None:
    a = ArraySpec(tuple(sorted(indices)), limit)
    assert parse_array(format_array(a)) == a


def test_a_limited_array_runs_at_most_n_tasks_at_once_in_index_order() -> None:
    s = sched(nodes=2)  # 16 GPUs: room for 16 one-GPU tasks
    d = s.handle([JobSubmitted(job("j7", 1, array=parse_array("0-9%3")))], 0)
    assert [x.job_id for x in starts(d)] == ["j7_0", "j7_1", "j7_2"]
    d = s.handle([JobFinished("j7_1", "j7_1#1")], 10)
    assert [x.job_id for x in starts(d)] == ["j7_3"]
    assert s.pending_count == 0  # the rest wait outside the queue


def test_an_unlimited_array_fills_free_accelerators_in_one_handle() -> None:
    s = sched(nodes=2)
    d = s.handle([JobSubmitted(job("a", 1, array=parse_array("0-99")))], 0)
    assert len(starts(d)) == 16
    assert s.pending_count <= WINDOW  # the queue holds a window, not 84 tasks


def test_ten_thousand_tasks_are_one_submission_and_a_window_in_the_queue() -> None:
    s = sched(nodes=1)
    d = s.handle([JobSubmitted(job("big", 8, array=parse_array("0-9999")))], 0)
    assert [x.job_id for x in starts(d)] == ["big_0"]
    assert s.pending_count == WINDOW and len(s.jobs) == WINDOW + 1  # topped up after the start
    assert len(s.arrays.arrays["big"].states) == 10_000


def test_cancel_one_task_and_then_the_whole_array() -> None:
    s = sched(nodes=1)
    d = s.handle([JobSubmitted(job("a", 8, array=parse_array("0-4%1")))], 0)
    assert [x.job_id for x in starts(d)] == ["a_0"]
    s.handle([JobCancelled("a_2")], 1)  # not queued yet: skipped when its turn comes
    d = s.handle([JobFinished("a_0", "a_0#1")], 2)
    assert [x.job_id for x in starts(d)] == ["a_1"]
    d = s.handle([JobFinished("a_1", "a_1#1")], 3)
    assert [x.job_id for x in starts(d)] == ["a_3"]
    d = s.handle([JobCancelled("a")], 4)
    assert [x.job_id for x in d if type(x).__name__ == "Stop"] == ["a_3"]
    assert "a" not in s.arrays.arrays and not s.jobs and s.pending_count == 0


def test_afterok_on_an_array_waits_for_every_task_and_afterany_on_one_task() -> None:
    s = sched(nodes=1)
    d = s.handle(
        [
            JobSubmitted(job("a", 8, array=parse_array("0-1"))),
            JobSubmitted(job("after_all", 8, dependencies=parse_dependencies("afterok:a"))),
            JobSubmitted(job("after_0", 8, dependencies=parse_dependencies("afterany:a_0"))),
        ],
        0,
    )
    assert [x.job_id for x in starts(d)] == ["a_0"]
    d = s.handle([JobFinished("a_0", "a_0#1")], 1)
    # a_1 was queued first; after_0 waits behind it
    assert [x.job_id for x in starts(d)] == ["a_1"]
    assert "after_all" in s.held and s.job("after_0") is not None
    d = s.handle([JobFinished("a_1", "a_1#1")], 2)
    assert [x.job_id for x in starts(d)] == ["after_0"]
    assert s.job("after_all") is not None  # released: every task completed


def test_a_failed_task_fails_the_array_for_afterok() -> None:
    s = sched(nodes=1)
    d = s.handle(
        [
            JobSubmitted(job("a", 8, array=parse_array("0-1"))),
            JobSubmitted(job("b", 8, dependencies=parse_dependencies("afterok:a"))),
        ],
        0,
    )
    s.handle([JobFinished("a_0", "a_0#1", "failed")], 1)
    d = s.handle([JobFinished("a_1", "a_1#1")], 2)
    assert [(x.job_id, x.reason.value) for x in d if type(x).__name__ == "Reject"] == [
        ("b", "dependency-never-met")
    ]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(0, 6),
    st.integers(1, 8),
    st.lists(st.booleans(), min_size=1, max_size=60),
)
def test_every_task_runs_once_and_never_more_than_the_limit_at_once(
    n: int, limit: int, gpus: int, fails: list[bool]
) -> None:
    s = sched(nodes=2)
    text = f"0-{n - 1}" + (f"%{limit}" if limit else "")
    ds = s.handle([JobSubmitted(job("a", gpus, array=parse_array(text)))], 0)
    started: list[str] = []
    for step in range(10 * n + 10):
        started += [d.job_id for d in starts(ds)]
        running = [j for j in s.running.values() if j.spec.id.startswith("a_")]
        if limit:
            assert len(running) <= limit
        if not running:
            break
        j = running[0]
        outcome = "failed" if fails[step % len(fails)] else "completed"
        ds = s.handle([JobFinished(j.spec.id, j.allocation_id, outcome)], step + 1)
    assert sorted(started) == sorted(f"a_{i}" for i in range(n))  # each once
    assert "a" not in s.arrays.arrays and not s.jobs
    s.validate()
