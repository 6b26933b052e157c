"""``gpupool twin snapshot|replay``: the live pool as the twin's files, and its log replayed.

This module owns the two commands: ``snapshot`` reads ``GET /v1/twin/snapshot`` of the
configured server (a pool-admin or viewer token) and writes the folder
``gpupool.service.twin_snapshot`` describes; ``replay`` runs the event log since a time
through a fresh core (rebuilt at every logged restore point, so a log that spans service
restarts replays too) and says whether the decisions match, or where they first diverge.
Bad input ends in one line and exit 2; a divergence exits 1.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from gpupool.client.api import GpupoolClient
from gpupool.client.config import ClientConfig
from gpupool.client.errors import ClientError
from gpupool.translation import _

twin_app = typer.Typer(
    help=_("The digital twin of the live pool: snapshots and replays."), no_args_is_help=True
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"{_('error:')} {message}", err=True)
    raise typer.Exit(2)


def fetch_snapshot(url: str | None, since_ms: int | None, history_h: float) -> dict[str, Any]:
    """The snapshot document of the server at ``url`` (default: the configured one)."""
    cfg = ClientConfig.load()
    params: dict[str, Any] = {"history_h": history_h}
    if since_ms is not None:
        params["since"] = since_ms
    try:
        with GpupoolClient(url or cfg.url, cfg.token, timeout_s=300) as c:
            doc: dict[str, Any] = c._json("GET", "/v1/twin/snapshot", params=params)
    except ClientError as e:
        _fail(str(e))
    return doc


def snapshot_folder(source: str, since_ms: int | None, history_h: float = 24.0) -> Path:
    """A snapshot folder: ``source`` itself, or one fetched from the server at URL ``source``."""
    from gpupool.service.twin_snapshot import write_folder

    if source.startswith(("http://", "https://")):
        out = Path(tempfile.mkdtemp(prefix="gpupool-snapshot-"))
        write_folder(fetch_snapshot(source, since_ms, history_h), out)
        return out
    folder = Path(source)
    if not (folder / "state.json").is_file():
        _fail(_("{path}: not a snapshot folder (no state.json)", path=source))
    return folder


@twin_app.command("snapshot")
def snapshot(
    out: Annotated[Path, typer.Option("--out", "-o", help=_("Folder to write the snapshot in."))],
    url: Annotated[
        str | None, typer.Option("--url", help=_("Server URL (default: the configured one)."))
    ] = None,
    since: Annotated[
        int | None,
        typer.Option("--since", help=_("Include the event log from this time on (ms since the epoch).")),
    ] = None,
    history_h: Annotated[
        float, typer.Option("--history-h", help=_("Hours of recent submissions kept."))
    ] = 24.0,
) -> None:
    """Write the live fleet, tenants, state, history (and event log) as the twin's files."""
    from gpupool.service.twin_snapshot import write_folder

    doc = fetch_snapshot(url, since, history_h)
    files = write_folder(doc, out)
    state = doc["state"]
    typer.echo(
        _(
            "snapshot at {t} ms: {running} running, {pending} pending jobs, {drained} drained nodes, "
            "{history} jobs of history; wrote {files}",
            t=doc["taken_ms"],
            running=sum(1 for s in state["steps"] if s[0] == "run"),
            pending=len(state["pending"]),
            drained=len(state["drained"]),
            history=len(doc["history"]),
            files=", ".join(f.name for f in files),
        )
    )


@twin_app.command("replay")
def replay_cmd(
    source: Annotated[str, typer.Option("--from", help=_("Snapshot folder or server URL."))],
    since: Annotated[
        int, typer.Option("--since", help=_("Replay the event log from this time on (ms)."))
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=_("Print the report as JSON."))] = False,
) -> None:
    """Replay the event log since a time through the core; report a match or the first divergence."""
    from gpupool.service.replay import check, cycles_of
    from gpupool.service.twin_snapshot import Snapshot

    folder = snapshot_folder(source, since)
    try:
        snap = Snapshot.read(folder)
        cycles = cycles_of(snap.events())
    except (ValueError, KeyError) as e:
        _fail(str(e))
    # from the last restore point at or before --since (the log may reach further back)
    starts = [i for i, c in enumerate(cycles) if c.restore is not None and c.at_ms <= since]
    if starts:
        cycles = cycles[starts[-1] :]
    report = check(cycles, snap.fleet, snap.config)
    doc = report.to_doc()
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False))
    elif report.cycles == 0:
        typer.echo(_("nothing to replay: no restore point in the event log since {t}", t=since))
    elif report.matches:
        typer.echo(
            _(
                "decisions match: {cycles} cycles, {events} events, {decisions} decisions, across {restores} "
                "restore points (cycles {a}..{b})",
                cycles=report.cycles,
                events=report.events,
                decisions=report.decisions,
                restores=report.restores,
                a=report.first_cycle,
                b=report.last_cycle,
            )
        )
    else:
        d = doc["divergence"]
        typer.echo(
            _(
                "first divergence at cycle {cycle} ({t} ms), decision {i}: "
                "logged {logged}, replayed {replayed}",
                cycle=d["cycle"],
                t=d["at_ms"],
                i=d["index"],
                logged=json.dumps(d["logged"][:1]),
                replayed=json.dumps(d["replayed"][:1]),
            )
        )
    if not report.matches and report.cycles:
        raise typer.Exit(1)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def whatif(
    source: Annotated[str, typer.Option("--from", help=_("Snapshot folder or server URL."))],
    add_nodes: Annotated[
        list[str] | None, typer.Option("--add-nodes", help=_("CLUSTER:MODEL:COUNT[:GPUS], repeatable."))
    ] = None,
    remove_nodes: Annotated[
        list[str] | None, typer.Option("--remove-nodes", help=_("CLUSTER:MODEL:COUNT, repeatable."))
    ] = None,
    move_nodes: Annotated[
        list[str] | None,
        typer.Option("--move-nodes", help=_("FROM_CLUSTER:TO_CLUSTER:MODEL:COUNT, repeatable.")),
    ] = None,
    guarantee: Annotated[
        list[str] | None, typer.Option("--guarantee", help=_("PROJECT/PATH:MODEL:GPUS, repeatable."))
    ] = None,
    weight: Annotated[
        list[str] | None, typer.Option("--weight", help=_("TENANT/PATH:WEIGHT, repeatable."))
    ] = None,
    award: Annotated[
        list[str] | None, typer.Option("--award", help=_("PROJECT/PATH:GPU_HOURS, repeatable."))
    ] = None,
    scale_load: Annotated[
        float, typer.Option("--scale-load", help=_("Recent arrival rate times this."))
    ] = 1.0,
    trace: Annotated[
        Path | None, typer.Option("--trace", help=_("A trace to run instead of the scaled history."))
    ] = None,
    hours: Annotated[float, typer.Option("--hours", help=_("Simulated horizon in hours."))] = 24.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    ray_address: Annotated[
        str | None, typer.Option("--ray", help=_("Run the two simulations on Ray: 'local' or an address."))
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """A what-if from the live state: the snapshot and the changes, baseline and change side by side."""
    from gpupool.fleetfile import FleetFileError
    from gpupool.service.live_whatif import ChangeError, Changes, run
    from gpupool.sim.workload import TraceError

    changes = Changes(
        {"add_nodes": add_nodes or [], "remove_nodes": remove_nodes or [], "move_nodes": move_nodes or [],
         "guarantees": guarantee or [], "weights": weight or [], "awards": award or []}
    )  # fmt: skip
    try:
        ch = changes.build(scale_load=scale_load, hours=hours, seed=seed, trace=str(trace) if trace else None)
    except ChangeError as e:
        _fail(str(e))
    folder = snapshot_folder(source, None)
    serial = ray_address is None
    address = None if ray_address in (None, "local") else ray_address
    try:
        result = run(folder, ch, serial=serial, address=address)
    except (ChangeError, FleetFileError, TraceError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(_("what-if over {h:g} h ({policy}): {changes}", h=ch.hours, policy=result["policy"],
                 changes="; ".join(result["changes"]) or _("no change")))  # fmt: skip
    width = max(len(r["what"]) for r in result["compare"])
    typer.echo(f"{'':{width}}  {_('baseline'):>14}  {_('change'):>14}")
    for r in result["compare"]:
        typer.echo(f"{r['what']:{width}}  {_fmt(r['baseline']):>14}  {_fmt(r['change']):>14}")
