"""The ``gpupool sweep`` command: a cross product of simulations on Ray, summarised over seeds.

This module owns the sweep's command line: it parses the lists (policies, changes, loads,
seeds), runs the sweep (``gpupool.sim.sweep``) with a progress bar on stderr, prints the
summary (mean ± 95 % confidence half-width per policy, change and load) and writes the
table and report (``gpupool.sim.sweep_report``). Bad input ends in one red line and exit 2.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

err_console = Console(stderr=True)
out_console = Console()


#: Short headers of the summary's columns (``SHOWN``'s metrics, in order).
HEADERS = ("queue h", "p99 queue h", "util %", "Jain", "node failures", "GPU-h lost to failures")


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _split(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        _fail(f"--{what} is empty")
    return items


def _numbers(text: str, what: str, kind: type[float] | type[int]) -> list[Any]:
    out = []
    for t in _split(text, what):
        try:
            out.append(kind(t))
        except ValueError:
            _fail(f"--{what}: {t!r} is not a{'n integer' if kind is int else ' number'}")
    return out


def sweep(
    fleet: Annotated[str, typer.Option("--fleet", "-f", help="Fleet file or preset.")] = "demo",
    tenants: Annotated[str | None, typer.Option("--tenants", "-t", help="Tenants file or preset.")] = None,
    workload: Annotated[str, typer.Option("--workload", "-w", help="Trace file or synthetic.")] = "synthetic",
    hours: Annotated[float, typer.Option(help="Length of a synthetic workload in hours.")] = 24.0,
    policies: Annotated[str, typer.Option(help="Comma-separated policies (e.g. fifo,fairshare+easy).")] = (
        "fifo,fairshare+easy"
    ),
    change: Annotated[
        list[str] | None,
        typer.Option(
            "--change",
            "-c",
            help="A scenario change, repeatable: NAME or NAME=ITEM,... with ITEM fleet:SCALE, "
            "failures:MULTIPLE (of the published rate), mttr:HOURS, guarantee:PROJECT/MODEL:GPUS. "
            "Default: base (no change).",
        ),
    ] = None,
    loads: Annotated[str, typer.Option(help="Comma-separated offered loads (fractions).")] = "0.8",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (workload and failure draws).")] = "0,1,2",
    address: Annotated[
        str | None,
        typer.Option(help="A running Ray cluster (ray://HOST:10001 or HOST:6379); default: a local Ray."),
    ] = None,
    cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray (default: all).")] = None,
    serial: Annotated[
        bool, typer.Option("--serial", help="Run the simulations one after another here, without Ray.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write runs.parquet, runs.csv, summary.csv, report.html here."),
    ] = None,
) -> None:
    """Run policies x changes x loads x seeds as independent simulations on Ray; summarise over seeds."""
    from gpupool.core.policy import POLICIES
    from gpupool.sim.scenario import parse_policy
    from gpupool.sim.sweep import SweepError, SweepSpec, parse_change, run_sweep, summarise
    from gpupool.sim.sweep_report import SHOWN, write_sweep

    names = _split(policies, "policies")
    for p in names:
        name, backfill = parse_policy(p)
        if name not in POLICIES:
            _fail(f"unknown policy {name!r} (known: {', '.join(POLICIES)})")
        if backfill not in ("none", "easy"):
            _fail(f"unknown backfill {backfill!r} in {p!r} (expected none or easy)")
    try:
        changes = tuple(parse_change(c) for c in (change or ["base"]))
        spec = SweepSpec(
            fleet, tenants, workload, hours, tuple(names), changes,
            tuple(_numbers(loads, "loads", float)), tuple(_numbers(seeds, "seeds", int)),
        )  # fmt: skip
    except SweepError as e:
        _fail(str(e))
    n = len(spec.runs())
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="gpupool-ray-") as tmp,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as prog,
    ):
        where = "here, one after another" if serial else (address or "a local Ray")
        task = prog.add_task(f"{n} simulations on {where}", total=n)
        try:
            rows = run_sweep(
                spec,
                address=address,
                num_cpus=cpus,
                serial=serial,
                temp_dir=None if address else tmp,
                progress=lambda done, _total: prog.update(task, completed=done),
            )
        except SweepError as e:
            _fail(str(e))
    wall = time.perf_counter() - t0
    summary = summarise(rows)
    table = Table(
        title=f"{n} runs on {fleet} / {workload}, {wall:,.1f} s wall; mean ± 95 % CI over seeds",
        title_justify="left",
    )
    for col in ("policy", "change", "load", "runs", "errors"):
        table.add_column(col, no_wrap=True)
    for header in HEADERS:
        table.add_column(header, justify="right")
    for s in summary:
        cells = [str(s["policy"]), str(s["change"]), f"{s['load']:g}", str(s["runs"]), str(s["errors"])]
        for m, _, f in SHOWN:
            mean, ci = s[f"{m}_mean"], s[f"{m}_ci95"]
            cells.append(
                "-" if mean is None else f"{mean * f:,.3g}" + ("" if ci is None else f" ± {ci * f:,.2g}")
            )
        table.add_row(*cells)
    out_console.print(table)
    for r in rows:
        if r.get("error"):
            err_console.print(
                f"[bold yellow]failed:[/] {r['policy']} / {r['change']} / load {r['load']:g} / "
                f"seed {r['seed']}: {r['error']}",
                highlight=False,
                soft_wrap=True,
            )
    if out is not None:
        path = write_sweep(out, rows, summary, f"gpupool sweep on {fleet} / {workload}")
        err_console.print(f"report: {path}")
