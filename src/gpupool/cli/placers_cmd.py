"""The ``gpupool compare-placers`` command: the twin's race of the placers of fractions.

This module owns the command-line surface of ``gpupool.sim.fraction_twin``: every placer
(best fit, worst fit, packing, fragmentation-aware) on the same fleet and small-job task
stream, as a table or one JSON object. Bad options end in one line and exit code 2.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from gpupool.fleetfile import FleetFileError, site_catalogue
from gpupool.fleetfile.catalogue import load_catalogue
from gpupool.translation import _

__all__ = ["compare_placers_cmd"]

MIXES = ("uniform", "mixed")


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def compare_placers_cmd(
    nodes: Annotated[int, typer.Option(help="Nodes in the twin's fleet.")] = 32,
    seeds: Annotated[int, typer.Option(help="Task streams to average over (seeds 0..n-1).")] = 3,
    mix: Annotated[
        str,
        typer.Option(help="uniform (HGX H100 shared or MIG on demand) or mixed (also H200, fixed-MIG A100)."),
    ] = "uniform",
    churn: Annotated[
        bool, typer.Option(help="Tasks leave after an exponential time (--no-churn: arrive until full).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    catalogue: Annotated[
        Path | None,
        typer.Option("--catalogue", help="A site's catalogue file over the shipped one."),
    ] = None,
) -> None:
    """Race the placers of fractions (MIG slices, shared GPUs, gangs) on one task stream."""
    from gpupool.core.fraction_placement import Placer
    from gpupool.sim.fraction_twin import FLEET_MIX, UNIFORM_MIX, fraction_fleet, run_placer, tasks_for

    if mix not in MIXES:
        _fail(_("unknown --mix {mix} (expected uniform or mixed)", mix=repr(mix)))
    if not 1 <= nodes <= 4096:
        _fail(_("--nodes must be 1..4096, got {n}", n=nodes))
    if not 1 <= seeds <= 100:
        _fail(_("--seeds must be 1..100, got {n}", n=seeds))
    try:
        cat = site_catalogue(catalogue) or load_catalogue()
        fleet = fraction_fleet(cat, nodes=nodes, mix=UNIFORM_MIX if mix == "uniform" else FLEET_MIX)
    except (FleetFileError, ValueError) as e:
        _fail(str(e))
    out: dict[str, Any] = {
        "nodes": nodes,
        "gpus": fleet.total_gpus,
        "seeds": seeds,
        "churn": churn,
        "placers": {},
    }
    for p in Placer:
        rs = [run_placer(fleet, tasks_for(fleet, s), p, s, churn) for s in range(seeds)]
        out["placers"][p.value] = {
            "allocated_at_first_failure": round(statistics.mean(r.allocated_at_first_failure for r in rs), 4),
            "allocation_rate": {
                k: round(statistics.mean(r.allocation_rate.get(k, 0.0) for r in rs), 4)
                for k in rs[0].allocation_rate
            },
            "stranded_gpus_at_100": round(statistics.mean(r.stranded_gpus for r in rs), 2),
        }
    if as_json:
        print(json.dumps(out))
        return
    table = Table(title=_("Placers of fractions on {gpus} GPUs", gpus=fleet.total_gpus), title_justify="left")
    table.add_column(_("placer"))
    table.add_column(_("allocated at first failure"), justify="right")
    points = list(next(iter(out["placers"].values()))["allocation_rate"])
    for k in points:
        table.add_column(_("placed at {load} load", load=k), justify="right")
    table.add_column(_("stranded GPUs at 100 %"), justify="right")
    for name, r in out["placers"].items():
        table.add_row(
            name,
            f"{r['allocated_at_first_failure']:.1%}",
            *(f"{r['allocation_rate'][k]:.1%}" for k in points),
            f"{r['stranded_gpus_at_100']:.1f}",
        )
    Console().print(table)
