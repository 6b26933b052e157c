"""``gpupool admin tenants|users|memberships|tokens|allocations|calls|applications|drains|audit``.

This module owns the operator's command line over the API: one thin Typer command per API
call of the Python client (``gpupool.client.GpupoolClient``), a Rich table by default and the
server's JSON unchanged with ``--json``. It works with any token; the server decides what the
caller may do (a refusal exits 4 with the problem document; bad input exits 2 naming the
option). The calls and applications commands are those of ``gpupool calls`` and ``gpupool
applications`` (``gpupool.cli.programme_cmd``), mounted here too so that ``gpupool admin``
covers the whole API. ``gpupool admin recover`` (``gpupool.cli.admin_cmd``) is the local,
database-side exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer

from gpupool.cli.client_cmd import (
    EXIT_INPUT,
    JsonOpt,
    _client,
    _fail,
    _out,
    _print_json,
    _table,
    _when,
    parse_duration,
)
from gpupool.cli.programme_cmd import _amounts, _ms, _pairs, applications_app, calls_app
from gpupool.translation import _

__all__ = ["register"]

tenants_app = typer.Typer(
    help="Sectors, organisations and projects: list, show, create, update.", no_args_is_help=True
)
users_app = typer.Typer(help="Users: list, create.", no_args_is_help=True)
memberships_app = typer.Typer(
    help="Who belongs to a project, and as what: list, add, remove.", no_args_is_help=True
)
tokens_app = typer.Typer(
    help="API tokens: list yours, mint one (for any user, as a pool admin), revoke.", no_args_is_help=True
)
allocations_app = typer.Typer(
    help="Allocations of GPU-hours: list, create, change state.", no_args_is_help=True
)
drains_app = typer.Typer(help="Nodes taken out of scheduling: list, drain, undrain.", no_args_is_help=True)

Guarantee = Annotated[
    list[str] | None, typer.Option("--guarantee", help="Guaranteed accelerators per model: MODEL=N (repeat).")
]
BorrowLimit = Annotated[
    list[str] | None,
    typer.Option("--borrow-limit", help="Most accelerators past the guarantee: MODEL=N (repeat)."),
]
Cluster = Annotated[list[str] | None, typer.Option("--cluster", help="Confine to this cluster (repeat).")]
OverBudget = Annotated[
    str | None,
    typer.Option("--over-budget", help="preemptible (run past the budget, preemptibly) or reject."),
]


def _rows(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    t = _table(title, columns)
    for r in rows:
        t.add_row(*("-" if v is None or v == "" else str(v) for v in r))
    _out().print(t)


def _show(got: Mapping[str, Any], title: str) -> None:
    _rows(title, ["field", "value"], ((k, _amounts(v) if isinstance(v, dict) else v) for k, v in got.items()))


def _over_budget(value: str | None, as_json: bool) -> str | None:
    if value is not None and value not in ("preemptible", "reject"):
        _fail(
            _("--over-budget: give preemptible or reject, not {value}", value=repr(value)),
            EXIT_INPUT,
            as_json,
        )
    return value


# -- tenants ---------------------------------------------------------------------------------


@tenants_app.command("list")
def tenants_list(
    kind: Annotated[str | None, typer.Option(help="sector, organisation or project.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The tenants you may see, as a tree (by path)."""
    if kind is not None and kind not in ("sector", "organisation", "project"):
        _fail(
            _("--kind: give sector, organisation or project, not {value}", value=repr(kind)),
            EXIT_INPUT,
            as_json,
        )
    with _client(as_json) as c:
        got = c.tenants(kind=kind)
    if as_json:
        _print_json(got)
        return
    _rows(
        _("tenants"),
        ["path", "kind", "name", "weight", "guaranteed", "borrow limit", "clusters"],
        (
            (t["path"], t["kind"], t.get("name"), t.get("weight"), _amounts(t.get("guaranteed") or {}),
             _amounts(t["borrow_limit"]) if t.get("borrow_limit") else None,
             ", ".join(t.get("clusters") or []))
            for t in got
        ),
    )  # fmt: skip


@tenants_app.command("show")
def tenants_show(
    path: Annotated[str, typer.Argument(help="Tenant path, e.g. academia/snu/vision.")],
    as_json: JsonOpt = False,
) -> None:
    """One tenant."""
    with _client(as_json) as c:
        got = c.tenant(path)
    if as_json:
        _print_json(got)
    else:
        _show(got, got.get("path", path))


@tenants_app.command("create")
def tenants_create(
    key: Annotated[str, typer.Argument(help="The new tenant's key (its last path segment).")],
    parent: Annotated[str | None, typer.Option(help="Parent path: none for a sector.")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    weight: Annotated[float, typer.Option(help="Fair-share weight among its siblings.")] = 1.0,
    guarantee: Guarantee = None,
    borrow_limit: BorrowLimit = None,
    cluster: Cluster = None,
    over_budget: OverBudget = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a sector (no --parent), an organisation or a project."""
    body: dict[str, Any] = {
        "key": key, "name": name, "weight": weight,
        "guaranteed": _pairs(guarantee, "--guarantee", as_json, int), "clusters": list(cluster or []),
    }  # fmt: skip
    if parent is not None:
        body["parent"] = parent
    if borrow_limit:
        body["borrow_limit"] = _pairs(borrow_limit, "--borrow-limit", as_json, int)
    if _over_budget(over_budget, as_json) is not None:
        body["over_budget"] = over_budget
    with _client(as_json) as c:
        got = c.create_tenant(body)
    if as_json:
        _print_json(got)
    else:
        _out().print(
            _("created {kind} {path}", kind=got.get("kind", ""), path=got.get("path", key)), highlight=False
        )


@tenants_app.command("update")
def tenants_update(
    path: Annotated[str, typer.Argument(help="Tenant path.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    weight: Annotated[float | None, typer.Option(help="Fair-share weight.")] = None,
    guarantee: Guarantee = None,
    borrow_limit: BorrowLimit = None,
    cluster: Cluster = None,
    over_budget: OverBudget = None,
    as_json: JsonOpt = False,
) -> None:
    """Change what is given; the rest stays."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if weight is not None:
        changes["weight"] = weight
    if guarantee:
        changes["guaranteed"] = _pairs(guarantee, "--guarantee", as_json, int)
    if borrow_limit:
        changes["borrow_limit"] = _pairs(borrow_limit, "--borrow-limit", as_json, int)
    if cluster:
        changes["clusters"] = list(cluster)
    if _over_budget(over_budget, as_json) is not None:
        changes["over_budget"] = over_budget
    if not changes:
        _fail(_("nothing to change: give at least one option (see --help)"), EXIT_INPUT, as_json)
    with _client(as_json) as c:
        got = c.update_tenant(path, changes)
    if as_json:
        _print_json(got)
    else:
        _out().print(_("updated {path}", path=got.get("path", path)), highlight=False)


# -- users and memberships -------------------------------------------------------------------


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """Every user, with role and memberships (pool admins and viewers)."""
    with _client(as_json) as c:
        got = c.users()
    if as_json:
        _print_json(got)
        return
    _rows(
        _("users"),
        ["name", "display name", "role", "memberships"],
        (
            (u["name"], u.get("display_name"), u.get("role"),
             ", ".join(f"{m['tenant']} ({m['role']})" for m in u.get("memberships") or []))
            for u in got
        ),
    )  # fmt: skip


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="User name (login).")],
    role: Annotated[str, typer.Option(help="user, viewer or pool-admin.")] = "user",
    display_name: Annotated[str, typer.Option("--display-name", help="The person's name.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Add a user (then mint a token: gpupool admin tokens create --user NAME)."""
    if role not in ("user", "viewer", "pool-admin"):
        _fail(
            _("--role: give user, viewer or pool-admin, not {value}", value=repr(role)), EXIT_INPUT, as_json
        )
    with _client(as_json) as c:
        got = c.create_user(name, role=role, display_name=display_name)
    if as_json:
        _print_json(got)
    else:
        _out().print(
            _("created user {name} ({role})", name=got.get("name", name), role=got.get("role", role)),
            highlight=False,
        )


@memberships_app.command("list")
def memberships_list(
    project: Annotated[str, typer.Argument(help="Project path.")], as_json: JsonOpt = False
) -> None:
    """The project's members and their roles."""
    with _client(as_json) as c:
        got = c.members(project)
    if as_json:
        _print_json(got)
    else:
        _rows(project, ["user", "role"], ((m["user"], m["role"]) for m in got))


@memberships_app.command("add")
def memberships_add(
    project: Annotated[str, typer.Argument(help="Project path.")],
    user: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="member, lead (writes applications) or admin.")] = "member",
    as_json: JsonOpt = False,
) -> None:
    """Add a user to a project (or change the role they hold there)."""
    if role not in ("member", "lead", "admin"):
        _fail(_("--role: give member, lead or admin, not {value}", value=repr(role)), EXIT_INPUT, as_json)
    with _client(as_json) as c:
        got = c.add_member(project, user, role)
    if as_json:
        _print_json(got)
    else:
        _out().print(
            _("{user} is {role} of {project}", user=user, role=role, project=project), highlight=False
        )


@memberships_app.command("remove")
def memberships_remove(
    project: Annotated[str, typer.Argument(help="Project path.")],
    user: Annotated[str, typer.Argument(help="User name.")],
    as_json: JsonOpt = False,
) -> None:
    """Take a user out of a project."""
    with _client(as_json) as c:
        c.remove_member(project, user)
    if as_json:
        _print_json({"project": project, "user": user, "removed": True})
    else:
        _out().print(_("{user} is no longer in {project}", user=user, project=project), highlight=False)


# -- tokens ----------------------------------------------------------------------------------


@tokens_app.command("list")
def tokens_list(as_json: JsonOpt = False) -> None:
    """Your tokens (never their secrets)."""
    with _client(as_json) as c:
        got = c.tokens()
    if as_json:
        _print_json(got)
        return
    _rows(
        _("tokens"),
        ["id", "name", "scopes", "expires", "last used", "revoked"],
        ((t["id"], t.get("name"), " ".join(t.get("scopes") or []), _when(t.get("expires_ms")),
          _when(t.get("last_used_ms")), "yes" if t.get("revoked") else "no") for t in got),
    )  # fmt: skip


@tokens_app.command("create")
def tokens_create(
    user: Annotated[
        str | None, typer.Option(help="Mint for this user (pool admins); default: yourself.")
    ] = None,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="read, submit or admin (repeat).")
    ] = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="Lifetime, e.g. 30d, 12h.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mint a token; its secret is printed this once."""
    try:
        seconds = parse_duration(expires_in) if expires_in is not None else None
    except ValueError as e:
        _fail(f"--expires-in: {e}", EXIT_INPUT, as_json)
    bad = [s for s in scope or [] if s not in ("read", "submit", "admin")]
    if bad:
        _fail(_("--scope {scope}: give read, submit or admin", scope=repr(bad[0])), EXIT_INPUT, as_json)
    with _client(as_json) as c:
        got = c.create_token(name=name, scopes=scope, expires_in_s=seconds, user=user)
    if as_json:
        _print_json(got)
        return
    _out().print(
        _("token {id} of {user}, expires {when}; the secret, shown once:", id=got.get("id"),
          user=got.get("user", user or ""), when=_when(got.get("expires_ms"))),
        highlight=False,
    )  # fmt: skip
    typer.echo(str(got.get("token", "")))


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id.")], as_json: JsonOpt = False
) -> None:
    """Revoke a token (it stops working at once)."""
    with _client(as_json) as c:
        c.revoke_token(token_id)
    if as_json:
        _print_json({"revoked": token_id})
    else:
        _out().print(_("revoked token {id}", id=token_id), highlight=False)


# -- allocations -----------------------------------------------------------------------------


@allocations_app.command("list")
def allocations_list(
    project: Annotated[str | None, typer.Option(help="Only this project's.")] = None, as_json: JsonOpt = False
) -> None:
    """Allocations you may see, with what is used of each."""
    with _client(as_json) as c:
        got = c.allocations(project=project)
    if as_json:
        _print_json(got)
        return
    _rows(
        _("allocations"),
        ["id", "project", "model", "GPU-hours", "used", "guaranteed", "period", "state"],
        ((a["id"], a["project"], a["model"], f"{a['gpu_hours']:,.1f}", f"{a['used_gpu_hours']:,.1f}",
          a.get("guaranteed"), f"{_when(a['period_start_ms'])} .. {_when(a['period_end_ms'])}", a["state"])
         for a in got),
    )  # fmt: skip


@allocations_app.command("create")
def allocations_create(
    project: Annotated[str, typer.Option(help="Project path.")],
    hours: Annotated[float, typer.Option("--hours", help="GPU-hours granted.")],
    start: Annotated[str, typer.Option(help="Period start: ISO date or now.")],
    end: Annotated[str, typer.Option(help="Period end: ISO date.")],
    model: Annotated[str, typer.Option(help="Accelerator model, or * for any.")] = "*",
    guarantee: Annotated[int, typer.Option("--guarantee", help="Guaranteed accelerators with it.")] = 0,
    over_budget: OverBudget = None,
    state: Annotated[
        str, typer.Option(help="requested, approved or active (the last two: pool admins).")
    ] = "requested",
    note: Annotated[str, typer.Option(help="A note kept with it.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Request an allocation (or, as a pool admin, grant one)."""
    if state not in ("requested", "approved", "active"):
        _fail(
            _("--state: give requested, approved or active, not {value}", value=repr(state)),
            EXIT_INPUT,
            as_json,
        )
    body: dict[str, Any] = {
        "project": project, "model": model, "gpu_hours": hours, "guaranteed": guarantee,
        "period_start_ms": _ms(start, "--start", as_json), "period_end_ms": _ms(end, "--end", as_json),
        "state": state, "note": note,
    }  # fmt: skip
    if _over_budget(over_budget, as_json) is not None:
        body["over_budget"] = over_budget
    with _client(as_json) as c:
        got = c.create_allocation(body)
    if as_json:
        _print_json(got)
    else:
        _out().print(
            _(
                "allocation {id} of {project}: {state}",
                id=got["id"],
                project=got["project"],
                state=got["state"],
            ),
            highlight=False,
        )


@allocations_app.command("set")
def allocations_set(
    allocation_id: Annotated[int, typer.Argument(help="Allocation id.")],
    state: Annotated[str, typer.Argument(help="approved, active, rejected or expired.")],
    as_json: JsonOpt = False,
) -> None:
    """Move an allocation through its life (pool admins)."""
    with _client(as_json) as c:
        got = c.set_allocation_state(allocation_id, state)
    if as_json:
        _print_json(got)
    else:
        _out().print(_("allocation {id}: {state}", id=got["id"], state=got["state"]), highlight=False)


# -- drains and audit ------------------------------------------------------------------------


@drains_app.command("list")
def drains_list(
    cluster: Annotated[str | None, typer.Option(help="Only this cluster's nodes.")] = None,
    every_node: Annotated[
        bool, typer.Option("--all", help="Every node, not only those drained or down.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Nodes drained or down, and why."""
    with _client(as_json) as c:
        got = [n for n in c.iter_nodes(cluster=cluster) if every_node or n.get("state") != "up"]
    if as_json:
        _print_json(got)
        return
    _rows(
        _("nodes"),
        ["node", "cluster", "model", "GPUs", "state", "reason"],
        ((n["name"], n.get("cluster"), n.get("model"), n.get("gpus"), n.get("state"), n.get("reason"))
         for n in got),
    )  # fmt: skip


def _drain(node: str, reason: str, to: str, as_json: bool) -> None:
    with _client(as_json) as c:
        got = c.drain(node, reason) if to == "drained" else c.undrain(node, reason)
    if as_json:
        _print_json(got)
    else:
        _out().print(_("node {node}: {state}", node=node, state=got.get("state", to)), highlight=False)


@drains_app.command("drain")
def drains_drain(
    node: Annotated[str, typer.Argument(help="Node name.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log and shown with the node).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Drain a node: its jobs run on, no new job starts there."""
    _drain(node, reason, "drained", as_json)


@drains_app.command("undrain")
def drains_undrain(
    node: Annotated[str, typer.Argument(help="Node name.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Put a drained node back into scheduling."""
    _drain(node, reason, "up", as_json)


def audit(
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. application.award.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (oldest first).", min=1)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The audit log: who did what, to what, when (pool admins)."""
    with _client(as_json) as c:
        got = list(c.iter_audit(action=action, max_items=limit))
    if as_json:
        _print_json(got)
        return
    _rows(
        _("audit log"),
        ["id", "when", "actor", "action", "target"],
        ((r["id"], _when(r["at_ms"]), r["actor"], r["action"], r["target"]) for r in got),
    )


def register(admin: typer.Typer) -> None:
    """Mount the API's administration under ``gpupool admin``."""
    admin.add_typer(tenants_app, name="tenants")
    admin.add_typer(users_app, name="users")
    admin.add_typer(memberships_app, name="memberships")
    admin.add_typer(tokens_app, name="tokens")
    admin.add_typer(allocations_app, name="allocations")
    admin.add_typer(calls_app, name="calls")
    admin.add_typer(applications_app, name="applications")
    admin.add_typer(drains_app, name="drains")
    admin.command("audit")(audit)
