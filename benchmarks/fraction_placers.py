"""Fractions benchmark: the four placers of fractions on the same small-job workload.

For each fleet of ``gpupool.sim.fraction_twin`` (``uniform``: HGX H100 nodes that may be
shared or MIG-partitioned; ``mixed``: H100 8- and 4-GPU nodes, shareable H200, A100 with an
operator's fixed MIG layout) and each seed, every placer (best fit, worst fit, packing,
fragmentation-aware) places the same task stream (``SMALL_JOBS``: 40 % fractions, 10 %
MIG slices, 50 % whole GPUs and gangs) as the offered load grows with arrivals and
departures (``--no-churn``: nothing leaves, the FGD paper's arrive-until-full run).

Prints ONE JSON object: per fleet and placer, the means over seeds of

* ``allocated_at_first_failure``: share of GPU capacity allocated when the first task
  fails to fit;
* ``allocation_rate``: share of requested GPU capacity placed, at each offered load;
* ``stranded_gpus_at_100``: free capacity stranded on partly used GPUs at 100 % load;
* ``cpu_s``: process time of all its runs (compare placers within one run only).

    .venv/bin/python benchmarks/fraction_placers.py                # 64 nodes, 3 seeds
    .venv/bin/python benchmarks/fraction_placers.py --small        # tiny, for the smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from gpupool.core.fraction_placement import Placer
from gpupool.fleetfile.catalogue import load_catalogue
from gpupool.sim.fraction_twin import FLEET_MIX, UNIFORM_MIX, fraction_fleet, run_placer, tasks_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="8 nodes, 1 seed (the smoke test)")
    ap.add_argument("--no-churn", action="store_true", help="nothing leaves (arrive until full)")
    args = ap.parse_args()
    nodes, seeds = (8, 1) if args.small else (args.nodes, args.seeds)
    cat = load_catalogue()
    out: dict[str, Any] = {"nodes": nodes, "seeds": seeds, "churn": not args.no_churn, "fleets": {}}
    for fleet_name, mix in (("uniform", UNIFORM_MIX), ("mixed", FLEET_MIX)):
        fleet = fraction_fleet(cat, nodes=nodes, mix=mix)
        per: dict[str, Any] = {}
        for p in Placer:
            t0 = time.process_time()
            rs = [run_placer(fleet, tasks_for(fleet, s), p, s, not args.no_churn) for s in range(seeds)]
            cpu = time.process_time() - t0
            points = rs[0].allocation_rate.keys()
            per[p.value] = {
                "allocated_at_first_failure": round(
                    statistics.mean(r.allocated_at_first_failure for r in rs), 4
                ),
                "allocation_rate": {
                    k: round(statistics.mean(r.allocation_rate.get(k, 0.0) for r in rs), 4) for k in points
                },
                "stranded_gpus_at_100": round(statistics.mean(r.stranded_gpus for r in rs), 2),
                "failed_tasks": round(statistics.mean(r.failed_tasks for r in rs), 1),
                "cpu_s": round(cpu, 2),
            }
        out["fleets"][fleet_name] = {"gpus": fleet.total_gpus, "placers": per}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
