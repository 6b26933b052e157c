"""A sweep on a local Ray against the same runs one after another in one process.

This script owns the measurement of ``gpupool sweep``'s speed-up (benchmarks/README.md).

Prints one JSON object: the sweep (2 policies x 2 changes x 2 loads x 3 seeds = 24 runs of
gavel-108, 30 days of synthetic work each, by default), the wall time on a local Ray of
``--cpus`` CPUs (Ray's start included) and serially in this process, their ratio, and
whether both gave the same rows.

    .venv/bin/python benchmarks/sweep_speed.py              # 24 runs of 720 h on gavel-108, 2 CPUs
    .venv/bin/python benchmarks/sweep_speed.py --small      # 4 runs of 2 h on demo (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from gpupool.sim.sweep import Change, SweepSpec, run_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--hours", type=float, default=720.0)
    ap.add_argument("--fleet", default="gavel-108")
    ap.add_argument("--small", action="store_true", help="4 runs of 2 h")
    args = ap.parse_args()
    policies: tuple[str, ...] = ("fifo", "fairshare+easy")
    changes: tuple[Change, ...] = (Change("base"), Change("flaky", failure_scale=100.0))
    loads: tuple[float, ...] = (0.6, 0.9)
    seeds: tuple[int, ...] = (0, 1, 2)
    hours = args.hours
    if args.small:
        policies, loads, seeds, hours = ("fifo",), (0.8,), (0, 1), 2.0
        args.fleet = "demo"
    spec = SweepSpec(args.fleet, None, "synthetic", hours, policies, changes, loads, seeds)
    tmp = tempfile.mkdtemp(prefix="gpr")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        t0 = time.perf_counter()
        on_ray = run_sweep(spec, num_cpus=args.cpus, temp_dir=tmp)
        ray_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    here = run_sweep(spec, serial=True)
    serial_s = time.perf_counter() - t0

    def strip(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]

    print(
        json.dumps(
            {
                "runs": len(on_ray),
                "sweep": {
                    "fleet": args.fleet,
                    "hours": hours,
                    "policies": list(policies),
                    "changes": [c.name for c in changes],
                    "loads": list(loads),
                    "seeds": list(seeds),
                },
                "cpus": args.cpus,
                "ray_wall_s": round(ray_s, 2),
                "serial_wall_s": round(serial_s, 2),
                "serial_over_ray": round(serial_s / ray_s, 2),
                "sum_of_run_wall_s": round(sum(float(r["wall_s"] or 0.0) for r in here), 2),
                "same_rows": strip(on_ray) == strip(here),
                "errors": sum(1 for r in on_ray if r["error"]),
                "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
            }
        )
    )


if __name__ == "__main__":
    main()
