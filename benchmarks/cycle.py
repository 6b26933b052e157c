"""Cycle benchmark: one scheduling cycle of the core at national scale.

The korea-2025 fleet (~260k accelerators) with its tenancy; a deterministic, realistic job
mix (1 to 1,024 accelerators: mostly 1-8, multi-node gangs of whole 8-GPU nodes or 4-GPU
GB200 trays, a few 512-1,024; any model or a specific one; the tenancy's projects).

Steps, per policy (fairshare+easy first, then fifo+easy for a ratio in the same run):

1. warm-up: submit jobs in small batches until ~20% of the fleet's accelerators are busy;
2. full cycle: ``handle()`` of ONE batch of 100,000 ``JobSubmitted`` events, timed as a
   whole (submission of every job + one cycle over the whole pending queue, which starts
   everything that fits into the 80% free); then one ``Tick`` cycle over what still waits;
3. incremental cycles: each one ``handle()`` of 100 arrivals + 100 completions;
4. (the first policy, unless ``--array-tasks 0``) one job array of 10,000 one-accelerator
   tasks submitted in one ``handle()``, then as many incremental cycles again: the
   incremental cycle before and after the array, in the same run (``array``).

Prints ONE JSON object on stdout. Not a test: numbers depend on the machine.

    .venv/bin/python benchmarks/cycle.py            # full size (about a minute)
    .venv/bin/python benchmarks/cycle.py --small    # tiny, for the smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from gpupool.core.array_spec import parse_array
from gpupool.core.decisions import Decision
from gpupool.core.events import Event, JobFinished, JobSubmitted, Tick
from gpupool.core.fleet import Fleet, Level
from gpupool.core.job import JobSpec, TaskGroup
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.fleetfile import load_fleet, load_tenants

GOALS = {"full_cycle_s": 1.0, "incremental_cycle_p50_ms": 20.0, "peak_rss_mib": 2048.0}

#: accelerators per job and their weight (percent); mostly 1-8, some gangs, a few huge
SIZES = [
    (1, 30.0),
    (2, 10.0),
    (4, 14.0),
    (8, 24.0),
    (16, 6.0),
    (32, 5.0),
    (64, 4.0),
    (128, 3.0),
    (256, 2.0),
    (512, 0.6),
    (1024, 0.3),
]
#: model request and weight: None = any model
MODELS: list[tuple[str | None, float]] = [
    (None, 45.0),
    ("B200", 30.0),
    ("GB200", 10.0),
    ("H200", 8.0),
    ("RTX-PRO-6000", 4.0),
    ("NPU", 3.0),
]
CLASSES = [("normal", 85.0), ("high", 5.0), ("low", 5.0), ("preemptible", 5.0)]
WALLTIMES_H = [1, 2, 4, 8, 12, 24, 48, 72]
HOUR_MS = 3_600_000


class GcClock:
    """Wall seconds spent in the cyclic garbage collector (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._t0 = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._t0

    def total(self) -> float:
        return sum(self.seconds)


GC = GcClock()


def peak_rss_mib() -> float:
    """Peak resident set of this process so far (MiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


class JobMix:
    """A deterministic stream of realistic jobs over a fleet and tenancy."""

    def __init__(self, fleet: Fleet, tenancy: Tenancy, rng: random.Random, fractions: float = 0.0) -> None:
        self.fleet, self.tenancy, self.rng, self.n = fleet, tenancy, rng, 0
        #: share of jobs asking a fraction of one GPU (--fractions): half MIG slices, half shares
        self.fractions = fractions
        t = tenancy
        self._projects = [t.nodes[p].path for p in t.projects]
        self._pweights = [max(1.0, float(sum(t.nodes[p].guaranteed.values()))) for p in t.projects]
        # per project: the models it may use (its cluster affinity restricts them)
        self._models: dict[str, set[str]] = {}
        for p in t.projects:
            node = t.nodes[p]
            affinity = set(node.clusters)  # effective: inherited from the sector if not its own
            self._models[node.path] = {
                nd.model
                for nd in self.fleet.nodes
                if not affinity or self.fleet.clusters[nd.cluster].name in affinity
            }
        self._npus = sorted(
            m for m in {nd.model for nd in self.fleet.nodes} if self.fleet.catalogue[m].stack != "cuda"
        )

    def _pick(self, table: Sequence[tuple[object, float]]) -> object:
        return self.rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]

    def next(self, submit_ms: int) -> JobSpec:
        rng = self.rng
        self.n += 1
        project = rng.choices(self._projects, weights=self._pweights)[0]
        allowed = self._models[project]
        gpus = int(self._pick(SIZES))  # type: ignore[call-overload]
        want = self._pick(MODELS)
        models: tuple[str, ...] = ()
        stacks: tuple[str, ...] = ()
        if want == "NPU":
            npus = [m for m in self._npus if m in allowed]
            if npus:
                models, gpus = (rng.choice(npus),), min(gpus, 8)
        elif isinstance(want, str) and want in allowed:
            models = (want,)
        if not models and allowed & set(self._npus) != allowed:
            stacks = ("cuda",)  # a training job: any NVIDIA accelerator
        topology = Level.CLUSTER
        groups: tuple[TaskGroup, ...] = ()
        if gpus > 8:
            per = 4 if models == ("GB200",) else 8
            if rng.random() < 0.7:
                groups = (TaskGroup(gpus // per, per),)
            if models == ("GB200",) and gpus <= 64:
                topology = Level.NVLINK
            elif gpus <= 256 and rng.random() < 0.2:
                topology = Level.BLOCK
        wall = rng.choice(WALLTIMES_H) * HOUR_MS
        if self.fractions and rng.random() < self.fractions:
            cat = self.fleet.catalogue  # the smallest slice of a partitionable model it may use
            slices = sorted(next(iter(g.profiles)) for m in allowed if (g := cat[m].mig) is not None)
            mig = bool(slices) and rng.random() < 0.5
            return JobSpec(
                id=f"j{self.n}", project=project, gpus=1, submit_ms=submit_ms, stacks=("cuda",),
                walltime_ms=wall, duration_hint_ms=int(wall * rng.uniform(0.2, 1.0)),
                mig=rng.choice(slices) if mig else "", mig_count=1 if mig else 0,
                gpu_fraction=0.0 if mig else rng.choice((0.1, 0.25, 0.5)),
            )  # fmt: skip
        return JobSpec(
            id=f"j{self.n}",
            project=project,
            gpus=gpus,
            submit_ms=submit_ms,
            groups=groups,
            models=models,
            stacks=stacks,
            topology=topology,
            walltime_ms=wall,
            duration_hint_ms=int(wall * rng.uniform(0.2, 1.0)),
            priority_class=str(self._pick(CLASSES)),
            checkpoint_interval_ms=1_800_000 if rng.random() < 0.5 else 0,
        )


def count(decisions: Sequence[Decision]) -> dict[str, int]:
    return dict(sorted(Counter(type(d).__name__ for d in decisions).items()))


def run(
    fleet: Fleet,
    tenancy: Tenancy,
    policy: str,
    backfill: str,
    *,
    pending: int,
    busy_fraction: float,
    cycles: int,
    churn: int,
    seed: int,
    array_tasks: int = 0,
    fractions: float = 0.0,
) -> dict[str, Any]:
    """Warm up, time the full cycle and the incremental ones; return the figures."""
    sched = Scheduler(fleet, tenancy, SchedulerConfig(policy=policy, backfill=backfill))
    mix = JobMix(fleet, tenancy, random.Random(seed), fractions)
    rng = random.Random(seed + 1)
    total = fleet.total_gpus
    now = 0
    # 1. warm-up: ~busy_fraction of the accelerators running
    t0 = time.perf_counter()
    warm_jobs = 0
    while sched.busy_gpus() < busy_fraction * total:
        warm = [JobSubmitted(mix.next(now)) for _ in range(200)]
        warm_jobs += len(warm)
        sched.handle(warm, now)
        now += 1_000
    warm_s = time.perf_counter() - t0
    busy_before = sched.busy_gpus()
    pending_before = sched.pending_count
    # 2. the full cycle: one batch that submits the whole pending queue
    now += 60_000
    events: list[Event] = [JobSubmitted(mix.next(now)) for _ in range(pending)]
    gc.collect()
    g0 = GC.total()
    t0, c0 = time.perf_counter(), time.process_time()
    full = sched.handle(events, now)
    full_s, full_cpu = time.perf_counter() - t0, time.process_time() - c0
    full_gc = GC.total() - g0
    del events
    busy_after = sched.busy_gpus()
    pending_after = sched.pending_count
    now += 1_000
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    tick = sched.handle([Tick()], now)
    tick_s, tick_cpu = time.perf_counter() - t0, time.process_time() - c0
    # the estimated start of every pending job (the live service refreshes them every 2 s)
    t0 = time.perf_counter()
    estimated = sched.estimate_starts(now)
    estimate_s = time.perf_counter() - t0
    # 3. incremental cycles: churn arrivals + churn completions each
    times: list[float] = []
    cpu_times: list[float] = []
    g0 = GC.total()
    inc: Counter[str] = Counter()

    def incremental(times: list[float], cpu_times: list[float]) -> None:
        nonlocal now
        for _ in range(cycles):
            now += 10_000
            running = list(sched.running.values())
            done = rng.sample(running, min(churn, len(running)))
            batch: list[Event] = [JobFinished(j.spec.id, j.allocation_id) for j in done]
            batch += [JobSubmitted(mix.next(now)) for _ in range(churn)]
            t0, c0 = time.perf_counter(), time.process_time()
            got = sched.handle(batch, now)
            times.append((time.perf_counter() - t0) * 1000.0)
            cpu_times.append((time.process_time() - c0) * 1000.0)
            inc.update(type(d).__name__ for d in got)

    incremental(times, cpu_times)
    inc_gc = GC.total() - g0
    times.sort()
    array: dict[str, Any] = {}
    if array_tasks:
        # 4. one array of one-accelerator tasks, then the same incremental cycles again
        now += 10_000
        spec = dataclasses.replace(
            mix.next(now), id="array", gpus=1, groups=(), array=parse_array(f"0-{array_tasks - 1}")
        )
        c0 = time.process_time()
        got = sched.handle([JobSubmitted(spec)], now)
        submit_cpu = time.process_time() - c0
        after: list[float] = []
        after_cpu: list[float] = []
        incremental(after, after_cpu)
        before_p50 = statistics.median(cpu_times) if cpu_times else 0.0
        after_p50 = statistics.median(after_cpu) if after_cpu else 0.0
        a = sched.arrays.arrays.get("array")
        array = {
            "tasks": array_tasks,
            "submit_handle_cpu_s": round(submit_cpu, 4),
            "starts_at_submission": sum(1 for d in got if type(d).__name__ == "Start"),
            "incremental_cycle_cpu_p50_ms_before": round(before_p50, 3),
            "incremental_cycle_cpu_p50_ms_after": round(after_p50, 3),
            "ratio_after_to_before": round(after_p50 / before_p50, 3) if before_p50 > 0 else None,
            "tasks_not_ended_at_end": (len(a.states) - a.ended) if a is not None else 0,
        }

    def pct(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))] if times else 0.0

    # every pending job's reason after the last cycle: "queued" is "not yet considered"
    reasons = Counter(str(j.reason) for j in sched.pending_jobs())
    waiting = sum(reasons.values())
    return {
        "policy": policy + ("+easy" if backfill == "easy" else ""),
        "warmup": {
            "jobs_submitted": warm_jobs,
            "busy_gpus": busy_before,
            "busy_fraction": round(busy_before / total, 4),
            "pending": pending_before,
            "wall_s": round(warm_s, 3),
        },
        "full_cycle_s": round(full_s, 4),
        "full_cycle_cpu_s": round(full_cpu, 4),
        "full_cycle_gc_s": round(full_gc, 4),
        "full_cycle_jobs_per_s": round(pending / full_s) if full_s > 0 else None,
        "busy_fraction_after_full_cycle": round(busy_after / total, 4),
        "pending_after_full_cycle": pending_after,
        "tick_cycle_s": round(tick_s, 4),
        "tick_cycle_cpu_s": round(tick_cpu, 4),
        "estimate_starts_s": round(estimate_s, 4),
        "estimated_jobs": len(estimated),
        "incremental_cycles": cycles,
        "incremental_churn": {"arrivals": churn, "completions": churn},
        "incremental_cycle_p50_ms": round(statistics.median(times), 3) if times else 0.0,
        "incremental_cycle_p99_ms": round(pct(0.99), 3),
        "incremental_cycle_max_ms": round(times[-1], 3) if times else 0.0,
        "incremental_cycle_cpu_p50_ms": round(statistics.median(cpu_times), 3) if cpu_times else 0.0,
        "incremental_gc_s_total": round(inc_gc, 4),
        "decisions": {
            "full_cycle": count(full),
            "tick_cycle": count(tick),
            "incremental_total": dict(sorted(inc.items())),
        },
        "incremental_explains_per_cycle": round(inc.get("Explain", 0) / cycles, 1) if cycles else 0.0,
        "pending_reasons_at_end": dict(sorted(reasons.items())),
        "not_considered_fraction_at_end": round(reasons.get("queued", 0) / waiting, 4) if waiting else 0.0,
        "pending_at_end": sched.pending_count,
        "running_at_end": len(sched.running),
        **({"array": array} if array else {}),
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", "--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--fleet", default="korea-2025")
    ap.add_argument("--pending", type=int, default=None, help="jobs in the full-cycle batch (100,000)")
    ap.add_argument("--cycles", type=int, default=None, help="incremental cycles timed (200)")
    ap.add_argument("--churn", type=int, default=100, help="arrivals and completions per cycle")
    ap.add_argument("--busy", type=float, default=0.2, help="fraction of the fleet busy first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-fifo", action="store_true", help="skip the fifo+easy comparison run")
    ap.add_argument("--array-tasks", type=int, default=None, help="tasks of the array case (10,000; 0: none)")
    ap.add_argument("--fractions", type=float, default=0.0, help="share of jobs asking part of one GPU")
    args = ap.parse_args(argv)
    pending = args.pending if args.pending is not None else (2_000 if args.small else 100_000)
    cycles = args.cycles if args.cycles is not None else (5 if args.small else 200)
    churn = min(args.churn, 20) if args.small else args.churn
    busy = min(args.busy, 0.02) if args.small else args.busy

    t0 = time.perf_counter()
    fleet = load_fleet(args.fleet)
    tenancy = load_tenants(args.fleet, fleet)
    load_s = time.perf_counter() - t0
    kw: dict[str, Any] = dict(pending=pending, busy_fraction=busy, cycles=cycles, churn=churn, seed=args.seed)
    tasks = args.array_tasks if args.array_tasks is not None else (200 if args.small else 10_000)
    kw["fractions"] = args.fractions
    main_run = run(fleet, tenancy, "fairshare", "easy", **kw, array_tasks=tasks)
    rss = peak_rss_mib()  # before the comparison run, so it is this run's peak
    out: dict[str, Any] = {
        "benchmark": "cycle",
        "fleet": args.fleet,
        "gpus": fleet.total_gpus,
        "nodes": len(fleet.nodes),
        "projects": len(tenancy.projects),
        "pending": pending,
        "size": "small" if args.small else "full",
        "full_cycle_mode": (
            f"handle() of one batch of {pending:,} JobSubmitted events: submission of every job "
            "plus one cycle over the whole pending queue (tick_cycle_s: a Tick cycle right after)"
        ),
        "load_fleet_s": round(load_s, 3),
        **{k: v for k, v in main_run.items()},
        "peak_rss_mib": round(rss, 1),
    }
    if not args.no_fifo:
        fifo = run(fleet, tenancy, "fifo", "easy", **kw)
        out["fifo"] = fifo
        ratios = {}
        for k in ("full_cycle_s", "tick_cycle_s", "incremental_cycle_p50_ms", "incremental_cycle_p99_ms"):
            a, b = main_run[k], fifo[k]
            assert isinstance(a, float) and isinstance(b, float)
            ratios[k] = round(a / b, 3) if b > 0 else None
        out["ratio_fairshare_to_fifo"] = ratios
    out["goals"] = GOALS
    out["meets_goals"] = {
        "full_cycle_s": main_run["full_cycle_s"] <= GOALS["full_cycle_s"],
        "incremental_cycle_p50_ms": main_run["incremental_cycle_p50_ms"] <= GOALS["incremental_cycle_p50_ms"],
        "peak_rss_mib": rss <= GOALS["peak_rss_mib"],
    }
    out["machine"] = {
        "python": platform.python_version(),
        "cpus": _cpus(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    main()
