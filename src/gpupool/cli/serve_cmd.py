"""``gpupool serve``: run the live service (API, loop, executors) with uvicorn.

This module owns the ``serve`` command. It starts the service on the embedded SQLite database
under ``--data-dir`` (or ``GPUPOOL_DATABASE_URL``) with a fleet and tenants (the demo ones by
default), prints the URL and, on the first start, the pool admin's token (written once to
``<data-dir>/admin-token``, mode 0600; the database keeps only its hash), then serves until
interrupted. Options left out fall back to ``GPUPOOL_*`` environment variables.

The scheduling loop runs in a child process of its own (``gpupool.service.scheduler_process``)
that contends for the pool's leader lease: several ``gpupool serve`` on one database all answer
the API, one of them schedules, the others wait as standbys and take over when it dies
(ADR 0006).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

err_console = Console(stderr=True)


def serve(
    fleet: Annotated[
        str | None, typer.Option("--fleet", "-f", help="Fleet file or preset (default demo).")
    ] = None,
    tenants: Annotated[
        str | None, typer.Option("--tenants", "-t", help="Tenants file or preset (seeds an empty database).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Database, admin token and job logs (default ./gpupool-data)."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL, e.g. postgresql://user@host/db.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8080).")] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", "-p", help="Scheduling policy (default fairshare).")
    ] = None,
    cycle_interval_ms: Annotated[
        int | None, typer.Option("--cycle-interval-ms", help="Longest wait between cycles.")
    ] = None,
    real_gpus: Annotated[
        bool,
        typer.Option(
            "--real-gpus",
            help="Serve this machine's own GPUs (NVML): the fleet is this machine, jobs run pinned to them.",
        ),
    ] = False,
    simulated_gpus: Annotated[
        int | None,
        typer.Option(
            "--simulated-gpus",
            min=1,
            max=4096,
            help="Serve this machine with N pretend GPUs (jobs run here, no GPU needed).",
        ),
    ] = None,
    gpu_model: Annotated[
        str | None,
        typer.Option("--gpu-model", help="Catalogue model of this machine's GPUs (default: from NVML)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the gpupool API and run the scheduling loop (or stand by for the pool's leader)."""
    import uvicorn

    from gpupool.core.accelerator import CatalogueError
    from gpupool.core.fleet import FleetError
    from gpupool.core.tenancy import TenancyError
    from gpupool.fleetfile import FleetFileError
    from gpupool.service.api.app import create_app
    from gpupool.service.runtime import Runtime, tune_gc_for_serving
    from gpupool.service.settings import ServiceSettings

    given: dict[str, Any] = {
        "fleet": fleet,
        "tenants": tenants,
        "data_dir": data_dir,
        "database_url": database_url,
        "host": host,
        "port": port,
        "policy": policy,
        "cycle_interval_ms": cycle_interval_ms,
    }
    if real_gpus and simulated_gpus:
        _fail("give --real-gpus or --simulated-gpus, not both")
    if (real_gpus or simulated_gpus) and fleet is not None:
        _fail("--real-gpus and --simulated-gpus serve this machine: leave out --fleet")
    if real_gpus:
        given.update(machine="real", simulated_gpus=False)
    elif simulated_gpus:
        given.update(machine="simulated", machine_gpus=simulated_gpus)
    if gpu_model is not None:
        given["machine_model"] = gpu_model
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ServiceSettings(**{k: v for k, v in given.items() if v is not None})
        # the loop in its own process, under the leader lease: the API never holds its GIL
        runtime = Runtime(settings, scheduler="process")
        runtime.start()
    except ValidationError as e:
        err = e.errors()[0]
        _fail(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
    except (FleetFileError, FleetError, TenancyError, CatalogueError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    url = f"http://{settings.host}:{settings.port}"
    out = Console()
    out.print(f"gpupool serving fleet [bold]{runtime.fleet.name}[/] at {url}  (API docs: {url}/docs)")
    out.print(f"database: {_redact(settings.url)}")
    out.print(
        f"scheduler: a process of its own, leader of the pool or standby (instance {runtime.instance};"
        f" see {url}/v1/ready)"
    )
    if runtime.new_admin_token is not None:
        out.print(f"admin token (shown once; also in {settings.admin_token_path}, mode 0600):")
        out.print(runtime.new_admin_token, highlight=False, soft_wrap=True)
    else:
        out.print(f"admin token: created on the first start (see {settings.admin_token_path})")
    app = create_app(runtime, manage_runtime=False)
    tune_gc_for_serving()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level.lower())
    finally:
        runtime.stop()


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)
