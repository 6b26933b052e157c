"""EASY backfill on a mixed fleet when a third of the jobs accept only named models (issue 12, item 5).

Issue 12 reported that with several thousand jobs submitted at once on a fleet of several
accelerator models, where about a third of the jobs accept only named models, every
``+easy`` policy placed only about 85 % of the GPUs (without named models every policy
filled the fleet). This benchmark builds that shape: 512 GPUs (16 eight-GPU nodes of each
of H100, H200, B200 and GB200), 4,000 jobs submitted at t=0 by 8 projects (sizes 1-16,
run times log-normal around 2 h, walltimes 1-3x the run time), and, in the named case, a
deterministic third of them naming one or two models. It drives the production
``Scheduler`` through starts and finishes (queue policies do not preempt here: no
guarantees) for 24 simulated hours and reports, per ``+easy`` policy and per case:

- ``placed_first_cycle``: the share of GPUs busy after the first cycle;
- ``utilisation``: busy GPU-time over the first ``--hours`` (24; thousands of jobs wait all along);
- ``min_placed_while_waiting``: the lowest share busy after any cycle with >= 1,000 jobs waiting;
- ``cpu_s``: the process time of the run.

Usage: ``python benchmarks/easy_named_models.py [--jobs N] [--hours H] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpupool.core.decisions import Start
from gpupool.core.events import Event, JobFinished, JobSubmitted
from gpupool.core.fleet import Fleet, FleetBuilder
from gpupool.core.job import JobSpec
from gpupool.core.policies import POLICIES, get_policy
from gpupool.core.policies.base import Pass
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.tenancy import Tenancy, TenancyBuilder
from gpupool.fleetfile import load_fleet

MODELS = ("H100", "H200", "B200", "GB200")
H = 3_600_000


def mixed_fleet(nodes_per_model: int = 16) -> Fleet:
    b = FleetBuilder("mixed-512", load_fleet("demo").catalogue)
    b.add_site("s")
    ci = b.add_cluster("c0", "s")
    bi = b.add_block(ci, "b0")
    for m in MODELS:
        ri = b.add_rack(bi, f"r-{m}")
        b.add_nodes(ri, nodes_per_model, m, 8, [f"{m.lower()}-{i}" for i in range(nodes_per_model)])
    return b.build()


def projects(n: int = 8) -> Tenancy:
    b = TenancyBuilder("mixed")
    s = b.add(-1, "sector")
    for i in range(n):
        b.add(s, f"p{i}")
    return b.build()


def workload(n: int, named: bool, seed: int = 0) -> list[JobSpec]:
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        gpus = rng.choices((1, 2, 4, 8, 16), weights=(40, 15, 15, 20, 10))[0]
        run = min(48 * H, max(60_000, int(rng.lognormvariate(0, 1.2) * 2 * H)))
        wall = int(run * rng.uniform(1.0, 3.0))
        # the same draws in both cases: only whether the job names its models differs
        pick = rng.random()
        k = rng.choice((1, 2))
        models = tuple(sorted(rng.sample(MODELS, k)))
        spec = JobSpec(
            id=f"j{i}", project=f"p{i % 8}", gpus=gpus, submit_ms=0, walltime_ms=wall, duration_hint_ms=run
        )
        if named and pick < 1 / 3:
            spec = replace(spec, models=models)
        jobs.append(spec)
    return jobs


def run(policy: str, jobs: list[JobSpec], hours: float) -> dict[str, Any]:
    fleet = mixed_fleet()
    total = sum(fleet.gpus_by_model().values())
    s = Scheduler(fleet, projects(), SchedulerConfig(policy=policy, backfill="easy"))
    run_ms = {j.id: j.duration_hint_ms for j in jobs}
    horizon = int(hours * H)
    t0 = time.process_time()
    ends: list[tuple[int, str, str]] = []
    events: list[Event] = [JobSubmitted(j) for j in jobs]
    now = 0
    busy_ms = 0.0
    first = -1.0
    low = 1.0
    cycles = 0
    while now < horizon:
        for d in s.handle(events, now):
            if isinstance(d, Start):
                heapq.heappush(ends, (now + run_ms[d.job_id], d.job_id, d.allocation_id))
        cycles += 1
        busy = s.busy_gpus()
        if first < 0:
            first = busy / total
        if s.pending_count >= 1000:
            low = min(low, busy / total)
        if not ends:
            break
        nxt = min(ends[0][0], horizon)
        busy_ms += busy * (nxt - now)
        now = nxt
        events = []
        while ends and ends[0][0] == now:
            _, jid, alloc = heapq.heappop(ends)
            events.append(JobFinished(jid, alloc))
    return {
        "placed_first_cycle": round(first, 4),
        "utilisation": round(busy_ms / (total * horizon), 4),
        "min_placed_while_waiting": round(low, 4),
        "waiting_at_end": s.pending_count,
        "cycles": cycles,
        "cpu_s": round(time.process_time() - t0, 2),
    }


def easy_policies() -> list[str]:
    """Every registered policy that the queue pass runs (the ones ``+easy`` applies to)."""
    return [p for p in POLICIES if get_policy(p).cycle is Pass.QUEUE]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()
    named = workload(args.jobs, named=True)
    anyw = workload(args.jobs, named=False)
    share = sum(1 for j in named if j.models) / len(named)
    report: dict[str, Any] = {
        "benchmark": "easy_named_models",
        "fleet": "4 models x 16 nodes x 8 GPUs (H100, H200, B200, GB200): 512 GPUs",
        "jobs": args.jobs,
        "named_share": round(share, 3),
        "hours": args.hours,
        "policies": {},
    }
    for p in easy_policies():
        with_names = run(p, named, args.hours)
        without = run(p, anyw, args.hours)
        report["policies"][f"{p}+easy"] = {"named_models": with_names, "any_model": without}
        print(
            f"{p + '+easy':18s} named: first {with_names['placed_first_cycle']:.3f} "
            f"util {with_names['utilisation']:.3f} min {with_names['min_placed_while_waiting']:.3f} | "
            f"any: first {without['placed_first_cycle']:.3f} util {without['utilisation']:.3f} "
            f"min {without['min_placed_while_waiting']:.3f}",
            file=sys.stderr,
        )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
