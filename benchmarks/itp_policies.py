"""Every policy on the seven shipped Microsoft ITP clusters at 80 % and 95 % offered load.

Each ITP trace (``src/gpupool/data/traces/microsoft-itp-2021/raw``) is replayed on a fleet of
8-GPU V100 nodes sized from the trace itself: ``ceil(gpu_seconds / span_s / load / 8)``
nodes, where ``gpu_seconds`` is the sum of ``duration x num_gpu`` and ``span_s`` the time
from the first to the last submission; widened, when needed, to the trace's widest gang (a
64-GPU job needs 8 nodes; the JSON says so). One tenant holds the fleet, as the traces have
no tenant column.

Every run is a child process under a wall-clock limit: a run past it is killed and recorded
as ``"status": "timeout"``; a run the twin finds stuck (``SimulationStuck``) as ``"stuck"``
with the message; neither hangs the benchmark. ``--workers`` runs go at once (1 by default:
the machine is shared).

Policies: every registered one (``fifo`` also with EASY; ``fairshare`` and ``sjf`` with
EASY), the round-based ``gavel-*`` too: on one accelerator model they differ from their
agnostic twins ``maxmin``/``ftf`` only slightly (measured), so both are run. Left out, with
the reason in ``"skipped_policies"``: ``priority`` (the traces have one priority class: it
orders as ``fifo``).

Prints one JSON object: per cluster and load the fleet, and per policy the mean JCT, mean
queueing delay, ``jct_ratio_vs_fifo`` (FIFO's mean JCT / the policy's: > 1 is better;
the issue's goal is >= 2), Jain's fairness index (over tenants: one tenant, so 1.0; the
finish-time fairness ``ftf_rho_mean``/``ftf_rho_max`` is per job), preemptions, lost
GPU-hours, utilisation and wall time.

Usage::

    .venv/bin/python benchmarks/itp_policies.py                      # everything (hours)
    .venv/bin/python benchmarks/itp_policies.py --clusters 02,06 --loads 0.8
    .venv/bin/python benchmarks/itp_policies.py --clusters 05 --max-jobs 300 --policies fifo,las
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from gpupool.core.fleet import Fleet, FleetBuilder
from gpupool.core.policy import PREEMPTION_QUANTUM_MS, with_policy_defaults
from gpupool.core.scheduler import SchedulerConfig
from gpupool.core.tenancy import Tenancy, TenancyBuilder
from gpupool.fleetfile.catalogue import load_catalogue
from gpupool.sim.metrics import compute_metrics
from gpupool.sim.named_workloads import ITP_CLUSTERS
from gpupool.sim.scenario import map_tenants, parse_policy
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.stall import SimulationStuck
from gpupool.sim.trace import read_trace, shipped_trace
from gpupool.sim.workload import WorkloadJob

GPUS_PER_NODE = 8
MODEL = "V100"
POLICIES = (
    "fifo",
    "fifo+easy",
    "fairshare+easy",
    "sjf+easy",
    "srtf",
    "las",
    "tiresias",
    "predicted",
    "maxmin",
    "ftf",
    "gavel-las",
    "gavel-fifo",
    "gavel-ftf",
    "gavel-makespan",
)
SKIPPED = {
    "priority": "the ITP traces have one priority class: the same order as fifo",
}


@dataclass(frozen=True, slots=True)
class Case:
    cluster: str
    load: float
    nodes: int
    nodes_from_load: int
    jobs: int
    gpu_hours: float
    span_days: float
    widest_gang: int


def load_jobs(cluster: str, max_jobs: int | None) -> list[WorkloadJob]:
    jobs = read_trace(shipped_trace(f"microsoft-itp-2021/raw/cluster{cluster}.csv"), "itp-raw")
    return jobs[:max_jobs] if max_jobs else jobs


def size_case(cluster: str, jobs: list[WorkloadJob], load: float) -> Case:
    gpu_s = sum(j.duration_ms * j.gpus for j in jobs) / 1000
    span_s = max((jobs[-1].submit_ms - jobs[0].submit_ms) / 1000, 1.0)
    from_load = max(1, math.ceil(gpu_s / span_s / load / GPUS_PER_NODE))
    widest = max(j.gpus for j in jobs)
    nodes = max(from_load, math.ceil(widest / GPUS_PER_NODE))
    return Case(cluster, load, nodes, from_load, len(jobs), gpu_s / 3600, span_s / 86_400, widest)


def build_fleet(nodes: int) -> Fleet:
    b = FleetBuilder(f"itp-v100x{nodes}", load_catalogue())
    b.add_site("itp")
    ci = b.add_cluster("itp", "itp")
    ri = b.add_rack(b.add_block(ci, "b0"), "r0")
    b.add_nodes(ri, nodes, MODEL, GPUS_PER_NODE, [f"n{i:03d}" for i in range(nodes)])
    return b.build()


def build_tenancy() -> Tenancy:
    b = TenancyBuilder("itp")
    b.add(b.add(-1, "itp"), "trace")
    return b.build()


def run_one(cluster: str, nodes: int, policy: str, max_jobs: int | None, conn: Connection) -> None:
    """Child process: simulate one (cluster, fleet, policy); send back metrics or why not."""
    try:
        tenancy = build_tenancy()
        jobs, _ = map_tenants(load_jobs(cluster, max_jobs), tenancy)
        name, backfill = parse_policy(policy)
        cfg = with_policy_defaults(replace(SchedulerConfig(), policy=name, backfill=backfill))
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        result = simulate(build_fleet(nodes), tenancy, jobs, SimConfig(scheduler=cfg))
        m = compute_metrics(result)
        conn.send(
            {
                "status": "ok",
                "finished": m["finished"],
                "unschedulable": m["unschedulable"],
                "avg_jct_s": m["avg_jct_s"],
                "avg_queue_s": m["avg_queue_s"],
                "p99_jct_s": m["p99_jct_s"],
                "jain_fairness": m["jain_fairness"],
                "ftf_rho_mean": m["ftf_rho_mean"],
                "ftf_rho_max": m["ftf_rho_max"],
                "utilization": m["utilization"],
                "preemptions": m["preemptions"],
                "lost_gpu_hours": m["lost_gpu_hours"],
                "gpu_hours": m["gpu_hours"],
                "wall_s": round(time.perf_counter() - t0, 2),
                "cpu_s": round(time.process_time() - cpu0, 2),
            }
        )
    except SimulationStuck as e:
        conn.send({"status": "stuck", "error": str(e), "sim_days": round(e.now_ms / 86_400_000, 1)})
    finally:
        conn.close()


@dataclass(slots=True)
class _Running:
    key: tuple[str, float, str]
    proc: mp.process.BaseProcess
    conn: Connection
    started: float


def run_all(
    cases: list[Case], policies: list[str], max_jobs: int | None, workers: int, limit_s: float
) -> dict[tuple[str, float, str], dict[str, Any]]:
    """Every (case, policy) in a child process, ``workers`` at a time, each under ``limit_s``."""
    # spawn, not fork: the parent has read traces with Polars, whose thread pool a forked
    # child inherits locked (every forked run hung)
    ctx = mp.get_context("spawn")
    todo = [(c, p) for c in cases for p in policies]
    running: list[_Running] = []
    out: dict[tuple[str, float, str], dict[str, Any]] = {}
    while todo or running:
        while todo and len(running) < workers:
            case, policy = todo.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=run_one, args=(case.cluster, case.nodes, policy, max_jobs, child))
            proc.start()
            child.close()
            running.append(_Running((case.cluster, case.load, policy), proc, parent, time.perf_counter()))
        time.sleep(0.05)
        for r in list(running):
            elapsed = time.perf_counter() - r.started
            got: dict[str, Any] | None = None
            if r.conn.poll():
                try:
                    got = r.conn.recv()
                except EOFError:
                    got = {"status": "error", "error": f"child exited with code {r.proc.exitcode}"}
            elif not r.proc.is_alive():
                got = {"status": "error", "error": f"child exited with code {r.proc.exitcode}"}
            elif elapsed > limit_s:
                r.proc.kill()
                got = {"status": "timeout", "wall_s": round(elapsed, 1), "limit_s": limit_s}
            if got is None:
                continue
            r.proc.join()
            r.conn.close()
            running.remove(r)
            out[r.key] = got
            c, load, policy = r.key
            jct = got.get("avg_jct_s") or 0
            line = f"cluster {c} load {load:.0%} {policy:15} {got['status']:7} jct {jct:>12,.0f}"
            print(f"{line} wall {elapsed:6.1f} s", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", default=",".join(ITP_CLUSTERS), help="comma-separated, e.g. 02,06")
    ap.add_argument("--loads", default="0.8,0.95", help="offered loads, comma-separated")
    ap.add_argument("--policies", default=",".join(POLICIES), help="comma-separated, each with +easy or not")
    ap.add_argument("--timeout-s", type=float, default=120.0, help="wall limit per run (timeout)")
    ap.add_argument("--workers", type=int, default=1, help="runs at once (1-2 on a shared machine)")
    ap.add_argument("--max-jobs", type=int, default=0, help="only each trace's first N jobs (smoke tests)")
    args = ap.parse_args()

    clusters = [c.strip() for c in args.clusters.split(",") if c.strip()]
    for c in clusters:
        if c not in ITP_CLUSTERS:
            ap.error(f"unknown ITP cluster {c!r} (shipped: {', '.join(ITP_CLUSTERS)})")
    loads = [float(x) for x in args.loads.split(",") if x.strip()]
    if any(not 0 < x <= 1.5 for x in loads):
        ap.error("loads must be in (0, 1.5]")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if "fifo" not in policies:
        policies.insert(0, "fifo")  # the ratio's denominator
    max_jobs = args.max_jobs or None
    cases = []
    for c in clusters:
        jobs = load_jobs(c, max_jobs)
        cases += [size_case(c, jobs, load) for load in loads]
    t0 = time.perf_counter()
    runs = run_all(cases, policies, max_jobs, max(1, args.workers), args.timeout_s)
    out_cases = []
    for case in cases:
        fifo = runs[(case.cluster, case.load, "fifo")].get("avg_jct_s")
        per_policy: dict[str, Any] = {}
        for p in policies:
            r = dict(runs[(case.cluster, case.load, p)])
            jct = r.get("avg_jct_s")
            r["jct_ratio_vs_fifo"] = round(fifo / jct, 3) if fifo and jct else None
            per_policy[p] = r
        ok = {p: r for p, r in per_policy.items() if r["status"] == "ok" and r["jct_ratio_vs_fifo"]}
        best = max(ok, key=lambda p: ok[p]["jct_ratio_vs_fifo"], default=None)
        out_cases.append(
            {
                "cluster": case.cluster,
                "load": case.load,
                "nodes": case.nodes,
                "gpus": case.nodes * GPUS_PER_NODE,
                "nodes_from_load": case.nodes_from_load,
                "widened_to_widest_gang": case.nodes > case.nodes_from_load,
                "jobs": case.jobs,
                "gpu_hours": round(case.gpu_hours, 1),
                "span_days": round(case.span_days, 2),
                "widest_gang": case.widest_gang,
                "policies": per_policy,
                "best_vs_fifo": best,
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "itp_policies",
                "model": MODEL,
                "gpus_per_node": GPUS_PER_NODE,
                "preemption_quantum_s": PREEMPTION_QUANTUM_MS / 1000,
                "timeout_s": args.timeout_s,
                "workers": args.workers,
                "max_jobs": max_jobs,
                "skipped_policies": SKIPPED,
                "cases": out_cases,
                "wall_s": round(time.perf_counter() - t0, 1),
                "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
