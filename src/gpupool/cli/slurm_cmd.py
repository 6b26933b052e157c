"""``gpupool fleet import-slurm``: a Slurm cluster's slurm.conf as a gpupool fleet file on stdout.

This module owns only the command: options, error handling (one red line, exit code 2) and
printing. Reading slurm.conf and building the document is ``gpupool.fleetfile.slurm_inventory``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gpupool.core.accelerator import CatalogueError
from gpupool.fleetfile import load_catalogue
from gpupool.fleetfile.slurm_inventory import (
    SlurmInventoryError,
    fleet_document,
    fleet_yaml,
    read_slurm_conf,
)

__all__ = ["import_slurm"]


def import_slurm(
    slurm_conf: Annotated[
        Path, typer.Option("--slurm-conf", help="The cluster's slurm.conf (gres.conf is read beside it).")
    ],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Map a GRES type to a catalogue model: h100_80g=H100 (repeatable)."),
    ] = None,
    site: Annotated[str, typer.Option(help="Site name (default: the ClusterName).")] = "",
) -> None:
    """Print a fleet file for the Slurm cluster in SLURM_CONF: nodes, GPU types and counts, partitions."""
    models: dict[str, str] = {}
    for pair in model or []:
        typ, sep, name = pair.partition("=")
        if not sep or not typ or not name:
            _fail(f"--model {pair!r}: expected TYPE=MODEL, e.g. h100_80g=H100")
        models[typ] = name
    try:
        doc = fleet_document(read_slurm_conf(slurm_conf), load_catalogue(), models, site)
    except (SlurmInventoryError, CatalogueError) as e:
        _fail(str(e))
    typer.echo(fleet_yaml(doc), nl=False)


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
