"""``gpupool fleet ...`` and ``gpupool tenants ...``: look at fleets, the catalogue and tenant trees.

This module owns two Typer sub-apps, ``fleet_app`` (``show``, ``catalogue``) and
``tenants_app`` (``show``), that the main CLI mounts with ``app.add_typer``. They load files
or presets through ``gpupool.fleetfile`` and print a Rich summary or one JSON object. A bad
file is a user error, not a crash: one red line on stderr naming the place, exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from gpupool.core.accelerator import Catalogue, CatalogueError
from gpupool.core.fleet import Fleet, FleetError
from gpupool.core.tenancy import Tenancy, TenancyError
from gpupool.fleetfile import (
    FleetFileError,
    fleet_presets,
    load_catalogue,
    load_fleet,
    load_tenants,
    site_catalogue,
    tenant_presets,
)

__all__ = ["fleet_app", "tenants_app"]

T = TypeVar("T")

#: Exit code for bad input (a file or preset that cannot be used), as click uses for usage errors.
EXIT_BAD_INPUT = 2

fleet_app = typer.Typer(
    help="Inspect fleets (sites, clusters, blocks, racks, nodes) and the accelerator catalogue.",
    no_args_is_help=True,
)
tenants_app = typer.Typer(
    help="Inspect tenant trees (sectors, organisations, projects).", no_args_is_help=True
)

_FLEET_HELP = f"A fleet file (.yaml, .yml, .toml) or a preset: {', '.join(fleet_presets())}."
_TENANTS_HELP = f"A tenants file (.yaml, .yml, .toml) or a preset: {', '.join(tenant_presets())}."
_JSON_HELP = "Print one JSON object instead of the Rich summary."


_CATALOGUE_HELP = "A site's catalogue file over the shipped one (models added or replaced)."


def _load(load: Callable[[], T]) -> T:
    """Run a loader; turn bad input into one red line and exit code 2 (no traceback)."""
    try:
        return load()
    except (FleetFileError, FleetError, TenancyError, CatalogueError) as e:
        _fail(str(e))


def _fail(message: str) -> NoReturn:
    # Text, not markup: messages hold document paths such as ``sites[1]`` that Rich would eat.
    Console(stderr=True).print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _n(x: int | float) -> str:
    """Thousands separators; a whole float prints as an integer (a budget of 20,000, not 20,000.0)."""
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return f"{x:,}"


def _many(n: int, word: str) -> str:
    return f"{_n(n)} {word}{'' if n == 1 else 's'}"


# --- fleet show ------------------------------------------------------------------------------


def fleet_summary(fleet: Fleet) -> dict[str, Any]:
    """The fleet's own summary plus topology totals, ready for JSON."""
    out = fleet.summary()
    nodes_by_model: dict[str, int] = {}
    for n in fleet.nodes:
        nodes_by_model[n.model] = nodes_by_model.get(n.model, 0) + 1
    out["totals"] = {
        "sites": len(fleet.sites),
        "clusters": len(fleet.clusters),
        "blocks": len(fleet.blocks),
        "racks": len(fleet.racks),
        "nvlink_racks": sum(1 for r in fleet.racks if r.nvlink),
        "nodes": len(fleet.nodes),
        "gpus": fleet.total_gpus,
    }
    out["nodes_by_model"] = dict(sorted(nodes_by_model.items()))
    return out


@fleet_app.command("show")
def fleet_show(
    fleet: Annotated[str, typer.Argument(help=_FLEET_HELP, show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
    catalogue: Annotated[Path | None, typer.Option("--catalogue", help=_CATALOGUE_HELP)] = None,
) -> None:
    """Summarise a fleet: sites, clusters, blocks, racks, nodes, accelerators per model."""
    f = _load(lambda: load_fleet(fleet, site_catalogue(catalogue)))
    summary = fleet_summary(f)
    if as_json:
        _print_json(summary)
        return
    console = Console()
    totals = summary["totals"]
    console.print(Text.assemble(("Fleet ", "bold"), (f.name, "bold cyan"), f"  {f.description}"))
    console.print(
        f"{_many(totals['sites'], 'site')}, {_many(totals['clusters'], 'cluster')}, "
        f"{_many(totals['blocks'], 'block')}, {_many(totals['racks'], 'rack')} "
        f"({_n(totals['nvlink_racks'])} NVLink), {_many(totals['nodes'], 'node')}, "
        f"{_many(totals['gpus'], 'accelerator')}",
        highlight=False,
    )
    table = Table(title="Clusters", title_justify="left")
    for col in ("site", "cluster", "backend"):
        table.add_column(col)
    for col in ("blocks", "racks", "NVLink racks", "nodes", "GPUs"):
        table.add_column(col, justify="right")
    table.add_column("models")
    for c in summary["clusters"]:
        table.add_row(
            Text(c["site"]),
            Text(c["name"]),
            c["backend"],
            _n(c["blocks"]),
            _n(c["racks"]),
            _n(c["nvlink_racks"]),
            _n(c["nodes"]),
            _n(c["gpus"]),
            Text(", ".join(f"{m} {_n(g)}" for m, g in c["models"].items())),
        )
    console.print(table)
    models = Table(title="Accelerators by model", title_justify="left")
    for col in ("model", "vendor", "stack"):
        models.add_column(col)
    for col in ("memory GB", "nodes", "GPUs", "share"):
        models.add_column(col, justify="right")
    for m, g in summary["models"].items():
        am = f.catalogue[m]
        models.add_row(
            m,
            am.vendor,
            am.stack,
            str(am.memory_gib),
            _n(summary["nodes_by_model"][m]),
            _n(g),
            f"{100 * g / f.total_gpus:.1f}%",
        )
    console.print(models)


# --- fleet catalogue -------------------------------------------------------------------------


def catalogue_summary(cat: Catalogue) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": m.name,
                "vendor": m.vendor,
                "memory_gib": m.memory_gib,
                "stack": m.stack,
                "description": m.description,
                "throughput": dict(m.throughput),
                "estimated": sorted(m.estimated),
                "sources": dict(m.sources),
                "sharing": sorted(m.sharing),
                "mig": {
                    p.name: {"compute": p.compute, "memory_gib": p.memory_gib, "placements": list(p.starts)}
                    for p in m.mig.profiles.values()
                }
                if m.mig
                else {},
            }
            for m in cat
        ]
    }


@fleet_app.command("catalogue")
def fleet_catalogue(
    as_json: Annotated[
        bool, typer.Option("--json", help=_JSON_HELP + " Includes every figure's source.")
    ] = False,
    catalogue: Annotated[Path | None, typer.Option("--catalogue", help=_CATALOGUE_HELP)] = None,
) -> None:
    """List the accelerator models and their throughput relative to the H100 (* = estimate)."""
    cat = _load(lambda: site_catalogue(catalogue) or load_catalogue())
    if as_json:
        _print_json(catalogue_summary(cat))
        return
    classes: list[str] = []
    for m in cat:
        classes.extend(c for c in m.throughput if c not in classes)
    table = Table(
        title="Accelerator catalogue (throughput relative to H100; * = estimate)", title_justify="left"
    )
    for col in ("model", "vendor", "stack"):
        table.add_column(col)
    table.add_column("GB", justify="right")
    for c in classes:
        table.add_column(c, justify="right")
    for m in cat:
        figures = [
            f"{m.throughput[c]:.3g}{'*' if c in m.estimated else ''}" if c in m.throughput else "-"
            for c in classes
        ]
        table.add_row(m.name, m.vendor, m.stack, str(m.memory_gib), *figures)
    Console().print(table)


# --- tenants show ----------------------------------------------------------------------------


def tenancy_summary(t: Tenancy, fleet: Fleet | None) -> dict[str, Any]:
    """The tenant tree as nested JSON; with a fleet, each project's entitled share of it."""
    shares = t.entitlement(fleet.total_gpus) if fleet is not None else {}

    def node(i: int) -> dict[str, Any]:
        n = t.nodes[i]
        out: dict[str, Any] = {
            "key": n.path.rsplit("/", 1)[-1],
            "path": n.path,
            "name": n.name,
            "kind": n.kind,
            "weight": n.weight,
            "guaranteed": dict(n.guaranteed),
            "borrow_limit": None if n.borrow_limit is None else dict(n.borrow_limit),
            "budget_gpu_hours": n.budget_gpu_hours,
            "over_budget": n.over_budget,
            "clusters": list(n.clusters),
        }
        kids = t.children.get(i)
        if kids:
            out["children"] = [node(k) for k in kids]
        else:
            out["members"] = list(n.members)
            if fleet is not None:
                out["entitlement"] = shares.get(n.path, 0.0)
        return out

    return {
        "name": t.name,
        "fleet": fleet.name if fleet is not None else None,
        "projects": len(t.projects),
        "tenants": [node(i) for i in t.children.get(-1, [])],
    }


def _tenant_label(t: Tenancy, i: int, shares: dict[str, float]) -> Text:
    n = t.nodes[i]
    key = n.path.rsplit("/", 1)[-1]
    label = Text.assemble((key, "bold"))
    if n.name != key:
        label.append(f"  {n.name}", style="cyan")
    facts = [f"weight {n.weight:g}"]
    if n.guaranteed:
        facts.append("guaranteed " + ", ".join(f"{m} {_n(g)}" for m, g in n.guaranteed.items()))
    if n.borrow_limit is not None:
        facts.append("borrow <= " + ", ".join(f"{m} {_n(g)}" for m, g in n.borrow_limit.items()))
    if n.budget_gpu_hours is not None:
        facts.append(f"budget {_n(n.budget_gpu_hours)} GPU-h ({n.over_budget} when spent)")
    if n.clusters:
        facts.append("clusters " + ", ".join(n.clusters))
    if n.path in shares:
        facts.append(f"entitled {100 * shares[n.path]:.2f}%")
    label.append("  " + " · ".join(facts), style="dim")
    return label


@tenants_app.command("show")
def tenants_show(
    tenants: Annotated[str, typer.Argument(help=_TENANTS_HELP, show_default=False)],
    fleet: Annotated[
        str | None,
        typer.Option(
            "--fleet", help="Check the tenants against this fleet (file or preset) and show shares."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    """Show a tenant tree: display names, weights, guarantees, budgets, members."""
    f = _load(lambda: load_fleet(fleet)) if fleet is not None else None
    t = _load(lambda: load_tenants(tenants, f))
    if as_json:
        _print_json(tenancy_summary(t, f))
        return
    shares = t.entitlement(f.total_gpus) if f is not None else {}
    title = Text.assemble(("Tenants ", "bold"), (t.name, "bold cyan"))
    if f is not None:
        title.append(f"  (checked against fleet {f.name}, {_n(f.total_gpus)} accelerators)", style="dim")
    root = Tree(title)

    def add(branch: Tree, i: int) -> None:
        sub = branch.add(_tenant_label(t, i, shares))
        kids = t.children.get(i)
        if kids:
            for k in kids:
                add(sub, k)
        elif t.nodes[i].members:
            sub.add(Text("members: " + ", ".join(t.nodes[i].members), style="green"))

    for i in t.children.get(-1, []):
        add(root, i)
    Console().print(root)
