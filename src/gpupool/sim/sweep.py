"""Sweeps: many independent simulations over policies x scenario changes x loads x seeds.

This module owns a sweep's cross product (``SweepSpec.runs``), the scenario changes it can
apply (``Change``: scale the fleet, override tenants' guarantees, inject node failures at a
multiple of the published rate), one run turned into one flat table row (``run_one``), the
execution of all runs on Ray (``run_sweep``; the same code path on a local Ray started here
and on a Ray cluster given by address; ``serial`` runs them one after another in this
process instead, for comparison), and the summary over seeds (``summarise``: mean and 95 %
confidence interval, Student's t, per policy, change and load).

A run that cannot finish (``SimulationStuck``) or whose change is infeasible (a guarantee
above the scaled fleet) is a row with ``error`` set and no metrics: one bad corner of a
sweep does not lose the others.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from gpupool.core.accelerator import CatalogueError
from gpupool.core.fleet import Fleet, FleetError, Node
from gpupool.core.tenancy import ANY_MODEL, Tenancy, TenancyBuilder, TenancyError
from gpupool.fleetfile import FleetFileError, default_tenants_for, load_fleet, load_tenants
from gpupool.sim.failures import DEFAULT_MTTR_H, FailureRates
from gpupool.sim.stall import SimulationStuck
from gpupool.sim.workload import TraceError

#: The metrics of a run kept in the sweep's table (``compute_metrics`` keys).
METRICS: Final = (
    "jobs",
    "finished",
    "unfinished",
    "avg_jct_s",
    "p99_jct_s",
    "avg_queue_s",
    "p99_queue_s",
    "makespan_s",
    "utilization",
    "jain_fairness",
    "preemptions",
    "lost_gpu_hours",
    "node_failures",
    "failure_interruptions",
    "failure_lost_gpu_hours",
    "down_gpu_hours",
    "wall_s",
)
#: Columns that identify a run.
KEYS: Final = ("policy", "change", "load", "seed")
#: Columns a summary groups by (a run's key less its seed).
GROUP: Final = ("policy", "change", "load")
#: Per-sector mean queueing delay columns are named ``queue_s:SECTOR``.
SECTOR_PREFIX: Final = "queue_s:"
T = TypeVar("T")
BAD_CHANGE = (FleetError, FleetFileError, TenancyError, CatalogueError, TraceError, ValueError)


class SweepError(ValueError):
    """A sweep that cannot be run as asked (a bad change, Ray missing or unreachable)."""


@dataclass(frozen=True, slots=True)
class Change:
    """A change to the scenario: the fleet scaled, guarantees overridden, failures injected.

    ``fleet_scale``: each (cluster, model) pool keeps ``round(nodes x scale)`` nodes, at least
    one (copies of its nodes, named ``NAME-xK``, when above 1). ``failure_scale``: node
    failures at this multiple of the published rate (``gpupool.sim.failures``; 0 = none),
    repaired after ``mttr_h`` hours on average. ``guarantees``: (project path, model or
    ``*``, accelerators) set on the tenants after the fleet is scaled.
    """

    name: str = "base"
    fleet_scale: float = 1.0
    failure_scale: float = 0.0
    mttr_h: float = DEFAULT_MTTR_H
    guarantees: tuple[tuple[str, str, int], ...] = ()


CHANGE_SYNTAX: Final = (
    "NAME or NAME=ITEM,ITEM,... with ITEM one of fleet:SCALE, failures:MULTIPLE, mttr:HOURS, "
    "guarantee:PROJECT/PATH/MODEL:GPUS (MODEL * for any)"
)


def parse_change(text: str) -> Change:
    """``flaky=failures:10,mttr:48`` -> ``Change('flaky', failure_scale=10, mttr_h=48)``."""
    name, _, items = text.strip().partition("=")
    name = name.strip()
    if not name:
        raise SweepError(f"change {text!r} has no name ({CHANGE_SYNTAX})")
    ch = Change(name)
    for item in (i.strip() for i in items.split(",") if i.strip()):
        key, _, value = item.partition(":")
        try:
            if key == "fleet":
                ch = replace(ch, fleet_scale=float(value))
                if not ch.fleet_scale > 0:
                    raise ValueError
            elif key == "failures":
                ch = replace(ch, failure_scale=float(value))
                if not ch.failure_scale >= 0:
                    raise ValueError
            elif key == "mttr":
                ch = replace(ch, mttr_h=float(value))
                if not ch.mttr_h > 0:
                    raise ValueError
            elif key == "guarantee":
                target, _, gpus = value.rpartition(":")
                path, _, model = target.rpartition("/")
                if not path or not model or int(gpus) < 0:
                    raise ValueError
                ch = replace(ch, guarantees=(*ch.guarantees, (path, model, int(gpus))))
            else:
                raise SweepError(f"change {name!r}: unknown item {key!r} ({CHANGE_SYNTAX})")
        except ValueError as e:
            if isinstance(e, SweepError):
                raise
            raise SweepError(f"change {name!r}: bad value in {item!r} ({CHANGE_SYNTAX})") from None
    return ch


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One simulation of a sweep."""

    fleet: str
    tenants: str | None
    workload: str
    hours: float
    policy: str
    change: Change
    load: float
    seed: int


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """What a sweep varies: the cross product of its policies, changes, loads and seeds."""

    fleet: str
    tenants: str | None
    workload: str
    hours: float
    policies: tuple[str, ...]
    changes: tuple[Change, ...]
    loads: tuple[float, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        for what, values in (
            ("policies", self.policies),
            ("changes", self.changes),
            ("loads", self.loads),
            ("seeds", self.seeds),
        ):
            if not values:
                raise SweepError(f"a sweep needs at least one of {what}")
            if len(set(values)) != len(values):
                raise SweepError(f"{what} names a value twice: {values}")
        names = [c.name for c in self.changes]
        if len(set(names)) != len(names):
            raise SweepError(f"two changes share a name: {names}")

    def runs(self) -> list[RunSpec]:
        """Every combination, in policy, change, load, seed order."""
        return [
            RunSpec(self.fleet, self.tenants, self.workload, self.hours, p, c, load, seed)
            for p, c, load, seed in itertools.product(self.policies, self.changes, self.loads, self.seeds)
        ]


def scale_fleet(fleet: Fleet, scale: float) -> Fleet:
    """The fleet with each (cluster, model) pool at ``round(nodes x scale)`` nodes (>= 1).

    Below 1 a pool keeps its first nodes; above 1 it gains copies of its nodes in their
    racks (each copy of an NVLink node in an NVLink domain of its own copies).
    """
    if scale == 1.0:
        return fleet
    pools: dict[tuple[int, str], list[Node]] = {}
    for n in fleet.nodes:
        pools.setdefault((n.cluster, n.model), []).append(n)
    chosen: list[tuple[Node, int]] = []  # (original, copy number; 0 = itself)
    for nodes in pools.values():
        target = max(1, round(len(nodes) * scale))
        chosen += [(nodes[i % len(nodes)], i // len(nodes)) for i in range(target)]
    chosen.sort(key=lambda x: (x[1], x[0].index))
    domains: dict[tuple[int, int], int] = {}
    out: list[Node] = []
    for i, (n, k) in enumerate(chosen):
        nv = -1
        if n.nvlink >= 0:
            nv = domains.setdefault((n.nvlink, k), len(domains))
        out.append(replace(n, index=i, name=n.name if k == 0 else f"{n.name}-x{k}", nvlink=nv))
    return Fleet(
        fleet.name, fleet.catalogue, fleet.sites, fleet.clusters, fleet.blocks, fleet.racks, out,
        f"{fleet.description} (scaled x{scale:g})",
    )  # fmt: skip


def override_guarantees(
    tenancy: Tenancy, fleet: Fleet, guarantees: Sequence[tuple[str, str, int]]
) -> Tenancy:
    """The tenancy with ``(project path, model, accelerators)`` guarantees set, validated
    against ``fleet``'s capacity as a tenants file is (``TenancyError`` when they do not fit),
    also when none is set (``fleet`` may be a scaled one)."""
    nodes = list(tenancy.nodes)
    for path, model, gpus in guarantees:
        idx = tenancy.by_path.get(path)
        if idx is None:
            raise TenancyError(f"a change sets a guarantee of unknown tenant {path!r}")
        if model != ANY_MODEL and model not in fleet.gpus_by_model():
            raise TenancyError(f"a change sets a guarantee on model {model!r}, which the fleet does not have")
        g = dict(nodes[idx].guaranteed)
        g[model] = gpus
        nodes[idx] = replace(nodes[idx], guaranteed=g)
    b = TenancyBuilder(tenancy.name)
    b._nodes = nodes  # the builder's checks (children within parents, fleet capacity) re-run
    return b.build(fleet.gpus_by_model())


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Simulate one run of a sweep; its row: the keys, ``METRICS``, per-sector waits, ``error``.

    Imports the simulator here: on a Ray worker this is the first thing that runs.
    """
    from gpupool.core.scheduler import SchedulerConfig
    from gpupool.sim.metrics import compute_metrics
    from gpupool.sim.scenario import run_policies, scenario_from
    from gpupool.sim.simulator import SimConfig

    row: dict[str, Any] = {
        "policy": spec.policy,
        "change": spec.change.name,
        "load": spec.load,
        "seed": spec.seed,
    }
    ch = spec.change
    try:
        base = load_fleet(spec.fleet)
        fleet = scale_fleet(base, ch.fleet_scale)
        tname = spec.tenants or default_tenants_for(fleet.name)
        # read against the fleet as it is; the changed guarantees are checked against the
        # changed fleet, so one change can shrink both
        tenancy = override_guarantees(load_tenants(tname, base), fleet, ch.guarantees)
        scenario = scenario_from(
            fleet, tenancy, spec.workload, fleet_label=spec.fleet, tenants_label=tname,
            seed=spec.seed, load=spec.load, hours=spec.hours,
        )  # fmt: skip
        sim = SimConfig()
        if ch.failure_scale > 0:
            sim = SimConfig(
                failures=FailureRates(mttr_h=ch.mttr_h, scale=ch.failure_scale), failure_seed=spec.seed
            )
        result = run_policies(scenario, [spec.policy], base=SchedulerConfig(), sim=sim)[0]
    except (SimulationStuck, *BAD_CHANGE) as e:
        row.update(dict.fromkeys(METRICS))
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    m = compute_metrics(result)
    row.update({k: m[k] for k in METRICS})
    for s in m["sectors"]:
        row[SECTOR_PREFIX + (s["sector"] or "-")] = s["avg_queue_s"]
    row["error"] = ""
    return row


def _t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, 95 % confidence half-width (Student's t over the values) and count.

    ``None`` values (a run that failed, a metric undefined for it) are left out; the
    half-width is None with fewer than two values.
    """
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return None, None, 0
    mean = sum(xs) / n
    if n < 2:
        return mean, None, n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean, _t975(n - 1) * sd / math.sqrt(n), n


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (policy, change, load): ``runs``, ``errors``, and ``M_mean``/``M_ci95`` (the
    half-width: the interval is mean ± ci95) of every metric and per-sector wait, over seeds."""
    metrics = list(METRICS) + sorted({k for r in rows for k in r if k.startswith(SECTOR_PREFIX)})
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in GROUP), []).append(r)
    out = []
    for key, rs in groups.items():
        s: dict[str, Any] = dict(zip(GROUP, key, strict=True))
        s["runs"] = len(rs)
        s["errors"] = sum(1 for r in rs if r.get("error"))
        for m in metrics:
            mean, ci, _n = mean_ci([r.get(m) for r in rs])
            s[f"{m}_mean"], s[f"{m}_ci95"] = mean, ci
        out.append(s)
    return out


Progress = Callable[[int, int], None]
#: Seconds to wait for a Ray cluster's port to accept a connection before giving up.
CONNECT_TIMEOUT_S: Final = 5.0


def _check_reachable(address: str) -> None:
    """Fail fast when a ``HOST:PORT`` or ``ray://HOST:PORT`` address does not accept TCP
    connections: ``ray.init`` itself retries an unreachable cluster for minutes."""
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" or a form Ray resolves itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise SweepError(f"no Ray cluster answers at {address}: {e}") from None


def run_sweep(
    spec: SweepSpec,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    serial: bool = False,
    temp_dir: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every run of ``spec``, one row each, in ``spec.runs()`` order.

    On Ray: ``address`` None starts a local Ray with ``num_cpus`` CPUs (all by default; no
    dashboard; scratch files under ``temp_dir``); an address (``ray://host:10001`` or
    ``host:6379``) joins a running cluster, whose workers must have gpupool installed. Both
    submit one task per run and collect them as they end. ``serial`` runs them here, one
    after another (no Ray). A Ray that this call starts, it stops.
    """
    return run_tasks(
        run_one,
        spec.runs(),
        address=address,
        num_cpus=num_cpus,
        serial=serial,
        temp_dir=temp_dir,
        progress=progress,
    )


def run_tasks(
    fn: Callable[[T], dict[str, Any]],
    items: Sequence[T],
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    serial: bool = False,
    temp_dir: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """``fn`` of every item, in order: the sweep's runner (Ray, or ``serial`` here), which the
    dashboard's and the CLI's live what-if studies use too (``gpupool.service.live_whatif``)."""
    runs = list(items)
    rows: list[dict[str, Any] | None] = [None] * len(runs)
    if progress is not None:
        progress(0, len(runs))
    if serial:
        for i, r in enumerate(runs):
            rows[i] = fn(r)
            if progress is not None:
                progress(i + 1, len(runs))
        return [r for r in rows if r is not None]
    try:
        import ray
    except ImportError:
        raise SweepError("sweeps run on Ray: pip install 'gpupool[sweep]' (or run with --serial)") from None
    # Ray 2.5x turns token authentication on by default for a cluster it starts; a local
    # sweep's cluster lives as long as this call and listens on this machine only.
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address is not None:
        _check_reachable(address)
    started = False
    if not ray.is_initialized():
        try:
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise SweepError(f"cannot start or reach Ray at {address or 'a local instance'}: {e}") from e
        started = True
    try:
        task = ray.remote(num_cpus=1)(fn)
        refs = {task.remote(r): i for i, r in enumerate(runs)}
        pending = list(refs)
        done_count = 0
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                rows[refs[ref]] = ray.get(ref)
                done_count += 1
            if progress is not None:
                progress(done_count, len(runs))
    finally:
        if started:
            ray.shutdown()
    return [r for r in rows if r is not None]
