"""What-if from the live state: a snapshot, changes and a horizon; the baseline and the change.

This module owns ``LiveChange`` (the changes a study makes: nodes added, removed or moved
between clusters; guarantees, weights and GPU-hour awards of tenants; the recent arrival rate
scaled by a factor, or a trace instead; the horizon), applying them to a snapshot's fleet and
tenants documents (so the changed files go through the same validated readers), the
workload (the snapshot's backlog at time 0, then its recent history tiled over the horizon
and thinned or repeated by the factor, seeded), and ``run`` (the baseline, the snapshot
unchanged at a factor of 1, and the change, simulated by the sweep's runner
``gpupool.sim.sweep.run_tasks``; compared side by side: waits per sector and project,
utilisation, guarantees met, Jain's index over tenants with demand).

Approximations (ADR 0017): running jobs re-enter at time 0 with the rest of their walltime
(the twin places them again rather than pinning them to their accelerators), and the decayed
usage of the snapshot is not carried in (both runs start with none, so the comparison is fair).
A guarantee counts as met when its project's jobs waited on average at most
``GUARANTEE_WAIT_S``.
"""

from __future__ import annotations

import copy
import math
import random
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gpupool.service.twin_snapshot import HOUR_MS, Snapshot
from gpupool.sim.workload import WorkloadJob

#: a guaranteed project whose jobs waited on average at most this long had its guarantee
GUARANTEE_WAIT_S = 600.0
MAX_SCALE = 20.0
MAX_HOURS = 24.0 * 14
#: bounds on one item: more nodes than the national fleet has, more accelerators than a node
MAX_NODES = 50_000
MAX_NODE_GPUS = 128


class ChangeError(ValueError):
    """A change that cannot apply (the message names the option and the value)."""


@dataclass(frozen=True, slots=True)
class LiveChange:
    """What a study changes. Nodes: (cluster, model, count, gpus per node); moves: (from
    cluster, to cluster, model, count); guarantees: (project path, model, gpus); weights:
    (tenant path, weight); awards: (project path, GPU-hours)."""

    add_nodes: tuple[tuple[str, str, int, int], ...] = ()
    remove_nodes: tuple[tuple[str, str, int], ...] = ()
    move_nodes: tuple[tuple[str, str, str, int], ...] = ()
    guarantees: tuple[tuple[str, str, int], ...] = ()
    weights: tuple[tuple[str, float], ...] = ()
    awards: tuple[tuple[str, float], ...] = ()
    scale_load: float = 1.0
    hours: float = 24.0
    seed: int = 0
    trace: str | None = None

    def describe(self) -> list[str]:
        out = [f"+{n} x {m} ({g} each) in {c}" for c, m, n, g in self.add_nodes]
        out += [f"-{n} {m} nodes in {c}" for c, m, n in self.remove_nodes]
        out += [f"{n} {m} nodes {a} -> {b}" for a, b, m, n in self.move_nodes]
        out += [f"{p} guaranteed {g} {m}" for p, m, g in self.guarantees]
        out += [f"{p} weight {w:g}" for p, w in self.weights]
        out += [f"{p} +{h:g} GPU-h" for p, h in self.awards]
        if self.scale_load != 1.0:
            out.append(f"load x{self.scale_load:g}")
        if self.trace:
            out.append(f"trace {Path(self.trace).name}")
        return out


def _int(text: str, what: str, low: int = 1, high: int = MAX_NODES) -> int:
    try:
        v = int(text)
    except ValueError:
        raise ChangeError(f"{what}: {text!r} is not a whole number") from None
    if not low <= v <= high:
        raise ChangeError(f"{what}: {v} must be from {low} to {high:,}")
    return v


def _num(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ChangeError(f"{what}: {text!r} is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise ChangeError(f"{what}: {v} must be positive")
    return v


def parse_items(option: str, items: list[str]) -> list[tuple[Any, ...]]:
    """The items of one option, as ``LiveChange`` holds them (``ChangeError`` naming both)."""
    out: list[tuple[Any, ...]] = []
    for text in items:
        parts = [p.strip() for p in text.split(":")]
        what = f"{option} {text!r}"
        if option == "add_nodes" and len(parts) in (3, 4) and all(parts):
            gpus = _int(parts[3], what, 1, MAX_NODE_GPUS) if len(parts) == 4 else 8
            out.append((parts[0], parts[1], _int(parts[2], what), gpus))
        elif option == "remove_nodes" and len(parts) == 3 and all(parts):
            out.append((parts[0], parts[1], _int(parts[2], what)))
        elif option == "move_nodes" and len(parts) == 4 and all(parts):
            out.append((parts[0], parts[1], parts[2], _int(parts[3], what)))
        elif option == "guarantees" and len(parts) == 3 and all(parts):
            out.append((parts[0], parts[1], _int(parts[2], what, 0, 10**7)))
        elif (option == "weights" and len(parts) == 2 and all(parts)) or (
            option == "awards" and len(parts) == 2 and all(parts)
        ):
            out.append((parts[0], _num(parts[1], what)))
        else:
            raise ChangeError(f"{what}: expected {SYNTAX[option]}")
    return out


SYNTAX = {
    "add_nodes": "CLUSTER:MODEL:COUNT[:GPUS]",
    "remove_nodes": "CLUSTER:MODEL:COUNT",
    "move_nodes": "FROM_CLUSTER:TO_CLUSTER:MODEL:COUNT",
    "guarantees": "PROJECT/PATH:MODEL:GPUS",
    "weights": "TENANT/PATH:WEIGHT",
    "awards": "PROJECT/PATH:GPU_HOURS",
}


# -- the fleet and tenants documents, changed -----------------------------------------------


def _clusters(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for s in doc["sites"] for c in s["clusters"]}


def _take_nodes(doc: dict[str, Any], cluster: str, model: str, count: int, what: str) -> int:
    """Remove ``count`` nodes of ``model`` from ``cluster`` (the last ones); their GPUs each."""
    c = _clusters(doc).get(cluster)
    if c is None:
        raise ChangeError(f"{what}: no cluster {cluster!r} (known: {', '.join(_clusters(doc))})")
    racks = [r for b in c["blocks"] for r in b["racks"]]
    have = [(r, n) for r in racks for n in r["nodes"] if n["model"] == model]
    if len(have) < count:
        raise ChangeError(f"{what}: cluster {cluster!r} has {len(have)} {model} nodes, not {count}")
    gpus = have[-1][1]["gpus"] if have else 8
    for r, n in have[len(have) - count :]:
        r["nodes"].remove(n)
    for b in c["blocks"]:
        b["racks"] = [r for r in b["racks"] if r["nodes"]]
    c["blocks"] = [b for b in c["blocks"] if b["racks"]]
    if not c["blocks"]:
        raise ChangeError(f"{what}: cluster {cluster!r} would have no node left")
    return int(gpus)


def _add_nodes(
    doc: dict[str, Any], cluster: str, model: str, count: int, gpus: int, tag: str, what: str
) -> None:
    c = _clusters(doc).get(cluster)
    if c is None:
        raise ChangeError(f"{what}: no cluster {cluster!r} (known: {', '.join(_clusters(doc))})")
    nodes = [
        {"name": f"{cluster}-{tag}-{model.lower()}-n{i:05d}", "model": model, "gpus": gpus}
        for i in range(count)
    ]
    c["blocks"].append(
        {"name": f"whatif-{tag}-{len(c['blocks'])}", "racks": [{"name": "r0", "nodes": nodes}]}
    )


def changed_fleet(doc: dict[str, Any], ch: LiveChange) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for i, (a, b, model, n) in enumerate(ch.move_nodes):
        what = f"move_nodes {a}:{b}:{model}:{n}"
        gpus = _take_nodes(out, a, model, n, what)
        _add_nodes(out, b, model, n, gpus, f"moved{i}", what)
    for c, model, n in ch.remove_nodes:
        _take_nodes(out, c, model, n, f"remove_nodes {c}:{model}:{n}")
    for i, (c, model, n, g) in enumerate(ch.add_nodes):
        _add_nodes(out, c, model, n, g, f"added{i}", f"add_nodes {c}:{model}:{n}:{g}")
    return out


def _tenant(doc: dict[str, Any], path: str, what: str) -> dict[str, Any]:
    parts = path.strip("/").split("/")
    node: dict[str, Any] | None = None
    level: dict[str, Any] = doc["sectors"]
    for depth, name in enumerate(parts):
        node = level.get(name)
        if node is None or depth > 2:
            raise ChangeError(f"{what}: no tenant {path!r}")
        level = node.get(("organisations", "projects", "")[depth], {}) if depth < 2 else {}
    assert node is not None
    return node


def changed_tenants(doc: dict[str, Any], ch: LiveChange) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for path, model, g in ch.guarantees:
        t = _tenant(out, path, f"guarantees {path}:{model}:{g}")
        t.setdefault("guaranteed", {})[model] = g
    for path, w in ch.weights:
        _tenant(out, path, f"weights {path}:{w:g}")["weight"] = w
    for path, h in ch.awards:
        t = _tenant(out, path, f"awards {path}:{h:g}")
        t["budget_gpu_hours"] = float(t.get("budget_gpu_hours") or 0) + h
    return out


# -- the workload --------------------------------------------------------------------------------


def workload(
    snap: Snapshot, history: list[WorkloadJob], scale: float, hours: float, seed: int
) -> list[WorkloadJob]:
    """The backlog at time 0, then the most recent ``hours`` of history (the whole window,
    repeated, when the horizon is longer) at ``scale`` times its rate: each historic job
    ``floor(scale)`` times, once more with the rest's probability, at its time in the period
    plus a uniform jitter of up to a minute; seeded."""
    rng = random.Random(seed)
    now = snap.point.now
    jobs: list[WorkloadJob] = []
    default_ms = snap.config.default_walltime_ms

    def backlog(prefix: str, spec: dict[str, Any], left_ms: int) -> None:
        groups = spec.get("groups") or []
        jobs.append(
            WorkloadJob(
                id=f"{prefix}-{spec['id']}",
                submit_ms=0,
                duration_ms=max(60_000, left_ms),
                gpus=int(spec["gpus"]),
                tenant=str(spec["project"]),
                user=str(spec.get("user", "")),
                gpus_per_worker=int(groups[0]["gpus_per_worker"]) if groups else 0,
                models=tuple(spec.get("models", ())),
                min_memory_gib=int(spec.get("min_memory_gib", 0)),
                stacks=tuple(spec.get("stacks", ())),
                workload_class=str(spec.get("workload_class", "default")),
                walltime_ms=int(spec.get("walltime_ms", 0)),
                priority_class=str(spec.get("priority_class", "normal")),
                kind=str(spec.get("kind", "training")),
            )
        )

    for run in snap.point.running():
        spec = run["spec"]
        wall = int(spec.get("walltime_ms") or 0) or default_ms
        started = next((int(s[1]) for s in snap.point.steps if s[0] in ("run", "task") and s[2] is run), now)
        backlog("running", spec, wall - (now - started))
    for p in snap.point.pending:
        spec = p["spec"]
        backlog("pending", spec, int(spec.get("walltime_ms") or 0) or default_ms)
    window_ms = int(snap.history_h * HOUR_MS)
    horizon_ms = int(hours * HOUR_MS)
    # The most recent ``period`` of history repeats: the last hours before the snapshot for a
    # short horizon, the whole window again and again for a long one.
    period = min(window_ms, horizon_ms)
    offset = window_ms - period
    recent = [w for w in history if w.submit_ms >= offset]
    if recent and period > 0:
        whole, rest = int(scale), scale - int(scale)
        for k in range(math.ceil(horizon_ms / period)):
            for w in recent:
                copies = whole + (1 if rng.random() < rest else 0)
                for c in range(copies):
                    t = k * period + (w.submit_ms - offset) + rng.randint(0, 60_000)
                    if t < horizon_ms:
                        jobs.append(replace(w, id=f"h{k}.{c}-{w.id}", submit_ms=t))
    jobs.sort(key=lambda j: (j.submit_ms, j.id))
    return jobs


# -- the runs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One simulation of a study (a sweep task): files on disk, so that it pickles small."""

    name: str
    fleet: str
    tenants: str
    trace: str
    policy: str
    hours: float
    seed: int


def run_case(case: Case) -> dict[str, Any]:
    """Simulate one case; its ``compute_metrics`` with the guarantees judged."""
    from gpupool.fleetfile import load_fleet, load_tenants
    from gpupool.sim.metrics import compute_metrics
    from gpupool.sim.scenario import run_policies, scenario_from
    from gpupool.sim.simulator import SimConfig

    fleet = load_fleet(case.fleet)
    tenancy = load_tenants(case.tenants, fleet)
    scenario = scenario_from(fleet, tenancy, case.trace, fleet_label=case.name, tenants_label=case.name)
    result = run_policies(scenario, [case.policy], sim=SimConfig(horizon_ms=int(case.hours * HOUR_MS)))[0]
    m = compute_metrics(result)
    guaranteed = {tenancy.nodes[i].path for i in tenancy.projects if tenancy.nodes[i].guaranteed}
    judged = [
        t for t in m["tenants"] if t["tenant"] in guaranteed and t["jobs"] and t["avg_queue_s"] is not None
    ]
    met = [t for t in judged if t["avg_queue_s"] <= GUARANTEE_WAIT_S]
    return {
        "name": case.name,
        "jobs": m["jobs"],
        "finished": m["finished"],
        "avg_queue_s": m["avg_queue_s"],
        "p99_queue_s": m["p99_queue_s"],
        "utilization": m["utilization"],
        "jain_fairness": m["jain_fairness"],
        "guarantees_judged": len(judged),
        "guarantees_met": len(met),
        "gpus": m["total_gpus"],
        "wall_s": m["wall_s"],
        "sectors": {s["sector"]: s["avg_queue_s"] for s in m["sectors"]},
        "projects": {t["tenant"]: t["avg_queue_s"] for t in m["tenants"] if t["jobs"]},
    }


def run(
    folder: Path,
    ch: LiveChange,
    *,
    work: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    serial: bool = True,
    address: str | None = None,
) -> dict[str, Any]:
    """Baseline and change of ``ch`` on the snapshot in ``folder``, side by side."""
    from gpupool.sim.sweep import run_tasks
    from gpupool.sim.trace.reader import read_trace

    snap = Snapshot.read(folder)
    work = work or Path(tempfile.mkdtemp(prefix="gpupool-whatif-"))
    work.mkdir(parents=True, exist_ok=True)
    fleet_doc = yaml.safe_load((folder / "fleet.yaml").read_text(encoding="utf-8"))
    tenants_doc = yaml.safe_load((folder / "tenants.yaml").read_text(encoding="utf-8"))
    history = read_trace(folder / "history.csv", "native")
    if ch.trace:
        history_changed = read_trace(ch.trace)
        changed_jobs = workload(snap, [], 1.0, ch.hours, ch.seed) + list(history_changed)
    else:
        changed_jobs = workload(snap, history, ch.scale_load, ch.hours, ch.seed)
    base_jobs = workload(snap, history, 1.0, ch.hours, ch.seed)
    files: dict[str, tuple[str, str, str]] = {}
    for name, fdoc, tdoc, jobs in (
        ("baseline", fleet_doc, tenants_doc, base_jobs),
        ("change", changed_fleet(fleet_doc, ch), changed_tenants(tenants_doc, ch), changed_jobs),
    ):
        f, t, w = work / f"{name}-fleet.yaml", work / f"{name}-tenants.yaml", work / f"{name}-workload.csv"
        f.write_text(yaml.safe_dump(fdoc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        t.write_text(yaml.safe_dump(tdoc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        if not jobs:
            raise ChangeError("the workload is empty: the snapshot has no backlog and no recent history")
        from gpupool.sim.trace.native import write_native  # polars: not in the API process's imports

        write_native(jobs, w)
        files[name] = (str(f), str(t), str(w))
    policy = snap.config.policy + ("+easy" if snap.config.backfill == "easy" else "")
    cases = [Case(n, f, t, w, policy, ch.hours, ch.seed) for n, (f, t, w) in files.items()]
    rows = run_tasks(run_case, cases, serial=serial, address=address, progress=progress)
    base, changed = rows
    return {
        "changes": ch.describe(),
        "hours": ch.hours,
        "policy": policy,
        "baseline": base,
        "change": changed,
        "compare": compare(base, changed),
    }


def compare(base: Mapping[str, Any], change: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows ``{"what", "baseline", "change"}``: headline figures, then waits per sector and project."""
    rows = [
        {"what": k, "baseline": base[k], "change": change[k]}
        for k in ("jobs", "finished", "gpus", "avg_queue_s", "p99_queue_s", "utilization", "jain_fairness",
                  "guarantees_met", "guarantees_judged")
    ]  # fmt: skip
    for group in ("sectors", "projects"):
        for key in sorted(set(base[group]) | set(change[group])):
            rows.append(
                {
                    "what": f"{group[:-1]} {key}: avg wait s",
                    "baseline": base[group].get(key),
                    "change": change[group].get(key),
                }
            )
    return rows


@dataclass(slots=True)
class Changes:
    """Collects option strings per field before they become a ``LiveChange``."""

    items: dict[str, list[str]] = field(default_factory=dict)

    def build(self, **scalars: Any) -> LiveChange:
        parsed: dict[str, Any] = {k: tuple(parse_items(k, v)) for k, v in self.items.items() if v}
        ch = LiveChange(**parsed, **scalars)
        if not (0 < ch.scale_load <= MAX_SCALE):
            raise ChangeError(f"scale_load: {ch.scale_load:g} must be in (0, {MAX_SCALE:g}]")
        if not (0 < ch.hours <= MAX_HOURS):
            raise ChangeError(f"hours: {ch.hours:g} must be in (0, {MAX_HOURS:g}]")
        return ch
