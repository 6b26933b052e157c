"""``gpupool admin recover``: a new pool-admin token, minted on the server's own machine.

(The other ``gpupool admin`` commands work over the API: ``gpupool.cli.pool_admin_cmd``.)

This module owns the local recovery command (ADR 0007). The API refuses to revoke the last
pool-admin credential, but a token can still be lost or expire; then whoever can read the
service's database (its data directory, or its database URL with the password) mints a new
pool-admin token directly in the database. That access is already total (the database is the
pool), so this adds no new way in: it is the documented way back. The token is printed once
(only its hash is stored) and the act is audited (``admin.recover``, with the local account
that ran it and the host).
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

admin_app = typer.Typer(
    help="Local administration of a gpupool server (run on its machine).", no_args_is_help=True
)
err_console = Console(stderr=True)


@admin_app.command("recover")
def recover(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="The server's data directory (its SQLite database).")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="The server's database URL (PostgreSQL).")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="The pool admin to mint for (default: the first; else 'admin')."),
    ] = None,
    expires_in: Annotated[
        str, typer.Option("--expires-in", help="Lifetime of the token, e.g. 1d, 12h (default 1d).")
    ] = "1d",
) -> None:
    """Mint a new pool-admin token in the server's database; print it once; audit it.

    Use the token to mint a lasting one (``gpupool tokens create``), then revoke this one.
    """
    from sqlalchemy import select

    from gpupool.cli.client_cmd import parse_duration
    from gpupool.service import auth, store
    from gpupool.service.db import UserRow, make_engine, migrate, session_factory
    from gpupool.service.loop import wall_clock
    from gpupool.service.settings import ServiceSettings

    if data_dir is None and database_url is None:
        _fail("give --data-dir (the server's data directory) or --database-url")
    try:
        ttl_s = parse_duration(expires_in)
    except ValueError as e:
        _fail(f"--expires-in: {e}")
    if ttl_s * 1000 > auth.MAX_TOKEN_TTL_MS:
        _fail("--expires-in: at most 3 years")
    given: dict[str, object] = {}
    if data_dir is not None:
        given["data_dir"] = data_dir
    if database_url is not None:
        given["database_url"] = database_url
    settings = ServiceSettings(**given)  # type: ignore[arg-type]
    if not settings.database_url and not (settings.data_dir / "gpupool.db").is_file():
        _fail(f"no gpupool database in {settings.data_dir} (is it the server's --data-dir?)")
    engine = make_engine(settings.url)
    try:
        migrate(engine)
        now = wall_clock()
        actor = f"local:{getpass.getuser()}"
        with session_factory(engine).begin() as s:
            q = select(UserRow).where(UserRow.role == "pool-admin")
            if user is not None:
                q = q.where(UserRow.name == user)
            admin = s.scalars(q.order_by(UserRow.id)).first()
            if admin is None:
                if user is not None:
                    _fail(f"no pool admin named {user!r}")
                admin = UserRow(
                    name="admin", display_name="Pool administrator", role="pool-admin", created_ms=now
                )
                s.add(admin)
                s.flush()
            row, plain = auth.issue(
                s,
                admin.id,
                name="recovered",
                scopes=auth.ALL_SCOPES,
                expires_ms=now + ttl_s * 1000,
                now_ms=now,
            )
            store.audit(
                s,
                actor,
                "admin.recover",
                f"user/{admin.name}",
                {"token_id": row.id, "host": socket.gethostname(), "expires_ms": row.expires_ms},
                now,
            )
            name = admin.name
    except Exception as e:  # the database is down or not gpupool's: say so, no traceback
        _fail(f"cannot mint a token in {_where(settings.url)}: {type(e).__name__}: {e}")
    finally:
        engine.dispose()
    err_console.print(
        f"new pool-admin token for [bold]{name}[/] (shown once; audited as admin.recover):", highlight=False
    )
    typer.echo(plain)


def _mount_api_commands() -> None:
    # the commands over the API (tenants, users, ... audit) live in their own module
    from gpupool.cli import pool_admin_cmd

    pool_admin_cmd.register(admin_app)


_mount_api_commands()


def _where(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)
