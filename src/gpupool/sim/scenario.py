"""A scenario: the fleet, tenants, workload and settings of a simulation, resolved from names.

This module owns turning what a user types (``--fleet korea-2025 --workload synthetic``)
into the objects a simulation runs on, and ``run_policies``, which simulates one scenario
under several policies. Workload names:

- ``philly``: the whole Philly job table (82,247 jobs, tenants = virtual clusters);
- ``philly-helios``: the Helios paper's Philly window (2017-10-01 to 2017-11-30, 11 VCs);
- ``itp-NN``: a Microsoft ITP cluster trace (01, 02, 04, 05, 06, 08, 09);
- ``synthetic`` (or ``synthetic:TRACE`` to calibrate from another shipped trace): a
  workload generated from Philly's joint size/duration distribution at ``load`` of the
  fleet for ``hours``, spread over the tenancy's projects by the capacity each can reach
  (its clusters' accelerators, shared by fair-share weight with the others there); its jobs
  are CUDA training, except that on a fleet with NPUs a quarter of the single-node jobs are
  portable LLM inference services (CUDA and the NPU stacks); durations are read as time on
  the catalogue's reference model (H100) and stretched by each job's throughput where it runs;
- any other value is a trace file (format detected, or given with ``fmt``).
Trace tenants the tenancy does not know are mapped onto its projects, deterministically,
and the scenario says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gpupool.core.fleet import Fleet
from gpupool.core.policy import with_policy_defaults
from gpupool.core.scheduler import SchedulerConfig
from gpupool.core.tenancy import ANY_MODEL, Tenancy
from gpupool.core.throughput import ThroughputTable
from gpupool.fleetfile import default_tenants_for, load_fleet, load_tenants, site_catalogue
from gpupool.sim.generator import generate_workload
from gpupool.sim.named_workloads import ITP_CLUSTERS, NAMED_WORKLOADS
from gpupool.sim.records import RunResult
from gpupool.sim.simulator import SimConfig, simulate
from gpupool.sim.throughputs import GAVEL_MODELS, gavel_throughput_table, gavel_throughputs
from gpupool.sim.trace import read_trace, shipped_trace
from gpupool.sim.vetting import vet_workload
from gpupool.sim.workload import TraceError, WorkloadJob

HELIOS_WINDOW = ("2017-10-01", "2017-11-30 23:59:59")
#: Share of a synthetic workload's single-node jobs that are portable inference services
#: (CUDA + the fleet's NPU stacks) on a fleet with NPUs.
PORTABLE_FRACTION = 0.25


@dataclass(slots=True)
class Scenario:
    """Everything a simulation needs, plus a human description of where it came from."""

    fleet: Fleet
    tenancy: Tenancy
    jobs: list[WorkloadJob]
    context: dict[str, str] = field(default_factory=dict)
    #: the model the workload's durations are on (None: as they are on every model)
    reference_model: str | None = None
    #: throughputs the workload's classes need beyond the catalogue's (Gavel's job types)
    throughputs: ThroughputTable | None = None
    #: trace rows left out as bad (``skip_bad_rows``), in line order
    skipped: list[TraceError] = field(default_factory=list)


def parse_policy(text: str) -> tuple[str, str]:
    """``fairshare+easy`` -> (``fairshare``, ``easy``); a bare name means no backfill."""
    name, _, backfill = text.strip().partition("+")
    return name, backfill or "none"


@functools.cache
def _philly_jobs() -> tuple[WorkloadJob, ...]:
    """The shipped Philly job table, read once per process: every synthetic workload is
    calibrated from it, and a sweep's worker runs many (the jobs are immutable)."""
    return tuple(read_trace(shipped_trace("philly/philly_jobs.csv"), "philly"))


def _philly_vcs() -> list[str]:
    rows = shipped_trace("philly/philly_vc_nodes.csv").read_text(encoding="utf-8").splitlines()[1:]
    return [r.split(",")[0] for r in rows if r.strip()]


def load_workload(
    name: str,
    fleet: Fleet,
    tenancy: Tenancy,
    *,
    seed: int,
    load: float,
    hours: float,
    fmt: str = "auto",
) -> tuple[list[WorkloadJob], str]:
    """The jobs a workload name stands for, and a one-line description of them."""
    if name == "philly":
        return list(_philly_jobs()), "Philly job table (all 82,247 jobs)"
    if name == "philly-helios":
        jobs = read_trace(
            shipped_trace("philly/philly_jobs.csv"),
            "philly",
            start=HELIOS_WINDOW[0],
            end=HELIOS_WINDOW[1],
            tenants=_philly_vcs(),
        )
        return jobs, "Philly 2017-10-01..2017-11-30, 11 VCs (the Helios paper's window)"
    if name.startswith("itp-") and name[4:] in ITP_CLUSTERS:
        path = shipped_trace(f"microsoft-itp-2021/raw/cluster{name[4:]}.csv")
        return read_trace(path, "itp-raw"), f"Microsoft ITP cluster {name[4:]} (2021)"
    if name == "synthetic" or name.startswith("synthetic:"):
        source = name.partition(":")[2] or "philly"
        calib, what = load_workload(source, fleet, tenancy, seed=seed, load=load, hours=hours, fmt=fmt)
        # Leave out calibration jobs longer than the horizon: Philly's durations are so
        # heavy-tailed (max 53 days) that a one-day sample would otherwise almost never
        # realise the offered load it was generated for.
        horizon_ms = hours * 3_600_000
        calib = [j for j in calib if j.duration_ms <= horizon_ms] or calib
        nodes = max((n.gpus for n in fleet.nodes), default=8)
        # A national fleet runs foundation-model gangs: scale Philly's sizes up with the fleet.
        scale = 1 if fleet.total_gpus < 10_000 else 8
        weights = _demand_weights(fleet, tenancy)
        jobs = generate_workload(
            calib,
            capacity_gpus=fleet.total_gpus,
            load=load,
            hours=hours,
            tenants=weights,
            seed=seed,
            max_gpus=min(1024, fleet.total_gpus),
            gpus_per_node=nodes,
            size_scale=scale,
        )
        jobs, portable = _software_stacks(jobs, fleet, tenancy, seed)
        jobs, narrowed = _within_reach(jobs, fleet, tenancy)
        desc = f"synthetic, calibrated from {what}: {load:.0%} offered load for {hours:g} h, seed {seed}"
        if portable:
            desc += f"; {portable:,} portable inference services"
        if narrowed:
            desc += f"; {narrowed:,} gangs narrowed to their project's borrowing limit"
        return jobs, desc
    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(
            f"workload {name!r} is neither a file nor a known workload ({', '.join(NAMED_WORKLOADS)})"
        )
    return read_trace(path, fmt), f"trace file {path.name}"


def _software_stacks(
    jobs: list[WorkloadJob], fleet: Fleet, tenancy: Tenancy, seed: int
) -> tuple[list[WorkloadJob], int]:
    """Give synthetic jobs a software stack; make some inference services portable.

    Trace jobs name no stack, so without this a CUDA training job could land on an NPU.
    On a fleet with accelerators of other stacks (NPUs), ``PORTABLE_FRACTION`` of the jobs
    that fit one node become LLM inference services that run on CUDA and on every other
    stack of the fleet (compiled for each vendor's runtime); all other jobs are CUDA
    training. A project whose clusters hold no CUDA accelerators (an NPU serving project)
    runs inference services on the stacks it has. The draw has its own random stream, so
    the jobs themselves do not change. Returns the jobs and how many became portable.
    """
    stacks = {fleet.catalogue[m].stack for m in fleet.gpus_by_model()}
    if "cuda" not in stacks:
        return jobs, 0
    others = tuple(sorted(stacks - {"cuda"}))
    smallest = min((n.gpus for n in fleet.nodes if fleet.catalogue[n.model].stack != "cuda"), default=0)
    reach: dict[str, tuple[str, ...]] = {}
    for p in tenancy.projects:
        clusters = _reach(fleet, tenancy, p)
        models = {m for (c, m) in fleet.gpus_by_pool if c in clusters}
        reach[tenancy.nodes[p].path] = tuple(sorted({fleet.catalogue[m].stack for m in models}))
    rng = np.random.default_rng([seed, 1])
    draws = rng.random(len(jobs)).tolist()
    out: list[WorkloadJob] = []
    portable = 0
    for j, u in zip(jobs, draws, strict=True):
        own = reach.get(j.tenant, ("cuda",))
        if own and "cuda" not in own:
            out.append(replace(j, kind="inference", stacks=own, workload_class="inference-llm"))
        elif others and j.gpus <= smallest and u < PORTABLE_FRACTION:
            portable += 1
            out.append(replace(j, kind="inference", stacks=("cuda", *others), workload_class="inference-llm"))
        else:
            out.append(replace(j, stacks=("cuda",)))
    return out, portable


def _most_held(fleet: Fleet, tenancy: Tenancy, project: int, stacks: tuple[str, ...]) -> int | None:
    """The most accelerators of one model the project's borrowing limits (its own and its
    ancestors', guarantee + limit, per model or ``*``) let it hold at once, over the models
    of the fleet it can use; None = no limit."""
    nodes = tenancy.nodes
    best = 0
    for model in fleet.gpus_by_model():
        if stacks and fleet.catalogue[model].stack not in stacks:
            continue
        cap: int | None = None
        for i in tenancy.ancestors(project):
            lim = nodes[i].borrow_limit
            if lim is None:
                continue
            for key in (model, ANY_MODEL):
                if key in lim:
                    here = nodes[i].guaranteed.get(key, 0) + lim[key]
                    cap = here if cap is None else min(cap, here)
        if cap is None:
            return None
        best = max(best, cap)
    return best


def _within_reach(jobs: list[WorkloadJob], fleet: Fleet, tenancy: Tenancy) -> tuple[list[WorkloadJob], int]:
    """Narrow synthetic gangs wider than their project may ever hold to what it may.

    A generated job is drawn for a project by what it is entitled to; one wider than the
    project's borrowing limit allows could never start (and would stall the twin on an idle
    fleet). Multi-node gangs stay whole nodes. Returns the jobs and how many were narrowed.
    """
    memo: dict[tuple[str, tuple[str, ...]], int | None] = {}
    out: list[WorkloadJob] = []
    narrowed = 0
    for j in jobs:
        key = (j.tenant, j.stacks)
        if key not in memo:
            p = tenancy.resolve(j.tenant)
            memo[key] = None if p is None else _most_held(fleet, tenancy, p, j.stacks)
        most = memo[key]
        if most is None or j.gpus <= most or most < 1:
            out.append(j)
            continue
        gpw = j.gpus_per_worker
        gpus = most - most % gpw if gpw and most >= gpw else most
        out.append(replace(j, gpus=gpus, gpus_per_worker=gpw if gpw and gpus > gpw else 0))
        narrowed += 1
    return out, narrowed


def _reach(fleet: Fleet, tenancy: Tenancy, project: int) -> set[int]:
    """The clusters (indexes) a project's affinity lets it run on: all without one."""
    allowed = tenancy.nodes[project].clusters
    return {c.index for c in fleet.clusters if not allowed or c.name in allowed}


def _demand_weights(fleet: Fleet, tenancy: Tenancy) -> list[tuple[str, float]]:
    """Each project's share of a synthetic workload: what it is entitled to, where it can run.

    A project's guaranteed accelerators (spread over the clusters its affinity reaches, by
    their capacity of each model), plus a fair-share-weighted part of what no guarantee
    covers in each cluster it reaches. So ``load`` is offered to every cluster alike.
    Spreading work by fair-share weight alone piled it where affinity confines many tenants
    to few accelerators (korea-2025's public sectors share the 51k government GPUs) and
    left the rest of the fleet idle.
    """
    share = {p: _project_weight(tenancy, p) for p in tenancy.projects}
    pools = fleet.gpus_by_pool  # (cluster index, model) -> accelerators
    reach = {p: _reach(fleet, tenancy, p) for p in tenancy.projects}
    guaranteed: dict[int, dict[int, float]] = {p: {} for p in tenancy.projects}
    for p in tenancy.projects:
        for model, g in tenancy.nodes[p].guaranteed.items():
            where = {
                (ci, m): n
                for (ci, m), n in pools.items()
                if ci in reach[p] and (model == ANY_MODEL or m == model)
            }
            total = sum(where.values())
            for (ci, _m), n in where.items():
                guaranteed[p][ci] = guaranteed[p].get(ci, 0.0) + g * n / total
    free: dict[int, float] = {}
    for (ci, _m), n in pools.items():
        free[ci] = free.get(ci, 0.0) + n
    claim: dict[int, float] = {}
    for p in tenancy.projects:
        for ci, held in guaranteed[p].items():
            free[ci] -= held
        for ci in reach[p]:
            claim[ci] = claim.get(ci, 0.0) + share[p]
    out = []
    for p in tenancy.projects:
        w = sum(guaranteed[p].values())
        w += sum(max(free.get(ci, 0.0), 0.0) * share[p] / claim[ci] for ci in reach[p])
        out.append((tenancy.nodes[p].path, w))
    if not any(w > 0 for _, w in out):  # no project reaches any accelerator: by weight
        out = [(tenancy.nodes[p].path, share[p]) for p in tenancy.projects]
    return out


def _project_weight(tenancy: Tenancy, project: int) -> float:
    """A project's share of the fair-share tree (product of weight shares down the path)."""
    share = 1.0
    for i in tenancy.ancestors(project):
        node = tenancy.nodes[i]
        siblings = tenancy.children.get(node.parent, [])
        total = sum(tenancy.nodes[s].weight for s in siblings)
        share *= node.weight / total if total > 0 else 1.0
    return share


def map_tenants(jobs: list[WorkloadJob], tenancy: Tenancy) -> tuple[list[WorkloadJob], str]:
    """Give jobs whose tenant the tenancy does not know a project, deterministically.

    Unknown trace tenants, sorted by name, are dealt round-robin onto the projects in tree
    order; jobs of a known tenant keep it.
    """
    unknown = sorted({j.tenant for j in jobs if tenancy.resolve(j.tenant) is None})
    if not unknown:
        return jobs, ""
    projects = [tenancy.nodes[p].path for p in tenancy.projects]
    mapping = {t: projects[i % len(projects)] for i, t in enumerate(unknown)}
    out = [replace(j, tenant=mapping[j.tenant]) if j.tenant in mapping else j for j in jobs]
    return out, f"{len(unknown)} trace tenants mapped onto {len(projects)} projects round-robin"


def check_classes(jobs: Sequence[WorkloadJob], tenancy: Tenancy, source: str) -> None:
    """Refuse a job whose priority class its project does not allow (``TraceError``).

    The twin keeps the service's rule: ``reserved`` and ``high`` are granted in the tenants
    file (``allowed_classes``), so a trace cannot preempt with a class its tenant lacks.
    """
    for j in jobs:
        project = tenancy.resolve(j.tenant)
        if project is None:
            continue
        allowed = tenancy.allowed_classes(project)
        if j.priority_class not in allowed:
            raise TraceError(
                source,
                j.source_line,
                "priority_class",
                f"job {j.id!r}: class {j.priority_class!r} is not allowed in project "
                f"{tenancy.nodes[project].path!r} (allowed: {', '.join(sorted(allowed))}); "
                "grant it with allowed_classes in the tenants file",
            )


def build_scenario(
    fleet_name: str,
    tenants_name: str | None,
    workload: str,
    *,
    seed: int = 0,
    load: float = 0.8,
    hours: float = 24.0,
    fmt: str = "auto",
    skip_bad_rows: bool = False,
    catalogue: Path | None = None,
) -> Scenario:
    """Load the fleet and tenants, and resolve the workload against them.

    ``catalogue``: a site's catalogue file over the shipped one (``extend_catalogue``).

    A trace row the scheduler would refuse (unknown priority class, kind, topology, model or
    stack; a gang shape that does not add up) raises ``TraceError`` naming file, line and
    field (``gpupool.sim.vetting``); with ``skip_bad_rows`` such rows are left out instead
    and listed in ``Scenario.skipped``.
    """
    fleet = load_fleet(fleet_name, site_catalogue(catalogue))
    tname = tenants_name or default_tenants_for(fleet.name)
    tenancy = load_tenants(tname, fleet)
    return scenario_from(
        fleet, tenancy, workload, fleet_label=fleet_name, tenants_label=tname, seed=seed, load=load,
        hours=hours, fmt=fmt, skip_bad_rows=skip_bad_rows,
    )  # fmt: skip


def scenario_from(
    fleet: Fleet,
    tenancy: Tenancy,
    workload: str,
    *,
    fleet_label: str,
    tenants_label: str,
    seed: int = 0,
    load: float = 0.8,
    hours: float = 24.0,
    fmt: str = "auto",
    skip_bad_rows: bool = False,
) -> Scenario:
    """Resolve the workload against a fleet and tenancy already built (``build_scenario``'s
    second half; a sweep builds changed fleets and tenancies and comes in here)."""
    fleet_name, tname = fleet_label, tenants_label
    jobs, what = load_workload(workload, fleet, tenancy, seed=seed, load=load, hours=hours, fmt=fmt)
    skipped: list[TraceError] = []
    if not (workload == "synthetic" or workload.startswith("synthetic:")):
        jobs, skipped = vet_workload(jobs, fleet.catalogue, workload, skip=skip_bad_rows)
    jobs, mapped = map_tenants(jobs, tenancy)
    check_classes(jobs, tenancy, workload)
    context = {
        "fleet": f"{fleet_name}: {fleet.total_gpus:,} accelerators on {len(fleet.nodes):,} nodes",
        "tenants": f"{tname}: {len(tenancy.projects)} projects",
        "workload": f"{what}: {len(jobs):,} jobs",
        "seed": str(seed),
    }
    if mapped:
        context["tenant mapping"] = mapped
    if skipped:
        first = skipped[0]
        context["skipped rows"] = f"{len(skipped):,} bad trace rows left out (first: {first})"
    reference = None
    table = None
    if workload == "synthetic" or workload.startswith("synthetic:"):
        reference = ThroughputTable.from_catalogue(fleet.catalogue).reference
        context["durations"] = f"on {reference}, scaled by each job's throughput where it runs"
    elif _gavel_workload(jobs, fleet):
        # Gavel's job types on Gavel's models: their measured throughputs, V100 durations
        table = gavel_throughput_table()
        reference = table.reference
        context["durations"] = "on V100, scaled by Gavel's measured throughput of the job type"
    return Scenario(fleet, tenancy, jobs, context, reference, table, skipped)


def _gavel_workload(jobs: Sequence[WorkloadJob], fleet: Fleet) -> bool:
    """Are all jobs of Gavel's job types, on a fleet of models Gavel measured?"""
    types = {job_type for job_type, _ in gavel_throughputs()}
    classes = {j.workload_class for j in jobs}
    return bool(classes) and classes <= types and set(fleet.gpus_by_model()) <= set(GAVEL_MODELS.values())


def run_policies(
    scenario: Scenario,
    policies: Sequence[str],
    *,
    base: SchedulerConfig | None = None,
    sim: SimConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[RunResult]:
    """Simulate the scenario once per policy (``name`` or ``name+easy``)."""
    results = []
    for text in policies:
        name, backfill = parse_policy(text)
        cfg = with_policy_defaults(replace(base or SchedulerConfig(), policy=name, backfill=backfill))
        if cfg.throughputs is None and scenario.throughputs is not None:
            cfg = replace(cfg, throughputs=scenario.throughputs)
        simcfg = replace(sim or SimConfig(), scheduler=cfg)
        if simcfg.reference_model is None and scenario.reference_model is not None:
            simcfg = replace(simcfg, reference_model=scenario.reference_model)
        cb = None if progress is None else (lambda d, n, _t=text: progress(_t, d, n))
        result = simulate(scenario.fleet, scenario.tenancy, scenario.jobs, simcfg, progress=cb)
        result.meta["skipped_rows"] = len(scenario.skipped)
        results.append(result)
    return results
