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
