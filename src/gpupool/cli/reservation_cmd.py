"""``gpupool reservation create|list|delete``: advance reservations over the API (ADR 0020).

This module owns the reservation commands: a pool admin reserves whole nodes (``--node``, or
``--cluster``/``--model``/``--count``) for a window (``--start`` and ``--end`` or
``--duration``) for tenants (``--tenant``, repeat) or, with none, for maintenance; anyone lists
those they may see. A Rich table by default, the server's JSON with ``--json``; bad input
exits 2 naming the option, a refusal exits 4 with the server's problem.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from gpupool.cli.client_cmd import EXIT_INPUT, JsonOpt, _client, _fail, _out, _print_json, _table, _when
from gpupool.cli.client_cmd import parse_duration as _duration
from gpupool.translation import _

__all__ = ["reservation_app"]

reservation_app = typer.Typer(
    help="Advance reservations (workshops, maintenance): create, list, delete.", no_args_is_help=True
)


def _time(option: str, text: str, as_json: bool) -> int:
    """Epoch ms from ISO 8601 (UTC when no zone is given) or a number of epoch ms."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        _fail(_("{option}: not a time: {text} (give ISO 8601, e.g. 2026-12-24T09:00Z)", option=option,
                text=repr(text)), EXIT_INPUT, as_json)  # fmt: skip
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


@reservation_app.command("create")
def reservation_create(
    start: Annotated[str, typer.Option(help="When the window opens: ISO 8601 (UTC by default) or epoch ms.")],
    end: Annotated[str | None, typer.Option(help="When it closes (or give --duration).")] = None,
    duration: Annotated[str | None, typer.Option(help="How long it lasts: 2h, 1d, 1h30m.")] = None,
    cluster: Annotated[str, typer.Option(help="Cluster of the accelerators (with --model, --count).")] = "",
    model: Annotated[str, typer.Option(help="Accelerator model.")] = "",
    count: Annotated[int, typer.Option(help="Accelerators (rounded up to whole nodes).", min=0)] = 0,
    node: Annotated[list[str] | None, typer.Option("--node", help="A node to reserve (repeat).")] = None,
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="A tenant path that may use it (repeat); none: maintenance."),
    ] = None,
    note: Annotated[str, typer.Option(help="Why (shown with the reservation).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Reserve accelerators for a window, for tenants or for maintenance (pool admins)."""
    start_ms = _time("--start", start, as_json)
    if (end is None) == (duration is None):
        _fail(_("give one of --end and --duration"), EXIT_INPUT, as_json)
    if end is not None:
        end_ms = _time("--end", end, as_json)
    else:
        try:
            end_ms = start_ms + _duration(duration or "") * 1000
        except ValueError as e:
            _fail(f"--duration: {e}", EXIT_INPUT, as_json)
    body: dict[str, Any] = {"start_ms": start_ms, "end_ms": end_ms, "tenants": tenant or [], "note": note}
    if node:
        body["nodes"] = node
    else:
        body |= {"cluster": cluster, "model": model, "count": count}
    with _client(as_json) as c:
        got = c.create_reservation(body)
    if as_json:
        _print_json(got)
        return
    _out().print(_("reservation {id} created", id=got["id"]), highlight=False)


@reservation_app.command("list")
def reservation_list(as_json: JsonOpt = False) -> None:
    """The reservations you may see: all for pool admins and viewers, else your tenants'."""
    with _client(as_json) as c:
        got = c.reservations()
    if as_json:
        _print_json(got)
        return
    t = _table(_("reservations"), ["id", "from", "to", "accelerators", "for", "state", "note"])
    for r in got:
        what = ", ".join(r["nodes"]) or f"{r['count']} x {r['model']} in {r['cluster']}"
        who = ", ".join(r["tenants"]) or _("maintenance")
        start, end = _when(r["start_ms"]), _when(r["end_ms"])
        t.add_row(str(r["id"]), start, end, what, who, r["state"], r["note"] or "-")
    _out().print(t)


@reservation_app.command("delete")
def reservation_delete(
    reservation_id: Annotated[int, typer.Argument(help="The reservation's id.", min=1)],
    as_json: JsonOpt = False,
) -> None:
    """Withdraw a reservation (pool admins)."""
    with _client(as_json) as c:
        c.delete_reservation(reservation_id)
    if as_json:
        _print_json({"id": reservation_id, "deleted": True})
        return
    _out().print(_("reservation {id} deleted", id=reservation_id), highlight=False)
