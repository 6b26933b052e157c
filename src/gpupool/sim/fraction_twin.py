"""The twin of fractions: a small-job workload, and the allocation-rate race of the placers.

This module owns ``SMALL_JOBS`` (the task mix of a pool's small-job population), ``draw_tasks``
(a seeded stream of it), ``fraction_fleet`` (a fleet whose nodes may be shared or
MIG-partitioned) and ``compare_placers``, the experiment of Weng et al. (ATC'23, section 6):
tasks arrive one after another and never leave; each placer places what it can, and we
record

* ``allocated_at_first_failure``: the share of GPU capacity allocated when the first task
  fails to fit (the issue's goal: >= 95 % for the fragmentation-aware placer);
* ``allocation_rate`` at each arrived demand (share of requested GPU capacity placed as the
  workload grows to 100 %, 110 %, ... of the capacity), the standard comparison of
  fragmentation-aware placers;
* ``stranded_gpus``: free capacity on GPUs that already hold a share or an instance (usable
  by no whole-GPU job) when the arrived demand reaches the capacity.

The mix and its sources (durations play no part: tasks never leave in this experiment):

* 40 % of tasks ask a fraction of a GPU. The openb trace of the FGD paper (Alibaba GPU
  cluster, 2023; hkust-adsl/kubernetes-scheduler-simulator, ``data/csv/openb_pod_list_*.csv``,
  column ``gpu_milli``) has about as many sharing pods among its single-GPU pods, and Alibaba
  PAI's 2020 trace (Weng et al., "MLaaS in the Wild", NSDI'22) reports most tasks use a
  fraction of one GPU. Sizes follow the ``gpu_milli`` values that recur in openb: about 0.1
  (110-160), 0.2-0.25 (220-230), 0.3 (320), 0.5 (440-480) and 0.6-0.8 (550-810).
* MIG slices: a tenth of the tasks ask an H100 ``1g.10gb``, ``2g.20gb`` or ``3g.40gb``
  (inference services and notebooks on partitioned nodes; no public trace gives their
  split, so the smaller profiles are taken as the commoner, like the shares).
* 40 % ask one whole GPU and 10 % a gang of 2, 4 or 8 (openb has few multi-GPU pods, a
  national pool's training jobs more: the gangs are what fragmentation starves).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass

from gpupool.core.accelerator import Catalogue
from gpupool.core.fleet import Fleet, FleetBuilder
from gpupool.core.fraction_placement import FractionRequest, FractionState, Placer, RequestKind
from gpupool.core.node_fractions import MigMode, NodeFractions

#: (request, popularity): the small-job population described in the module docstring
SMALL_JOBS: tuple[tuple[FractionRequest, float], ...] = (
    (FractionRequest.shared(0.1), 0.06),
    (FractionRequest.shared(0.25), 0.07),
    (FractionRequest.shared(0.3), 0.05),
    (FractionRequest.shared(0.5), 0.07),
    (FractionRequest.shared(0.75), 0.02),
    (FractionRequest.shared(memory_gib=20), 0.03),
    (FractionRequest.mig("1g.10gb"), 0.05),
    (FractionRequest.mig("2g.20gb"), 0.03),
    (FractionRequest.mig("3g.40gb"), 0.02),
    (FractionRequest.whole(1), 0.40),
    (FractionRequest.whole(2), 0.04),
    (FractionRequest.whole(4), 0.03),
    (FractionRequest.whole(8), 0.03),
)

#: demand is counted in accelerators of this model (a share's memory part is a share of its
#: memory; where a task lands it is charged by that GPU's own memory)
REFERENCE_MODEL = "H100"

#: arrived demand, as multiples of the fleet's capacity, at which allocation rates are told
DEMAND_POINTS = (0.5, 0.8, 0.9, 1.0, 1.1, 1.3)


def draw_tasks(
    count: int, seed: int, mix: Sequence[tuple[FractionRequest, float]] = SMALL_JOBS
) -> list[FractionRequest]:
    """``count`` tasks drawn from ``mix`` by a seeded generator (the same seed, the same tasks)."""
    rng = random.Random(seed)
    reqs = [r for r, _ in mix]
    weights = [w for _, w in mix]
    return rng.choices(reqs, weights=weights, k=count)


#: the node kinds of ``fraction_fleet``: (share of nodes, model, GPUs per node, rule)
FLEET_MIX: tuple[tuple[float, str, int, str], ...] = (
    (0.375, "H100", 8, "shared+dynamic"),
    (0.25, "H200", 8, "shared"),
    (0.125, "A100", 8, "fixed"),
    (0.25, "H100", 4, "shared+dynamic"),
)
#: the layout of the fixed-MIG nodes: one 3g, one 2g and two 1g per GPU, a common
#: inference layout (7 compute slices, all of the 8 memory slices but one)
FIXED_LAYOUT = ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb")


#: a fleet of one kind: HGX H100 nodes that may be shared or MIG-partitioned
UNIFORM_MIX: tuple[tuple[float, str, int, str], ...] = ((1.0, "H100", 8, "shared+dynamic"),)


def fraction_fleet(
    catalogue: Catalogue, nodes: int = 32, mix: Sequence[tuple[float, str, int, str]] = FLEET_MIX
) -> Fleet:
    """One cluster of ``nodes`` nodes in the kinds of ``FLEET_MIX``: HGX H100 whose GPUs the
    scheduler may share or MIG-partition, H200 that may be shared, A100 partitioned by the
    operator, and 4-GPU H100 nodes. Fragmentation comes from exactly this mix: a slice or a
    share fits some nodes only, and a gang needs idle GPUs on one node."""
    b = FleetBuilder("fractions", catalogue, "twin of fractions: shared, dynamic- and fixed-MIG nodes")
    b.add_site("site")
    c = b.add_cluster("c0", "site")
    blk = b.add_block(c, "ib0")
    made = 0
    for i, (share, model, gpus, how) in enumerate(mix):
        count = nodes - made if i == len(mix) - 1 else max(1, round(nodes * share))
        made += count
        rack = b.add_rack(blk, f"r{i}")
        names = [f"c0-r{i}-n{k:03d}" for k in range(count)]
        b.add_nodes(rack, count, model, gpus, names)
        geo = catalogue[model].mig
        if how == "fixed" and geo is not None:
            rule = NodeFractions(mig=MigMode.FIXED, layout=geo.layout(FIXED_LAYOUT))
        else:
            rule = NodeFractions(shared=True, mig=MigMode.DYNAMIC if "dynamic" in how else MigMode.NONE)
        b.set_fractions(names, rule)
    return b.build()


@dataclass(frozen=True, slots=True)
class PlacerResult:
    placer: str
    allocated_at_first_failure: float
    first_failure: str
    allocation_rate: dict[str, float]
    stranded_gpus: float
    failed_tasks: int


def demand_of(req: FractionRequest, catalogue: Catalogue, model: str) -> float:
    """The GPU capacity a request asks, in accelerators of ``model`` (what it is charged)."""
    if req.kind is RequestKind.WHOLE:
        return float(req.gpus)
    if req.kind is RequestKind.SHARE:
        return req.share.need(float(catalogue[model].memory_gib)).charged
    geo = catalogue[model].mig
    assert geo is not None
    return float(geo.fraction(req.profile)) * req.count


def run_placer(
    fleet: Fleet, tasks: Sequence[FractionRequest], placer: Placer, seed: int = 0, churn: bool = True
) -> PlacerResult:
    """Place ``tasks`` in order with ``placer`` as the offered load grows; failures are dropped.

    With ``churn`` the load grows from 0 to ``DEMAND_POINTS[-1]`` times the capacity:
    tasks arrive as a Poisson stream whose rate rises linearly and each holds its grant for
    an exponential time of mean 1 (the same for every kind: the measure is of placement,
    and no public trace gives per-kind durations of shares and slices), so departures
    leave holes, as in a live pool. Without it nothing leaves: the arrive-until-full
    experiment of the FGD paper.
    """
    state = FractionState(fleet, workload=SMALL_JOBS)
    cat = fleet.catalogue
    capacity = float(state.total_gpus)
    mean = sum(demand_of(r, cat, REFERENCE_MODEL) * w for r, w in SMALL_JOBS) / sum(w for _, w in SMALL_JOBS)
    rng = random.Random(seed + 7919)
    top = DEMAND_POINTS[-1]
    horizon = 4.0 * top  # the load grows by 1/4 of the capacity per mean duration
    departures: list[tuple[float, int]] = []
    now = 0.0
    arrived = placed = 0.0
    first: tuple[float, str] | None = None
    rates: dict[str, float] = {}
    points = list(DEMAND_POINTS)
    stranded = 0.0
    failed = 0
    for i, req in enumerate(tasks):
        if churn:
            load = max(now / horizon * top, 0.01)
            now += rng.expovariate(load * capacity / mean)
            while departures and departures[0][0] <= now:
                _, k = heapq.heappop(departures)
                state.release(f"t{k}")
            offered = now / horizon * top
        demand = demand_of(req, cat, REFERENCE_MODEL)
        arrived += demand
        if not churn:
            offered = arrived / capacity
        grant = state.place(f"t{i}", req, placer)
        if grant is None:
            failed += 1
            if first is None:
                first = (state.allocated() / capacity, req.label())
        else:
            placed += demand
            if churn:
                heapq.heappush(departures, (now + rng.expovariate(1.0), i))
        while points and offered >= points[0]:
            rates[f"{points[0]:.0%}"] = round(placed / arrived, 4)
            if points[0] == 1.0:
                stranded = state.stranded()
            points.pop(0)
        if not points:
            break
    state.validate()
    return PlacerResult(
        placer.value,
        round(first[0], 4) if first else round(state.allocated() / capacity, 4),
        first[1] if first else "",
        rates,
        round(stranded, 3),
        failed,
    )


def compare_placers(
    fleet: Fleet, tasks: Sequence[FractionRequest], seed: int = 0, churn: bool = True
) -> list[PlacerResult]:
    """Every placer on the same fleet, the same task stream and the same arrival times."""
    return [run_placer(fleet, tasks, p, seed, churn) for p in Placer]


def tasks_for(fleet: Fleet, seed: int) -> list[FractionRequest]:
    """Enough tasks to reach the last demand point on ``fleet``."""
    mean = sum(demand_of(r, fleet.catalogue, REFERENCE_MODEL) * w for r, w in SMALL_JOBS) / sum(
        w for _, w in SMALL_JOBS
    )
    # with churn, about 4 x top x capacity / mean tasks arrive before the last point
    return draw_tasks(int(fleet.total_gpus * DEMAND_POINTS[-1] / mean * 3 * 4) + 10, seed)
