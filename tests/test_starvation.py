"""No job starves: the starvation bound of every pass, and the wanted-set pass's preemptions.

The wanted-set policies (srtf, las, tiresias) skip a job that does not fit what is left;
without a bound a wide gang waited forever behind a stream of narrower jobs. These tests
run the twin on small fleets and read when each job first started.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gpupool.cli.main import app
from gpupool.core.decisions import Preempt, Reason, Start
from gpupool.core.events import JobCancelled, JobSubmitted
from gpupool.core.fleet import Level
from gpupool.core.job_state import JobState
from gpupool.core.policies import get_policy
from gpupool.core.pool_state import PoolState
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.starvation import StarvingJobs
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import fleet, job, tenants

HOUR_S = 3_600


def wj(id: str, submit_s: float, dur_s: float, gpus: int, tenant: str = "p") -> WorkloadJob:
    return WorkloadJob(id, int(submit_s * 1000), int(dur_s * 1000), gpus, tenant)


def _stream_and_a_gang(hours: int) -> list[WorkloadJob]:
    # 16 accelerators; a 16-wide gang of 10 h behind a stream of 8-wide 1-hour jobs, one
    # every 30 minutes for ``hours``: some narrow job always runs and always fits beside it
    jobs = [wj(f"s{i}", i * 1_800, HOUR_S, 8) for i in range(2 * hours)]
    jobs.append(wj("wide", 10, 10 * HOUR_S, 16))
    return jobs


def _first_start_h(policy: str, starvation_ms: int, hours: int = 48, backfill: str = "none") -> float:
    cfg = SimConfig(SchedulerConfig(policy=policy, backfill=backfill, starvation_ms=starvation_ms))
    result = simulate(fleet(racks=1, nodes_per_rack=2), tenants("p"), _stream_and_a_gang(hours), cfg)
    rec = next(r for r in result.jobs if r.id == "wide")
    assert rec.state == "finished"
    return rec.first_start_ms / 3_600_000


def test_a_wide_gang_behind_a_stream_of_narrow_jobs_starts_at_the_bound() -> None:
    # srtf: the gang has the most remaining time, so without a bound it waits for the
    # stream to end (48 h); with a 3-hour bound it is taken first and starts soon after
    for policy in ("srtf", "las"):
        unbounded = _first_start_h(policy, starvation_ms=10**12)
        bounded = _first_start_h(policy, starvation_ms=3 * HOUR_S * 1000)
        assert bounded <= 3 + 1.5, (policy, bounded)  # the bound, then the running job's quantum/end
        if policy == "srtf":
            assert unbounded >= 47, unbounded


@pytest.mark.parametrize("backfill", ["none", "easy"])
def test_queue_pass_serves_a_starving_job_before_its_order(backfill: str) -> None:
    # sjf orders the stream of 1-hour jobs before the 10-hour gang, and some short job is
    # always pending: without a bound the gang waits for the stream to end (strict order
    # blocks only behind the head; EASY reserves for the head, a short job); with a 3-hour
    # bound it is tried first, blocks or reserves its pool, and starts when the running
    # short jobs end
    unbounded = _first_start_h("sjf", 10**12, backfill=backfill)
    bounded = _first_start_h("sjf", 3 * HOUR_S * 1000, backfill=backfill)
    assert unbounded >= 40, unbounded
    assert bounded <= 3 + 1.5, bounded


def test_wanted_set_pass_keeps_the_borrowing_limit() -> None:
    # capped may hold at most 4 (guarantee 2 + borrow 2): under las both its 4-wide jobs ran
    # on an idle fleet before the limit was checked in this pass (an 8-wide one is refused
    # at submission now: it could never start)
    t = tenants("capped", "free", capped={"guaranteed": {"H100": 2}, "borrow_limit": {"H100": 2}})
    s = Scheduler(fleet(racks=1, nodes_per_rack=2), t, SchedulerConfig(policy="las"))
    d = s.handle(
        [JobSubmitted(job("first", 4, project="capped")), JobSubmitted(job("second", 4, project="capped"))], 0
    )
    started = {x.job_id for x in d if isinstance(x, Start)}
    assert started == {"first"}
    second = s.job("second")
    assert second is not None and second.reason is Reason.BORROW_LIMIT
    s.validate()


def test_no_victim_is_preempted_for_a_job_that_has_no_placement_after_all() -> None:
    # Two 8-GPU nodes. node0: b (old) and x (young, inside its quantum); node1: c and d.
    # A one-node gang g of 8 is first in LAS order: x is kept (quantum), c fits, d and b
    # fall out of the wanted set, but freeing them leaves 4 + 4 on two nodes and no node
    # for g. Preempting them before planning threw two jobs' work away for nothing.
    h = 3_600_000
    s = Scheduler(fleet(racks=1, nodes_per_rack=2), tenants("p"), SchedulerConfig(policy="las"))
    s.handle([JobSubmitted(job("a", 4)), JobSubmitted(job("b", 4))], 0)
    s.handle([JobSubmitted(job("c", 4, submit=h)), JobSubmitted(job("d", 4, submit=h))], h)
    d = s.handle([JobCancelled("a"), JobSubmitted(job("x", 4, submit=3 * h))], 3 * h)
    assert "x" in {e.job_id for e in d if isinstance(e, Start)}
    d = s.handle([JobSubmitted(job("g", 8, submit=3 * h + 60_000, topology=Level.NODE))], 3 * h + 60_000)
    assert [e for e in d if isinstance(e, Preempt | Start)] == []
    g = s.job("g")
    assert g is not None and g.reason is Reason.TOPOLOGY
    s.validate()


def _at(starving: StarvingJobs, now: int) -> tuple[list[JobState], list[JobState]]:
    return list(starving.pending(now)), starving.protected(now)


def test_starving_jobs_cross_the_bound_once_and_count_anew_after_a_start() -> None:
    h = 3_600_000
    cfg = SchedulerConfig(policy="las", starvation_ms=2 * h)
    state = PoolState(fleet(racks=1, nodes_per_rack=2), tenants("p"), cfg, get_policy("las"))
    spec = job("a", 8)
    p, cands, cset = state.admit(spec)
    a = state.new_job(spec, p, cands, spec.rank, cset)
    state.enqueue(a)
    starving = StarvingJobs(state)
    assert _at(starving, 2 * h - 1) == ([], [])
    assert _at(starving, 2 * h) == ([a], [])
    state.start(a, 0, [(0, 8)], 3 * h, [])
    # served: protected for the quantum, then ordered as any other job
    assert _at(starving, 3 * h + 1) == ([], [a])
    assert _at(starving, 3 * h + 1_260_000) == ([], [])
    state.stop(a, 4 * h)
    state.enqueue(a)
    # its wait counts from its start: 2 h more pending, not at once
    assert _at(starving, 4 * h + 1) == ([], [])
    assert _at(starving, 6 * h - 1) == ([], [])
    assert _at(starving, 6 * h) == ([a], [])


def test_the_starvation_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="starvation_ms"):
        SchedulerConfig(starvation_ms=0)


def test_cli_takes_the_bound_in_hours_and_refuses_a_bound_of_zero() -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["simulate", "--starvation-hours", "0"])
    assert bad.exit_code == 2 and "--starvation-hours" in bad.output
    ok = runner.invoke(
        app, ["simulate", "--policy", "las", "--hours", "1", "--starvation-hours", "0.5", "--json"]
    )
    assert ok.exit_code == 0, ok.output
    assert '"unfinished": 0' in ok.output
