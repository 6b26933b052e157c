"""``gpupool serve``: run the live service (API, loop, executors) with uvicorn.

This module owns the ``serve`` command. It starts the service on the embedded SQLite database
under ``--data-dir`` (or ``GPUPOOL_DATABASE_URL``) with a fleet and tenants (the demo ones by
default), prints the URL and, on the first start, the pool admin's token (shown once: the
database keeps only its hash, and no file holds it), then serves until interrupted. Local jobs
run sandboxed as the accounts ``--accounts`` maps (ADR 0005). Options left out fall back to
``GPUPOOL_*`` environment variables.

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

from gpupool.core.policy import POLICIES

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
        typer.Option("--data-dir", help="Database, executor state and job logs (default ./gpupool-data)."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL, e.g. postgresql://user@host/db.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8080).")] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy", "-p", help=f"Scheduling policy: one of {', '.join(POLICIES)} (default fairshare)."
        ),
    ] = None,
    round_ms: Annotated[
        int | None,
        typer.Option(
            "--round-ms", min=0, help="Round of round-based policies, in ms (default: the policy's, 360000)."
        ),
    ] = None,
    restart_overhead_s: Annotated[
        float | None,
        typer.Option(
            "--restart-overhead",
            min=0,
            help="Seconds a restart costs a job, weighed before a round stops it (default 30).",
        ),
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
    accounts: Annotated[
        Path | None,
        typer.Option(
            "--accounts",
            help="YAML file: gpupool users/projects -> the Unix accounts their jobs run as (ADR 0005).",
        ),
    ] = None,
    unsafe_no_sandbox: Annotated[
        bool,
        typer.Option(
            "--unsafe-no-sandbox",
            help="Run local jobs without bubblewrap if it is missing (they can see the service files).",
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS: the certificate chain (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="Serve HTTPS: the certificate's private key (PEM).")
    ] = None,
    rate_limit_token: Annotated[
        float | None,
        typer.Option("--rate-limit-token", min=0, help="Requests a second per token (0: none; default 500)."),
    ] = None,
    rate_limit_address: Annotated[
        float | None,
        typer.Option(
            "--rate-limit-address", min=0, help="Requests a second per address (0: none; default 1000)."
        ),
    ] = None,
    rate_limit_auth_failures: Annotated[
        float | None,
        typer.Option(
            "--rate-limit-auth-failures",
            min=0,
            help="Failed authentications a second per address, after a burst of 20 (default 1).",
        ),
    ] = None,
    max_header_bytes: Annotated[
        int | None, typer.Option("--max-header-bytes", help="Largest request line + headers (default 65536).")
    ] = None,
    request_read_timeout_s: Annotated[
        float | None,
        typer.Option("--request-read-timeout", help="Seconds a request may take to arrive (default 30)."),
    ] = None,
    keep_alive_timeout_s: Annotated[
        int | None, typer.Option("--keep-alive-timeout", help="Seconds an idle connection stays (default 5).")
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Reverse proxies trusted for X-Forwarded-For/-Proto (comma separated; default none).",
        ),
    ] = None,
    metrics_public: Annotated[
        bool | None,
        typer.Option("--metrics-public/--metrics-token", help="/metrics without a token (default: token)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the gpupool API and run the scheduling loop (or stand by for the pool's leader)."""
    from gpupool.core.accelerator import CatalogueError
    from gpupool.core.fleet import FleetError
    from gpupool.core.tenancy import TenancyError
    from gpupool.fleetfile import FleetFileError
    from gpupool.service import admin_banner
    from gpupool.service.api import server
    from gpupool.service.api.app import create_app
    from gpupool.service.db import unavailable
    from gpupool.service.executors.sandbox import SandboxUnavailable
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
        "round_ms": round_ms,
        "restart_overhead_s": restart_overhead_s,
        "cycle_interval_ms": cycle_interval_ms,
        "accounts": str(accounts) if accounts is not None else None,
        "unsafe_no_sandbox": True if unsafe_no_sandbox else None,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "rate_limit_token_per_s": rate_limit_token,
        "rate_limit_address_per_s": rate_limit_address,
        "rate_limit_auth_failures_per_s": rate_limit_auth_failures,
        "max_header_bytes": max_header_bytes,
        "request_read_timeout_s": request_read_timeout_s,
        "keep_alive_timeout_s": keep_alive_timeout_s,
        "forwarded_allow_ips": forwarded_allow_ips,
        "metrics_public": metrics_public,
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
        for pem in (settings.tls_cert, settings.tls_key):
            if pem is not None and not pem.is_file():
                _fail(f"no such file: {pem}")
        # the loop in its own process, under the leader lease: the API never holds its GIL
        runtime = Runtime(settings, scheduler="process")
        runtime.start()
    except ValidationError as e:
        err = e.errors()[0]
        _fail(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
    except (
        FleetFileError,
        FleetError,
        TenancyError,
        CatalogueError,
        FileNotFoundError,
        ValueError,
        SandboxUnavailable,
    ) as e:
        _fail(str(e))
    except Exception as e:
        if not unavailable(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        _fail(f"the database is unavailable ({_redact(settings.url)}): {first}")
    url = f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"
    out = Console()
    out.print(f"gpupool serving fleet [bold]{runtime.fleet.name}[/] at {url}  (API docs: {url}/docs)")
    out.print(f"database: {_redact(settings.url)}")
    out.print(
        f"scheduler: a process of its own, leader of the pool or standby (instance {runtime.instance};"
        f" see {url}/v1/ready)"
    )
    if runtime.new_admin_token is not None:
        out.print(admin_banner.HEADING)
        out.print(runtime.new_admin_token, highlight=False, soft_wrap=True)
    else:
        out.print("admin token: shown on the first start (only its hash is stored)")
    app = create_app(runtime, manage_runtime=False)
    tune_gc_for_serving()
    try:
        server.run(app, settings, log_level=log_level)
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
