"""No starvation, as a property (Hypothesis) over every registered policy.

Random small workloads on a small fleet, with and without EASY for the queueing policies:
the twin runs each to completion with its stall detection on (``SimulationStuck`` is a
failure), and every job the fleet could run must have finished. The starvation bound is
short (2 h) so that it is reached inside these small runs.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupool.core.policies import LISTING, Pass
from gpupool.core.scheduler import SchedulerConfig
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.workload import WorkloadJob

from .builders import fleet, tenants

# every registered policy (a new one is tested too); the queueing ones also with EASY
CASES = [(p.name, "none") for p in LISTING] + [(p.name, "easy") for p in LISTING if p.cycle is Pass.QUEUE]
FLEET_GPUS = 16  # two 8-GPU nodes in one rack


@st.composite
def workloads(draw: st.DrawFn) -> list[WorkloadJob]:
    """Up to 10 jobs of 1-16 accelerators (each fits the fleet), 5 min to 6 h, two tenants."""
    n = draw(st.integers(1, 10))
    jobs = []
    for i in range(n):
        jobs.append(
            WorkloadJob(
                f"j{i}",
                draw(st.integers(0, 8 * 3_600)) * 1000,
                draw(st.integers(300, 6 * 3_600)) * 1000,
                draw(st.sampled_from([1, 2, 4, 8, 12, 16])),
                draw(st.sampled_from(["a", "b"])),
            )
        )
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize(("policy", "backfill"), CASES)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=workloads())
def test_every_job_the_fleet_can_run_eventually_finishes(
    policy: str, backfill: str, jobs: list[WorkloadJob]
) -> None:
    cfg = SimConfig(SchedulerConfig(policy=policy, backfill=backfill, starvation_ms=2 * 3_600_000))
    result = simulate(fleet(racks=1, nodes_per_rack=2), tenants("a", "b"), jobs, cfg)
    unfinished = [(r.id, r.state) for r in result.jobs if r.state != "finished"]
    assert unfinished == [], unfinished
