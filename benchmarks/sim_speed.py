"""Simulation-speed benchmark: how fast the digital twin replays national-scale workloads.

Cases (each with fairshare + EASY backfill, the production core driven by ``simulate``):

- ``philly``: the whole Philly job table (82,247 jobs) on the philly fleet; goal <= 20 s;
- ``korea``: 24 simulated hours of korea-2025 at 80% offered load (the calibrated
  synthetic workload, ~320k jobs arriving over those 24 h), simulated up to 24 h; goal
  <= 120 s. ``--drain`` adds ``korea_drain``: the same workload simulated until every job
  has finished (the NPU-bound backlog takes weeks of simulated time to drain).

Per case it prints the job count, wall and CPU seconds of the simulation (scenario loading
is reported apart), jobs per wall second, simulated hours per wall hour, and the main
metrics (JCT, queueing delay, utilisation) so that a change in behaviour shows next to a
change in speed. ``context`` quotes the published figures of other schedulers.

Prints ONE JSON object on stdout. Not a test: numbers depend on the machine (``machine``
says how loaded it was; CPU seconds are less sensitive to other processes than wall).

    .venv/bin/python benchmarks/sim_speed.py                 # both cases (a few minutes)
    .venv/bin/python benchmarks/sim_speed.py --case philly
    .venv/bin/python benchmarks/sim_speed.py --small         # tiny, for the smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from gpupool.sim.metrics import compute_metrics
from gpupool.sim.scenario import Scenario, build_scenario, run_policies
from gpupool.sim.simulator import SimConfig

POLICY = "fairshare+easy"
GOALS_S = {"philly": 20.0, "korea": 120.0, "korea_drain": 120.0}
HOUR_MS = 3_600_000
#: simulated time per case (None: until every job has finished)
HORIZON_H: dict[str, float | None] = {"philly": None, "korea": 24.0, "korea_drain": None}
CONTEXT = {
    "slurm": "500 jobs/s sustained throughput documented (Slurm high-throughput computing guide)",
    "kueue": "~43 workloads admitted/s in Kueue's own CI performance test",
    "kai_scheduler": "3-4 minute scheduling cycles reported at 1,000 nodes",
    "note": (
        "peer figures are for live schedulers; gpupool's are a discrete-event replay of the same "
        "core (every arrival, finish and cycle), single-threaded Python"
    ),
}
METRIC_KEYS = (
    "finished",
    "unfinished",
    "unschedulable",
    "avg_jct_s",
    "p50_jct_s",
    "p99_jct_s",
    "avg_queue_s",
    "utilization",
    "preemptions",
    "cycles",
    "cycle_ms_p50",
    "cycle_ms_p99",
    "cycle_ms_max",
)


def _scenario(case: str, small: bool, seed: int) -> Scenario:
    if case == "philly":
        sc = build_scenario("philly", None, "philly", seed=seed)
        if small:
            sc.jobs = sorted(sc.jobs, key=lambda j: j.submit_ms)[:1500]
        return sc
    if case in ("korea", "korea_drain"):
        sc = build_scenario(
            "korea-2025", None, "synthetic", load=0.8, hours=0.1 if small else 24.0, seed=seed
        )
        if small:
            sc.jobs = sorted(sc.jobs, key=lambda j: j.submit_ms)[:2000]
        return sc
    raise ValueError(f"unknown case {case!r}")


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def run_case(case: str, small: bool, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    sc = _scenario(case, small, seed)
    load_s = time.perf_counter() - t0
    horizon_h = HORIZON_H[case]
    horizon_ms = None if horizon_h is None or small else int(horizon_h * HOUR_MS)
    w0, c0 = time.perf_counter(), time.process_time()
    (result,) = run_policies(sc, [POLICY], sim=SimConfig(horizon_ms=horizon_ms))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    m = compute_metrics(result)
    first = min((j.submit_ms for j in result.jobs), default=0)
    last = max([result.sim_end_ms, *(j.end_ms for j in result.jobs if j.end_ms >= 0)])
    if horizon_ms is not None:
        last = min(last, first + horizon_ms)
    sim_hours = (last - first) / HOUR_MS
    goal = GOALS_S[case]
    return {
        "scenario": sc.context,
        "policy": POLICY,
        "jobs": len(sc.jobs),
        "horizon_h": None if horizon_ms is None else horizon_ms / HOUR_MS,
        "load_scenario_s": round(load_s, 3),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "jobs_per_wall_s": round(len(sc.jobs) / wall, 1) if wall > 0 else None,
        "sim_hours": round(sim_hours, 3),
        "sim_hours_per_wall_hour": round(sim_hours / (wall / 3600.0), 1) if wall > 0 else None,
        **{k: _round(m.get(k)) for k in METRIC_KEYS},
        "goal_wall_s": goal,
        "meets_goal": wall <= goal,
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", "--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--case", choices=["philly", "korea", "korea_drain", "all"], default="all")
    ap.add_argument("--drain", action="store_true", help="with --case all: add korea_drain")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cases = ["philly", "korea"] if args.case == "all" else [args.case]
    if args.drain and args.case == "all":
        cases.append("korea_drain")
    out: dict[str, Any] = {"benchmark": "sim_speed", "size": "small" if args.small else "full"}
    for case in cases:
        out[case] = run_case(case, args.small, args.seed)
    out["context"] = CONTEXT
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["peak_rss_mib"] = round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)
    out["machine"] = {
        "python": platform.python_version(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
