"""The client commands: ``gpupool login|submit|queue|show|cancel|explain|logs|usage|tokens``.

This module owns the command-line surface of the live service for its users. Each command is
a thin Typer function over ``gpupool.client.GpupoolClient``: it parses options (walltimes
like ``30m``, ``1h``, ``2d``), calls one API endpoint, and prints a Rich table, or with
``--json`` the server's JSON unchanged on stdout (Hangul and all, not ``\\uXXXX``-escaped).
``register`` mounts them on the ``gpupool`` app, and ``tokens_app`` (``gpupool tokens list|
create|revoke``: the caller's own API tokens).

Errors end in one red line on stderr (with ``--json``, the problem document on stdout too) and
a non-zero exit: 2 for bad input caught here, 3 when no server or token is configured or the
server cannot be reached, 4 for an error answer of the server. Never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from gpupool.cli.fraction_options import fraction_request
from gpupool.client import (
    ApiError,
    ClientConfig,
    ClientError,
    ConnectionFailed,
    GpupoolClient,
    NotConfigured,
    page_items,
)
from gpupool.client.loopback import LoopbackReceiver
from gpupool.core.array_spec import parse_array
from gpupool.core.dependencies import parse_dependencies
from gpupool.service.job_status import ACTIVE, JobStatus
from gpupool.translation import _, n_

__all__ = ["COMMANDS", "client_factory", "parse_duration", "register"]

#: How commands get a client for a config (``None``: the configured one); tests replace it to
#: put a mock or in-process transport under the real client.
client_factory: Callable[[ClientConfig | None], GpupoolClient] = GpupoolClient.from_config

EXIT_INPUT, EXIT_CONFIG, EXIT_API = 2, 3, 4
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_HMS = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?$")


def parse_duration(text: str) -> int:
    """Seconds in ``30m``, ``1h``, ``2d``, ``1h30m``, ``90s`` or Slurm's ``[D-]HH:MM[:SS]``.

    A bare number is refused: Slurm reads it as minutes and most people as seconds.
    """
    t = text.strip().lower().replace(" ", "")
    m = _HMS.match(t)
    if m:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
        total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    else:
        parts = _DURATION.findall(t)
        if not t or "".join(n + u for n, u in parts) != t:
            if re.fullmatch(r"\d+(\.\d+)?", t):
                raise ValueError(
                    _("cannot read {text} as a duration (add a unit: 30m, 1h, 2d)", text=repr(text))
                )
            raise ValueError(_("cannot read {text} as a duration", text=repr(text)))
        total = round(sum(float(n) * _UNITS[u] for n, u in parts))
    if total <= 0:
        raise ValueError(_("duration {text} must be positive", text=repr(text)))
    return total


# -- output --------------------------------------------------------------------------------


def _out() -> Console:
    # Made per call: tests (and pipes) swap sys.stdout, and a wide table must not be cut at 80.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _err() -> Console:
    return Console(stderr=True)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False))


def _fail(message: str, code: int, as_json: bool = False, problem: Any = None) -> NoReturn:
    if as_json:
        _print_json(problem if problem is not None else {"error": message})
    label = _("error:")
    _err().print(f"[bold red]{label}[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


@contextmanager
def _client(as_json: bool, config: ClientConfig | None = None) -> Iterator[GpupoolClient]:
    try:
        with client_factory(config) as c:
            yield c
    except NotConfigured as e:
        _fail(str(e), EXIT_CONFIG, as_json)
    except ConnectionFailed as e:
        _fail(
            _("{error} (is `gpupool serve` running? set GPUPOOL_URL or run `gpupool login`)", error=e),
            EXIT_CONFIG,
            as_json,
        )
    except ApiError as e:
        body = (
            e.body if isinstance(e.body, dict) else {"status": e.status, "title": e.title, "detail": e.detail}
        )
        _fail(str(e), EXIT_API, as_json, body)
    except ClientError as e:
        _fail(str(e), EXIT_API, as_json)


def _when(value: Any) -> str:
    """A timestamp (ISO text or epoch milliseconds) as local time; ``-`` for none."""
    if value in (None, ""):
        return "-"
    try:
        if isinstance(value, int | float):
            t = dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
        else:
            t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return str(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) not in (None, ""):
            return d[k]
    return None


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _estimated_start(job: Mapping[str, Any]) -> Any:
    return _first(job, "estimated_start", "estimated_start_ms", "estimated_start_at")


def _table(title: str, columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


# -- commands ------------------------------------------------------------------------------

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead of a table.")]


def login(
    url: Annotated[str | None, typer.Option(help="Server URL (default: the configured one).")] = None,
    token: Annotated[
        str | None, typer.Option(help="API token (default: prompt, or read stdin when it is not a terminal).")
    ] = None,
    oidc: Annotated[
        bool,
        typer.Option(
            "--oidc",
            help="Sign in as a person with the server's identity provider (a browser on this computer).",
        ),
    ] = False,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="With --oidc: print the sign-in URL, open no browser.")
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", min=1, help="With --oidc: seconds to wait for the sign-in.")
    ] = 300,
    as_json: JsonOpt = False,
) -> None:
    """Check a token against the server and save it with the URL in the config file.

    With ``--oidc`` the token is a short-lived one of your own, from signing in with the
    server's identity provider in a browser (the server says for how long).
    """
    current = ClientConfig.load()
    base = (url or current.url).rstrip("/")
    if oidc:
        if token is not None:
            _fail(_("--oidc and --token exclude each other"), EXIT_INPUT, as_json)
        token = _oidc_sign_in(base, no_browser, wait, as_json)
    if token is None:
        token = (
            typer.prompt("token", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
        ).strip()
    if not token:
        _fail(_("no token given"), EXIT_INPUT, as_json)
    new = ClientConfig(url=base, token=token)
    with _client(as_json, new) as c:  # check the token before saving it
        me = c.me()
    path = new.save()
    who = _first(me, "name", "username", "email", "id") or "?"
    if as_json:
        _print_json({"url": base, "user": me, "config": str(path)})
    else:
        _out().print(
            _("logged in to {url} as [bold]{user}[/]; saved to {path}", url=base, user=who, path=path),
            highlight=False,
        )


def _oidc_sign_in(base: str, no_browser: bool, wait_s: float, as_json: bool) -> str:
    """A session token from the server's identity provider, through a loopback receiver."""
    with _client(as_json, ClientConfig(url=base)) as c:
        info = c.oidc_info()
    if not info.get("enabled"):
        _fail(
            _("{url} has no sign-in with OpenID Connect: use an API token (--token)", url=base),
            EXIT_CONFIG,
            as_json,
        )
    with LoopbackReceiver() as receiver:
        url = receiver.login_url(base)
        provider = info.get("provider") or _("the identity provider")
        typer.echo(_("Sign in with {provider} in a browser on this computer:", provider=provider), err=True)
        typer.echo(url, err=True)  # alone on its line, unwrapped: to copy, or for a program to read
        if not no_browser:
            webbrowser.open(url)
        got = receiver.wait(wait_s)
    if got is None:
        _fail(
            _("no sign-in within {seconds} s: run `gpupool login --oidc` again", seconds=format(wait_s, "g")),
            EXIT_CONFIG,
            as_json,
        )
    return got


def submit(
    command: Annotated[list[str], typer.Argument(help="The job's command line (after --).")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project path or unique name.")],
    gpus: Annotated[int, typer.Option("--gpus", "-g", min=1, help="Accelerators in the gang.")] = 1,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Acceptable accelerator model (repeatable).")
    ] = None,
    walltime: Annotated[
        str | None,
        typer.Option("--walltime", "-t", help="30m, 1h, 2d or [D-]HH:MM[:SS] (default: the pool's)."),
    ] = None,
    name: Annotated[str, typer.Option(help="A name for the job.")] = "",
    priority: Annotated[
        str, typer.Option("--priority", help="reserved, high, normal, low or preemptible.")
    ] = "normal",
    topology: Annotated[str, typer.Option(help="node, nvlink, rack, block or any.")] = "any",
    kind: Annotated[str, typer.Option(help="training, inference or interactive.")] = "training",
    workload_class: Annotated[
        str, typer.Option("--class", help="Workload class for throughput-aware policies.")
    ] = "default",
    min_memory: Annotated[int, typer.Option("--min-memory", min=0, help="Least GiB per accelerator.")] = 0,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint-interval", help="How often the job checkpoints (e.g. 30m).")
    ] = None,
    cluster: Annotated[
        list[str] | None, typer.Option("--cluster", help="Acceptable cluster (repeatable).")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the job (repeatable).")
    ] = None,
    cwd: Annotated[
        str | None, typer.Option(help="Working directory of the job (default: this directory).")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Repeat a submission safely (default: a new UUID)."),
    ] = None,
    dependency: Annotated[
        str,
        typer.Option(
            "--dependency",
            "-d",
            help="Wait for other jobs: afterok:J1:J2,afterany:J3 (after, afterany, afterok, afternotok).",
        ),
    ] = "",
    array: Annotated[
        str,
        typer.Option(
            "--array",
            "-a",
            help="A job array: 0-99, 0-99:2, 1,3,5-7, with %N to run at most N tasks at once.",
        ),
    ] = "",
    as_json: JsonOpt = False,
    image: Annotated[
        str | None,
        typer.Option(
            help="Container image: [registry/]name[:tag], or an image file oci-archive:/path (its "
            "account must read it)."
        ),
    ] = None,
    mig: Annotated[
        str | None, typer.Option("--mig", help="MIG slices: PROFILE or NxPROFILE (1g.10gb).")
    ] = None,
    gpu_fraction: Annotated[float | None, typer.Option("--gpu-fraction", help="Share of one GPU.")] = None,
    gpu_memory: Annotated[str | None, typer.Option("--gpu-memory", help="Memory of a shared GPU.")] = None,
) -> None:
    """Submit a job: gpupool submit -p PROJECT -g 2 -m H100 -t 1h -- python train.py"""
    try:
        request: dict[str, Any] = {
            "project": project,
            "command": list(command),
            "gpus": gpus,
            "name": name,
            "models": list(model or []),
            "priority_class": priority,
            "topology": topology,
            "kind": kind,
            "workload_class": workload_class,
            "min_memory_gib": min_memory,
            "clusters": list(cluster or []),
            "env": _env_pairs(env or []),
            "cwd": str(Path(cwd).resolve()) if cwd else os.getcwd(),
        }
        if dependency:
            try:
                parse_dependencies(dependency)
            except ValueError as e:
                raise ValueError(_("--dependency: {error}", error=str(e))) from None
            request["dependency"] = dependency
        if array:
            try:
                parse_array(array)
            except ValueError as e:
                raise ValueError(_("--array: {error}", error=str(e))) from None
            request["array"] = array
        if walltime is not None:
            request["walltime_s"] = parse_duration(walltime)
        if checkpoint is not None:
            request["checkpoint_interval_s"] = parse_duration(checkpoint)
        if image is not None:
            request["image"] = _image(image)
        request.update(fraction_request(mig, gpu_fraction, gpu_memory))
    except ValueError as e:
        _fail(str(e), EXIT_INPUT, as_json)
    with _client(as_json) as c:
        got = c.submit(request, idempotency_key)
    if as_json:
        _print_json(got.job)
        return
    job = got.job
    fields = {
        "id": _text(job.get("id")),
        "project": _text(job.get("project", project)),
        "state": _text(job.get("state")),
    }
    if got.created:
        said = _("submitted: job [bold]{id}[/] in {project}, state {state}", **fields)
    else:
        said = _(
            "already submitted (same idempotency key): job [bold]{id}[/] in {project}, state {state}",
            **fields,
        )
    _out().print(said, highlight=False)


def _image(ref: str) -> str:
    """``--image``, checked as the service will (an image file's path made absolute)."""
    for transport in ("oci-archive:", "docker-archive:"):
        if ref.startswith(transport) and not ref[len(transport) :].startswith("/"):
            ref = transport + str(Path(ref[len(transport) :]).resolve())
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(_("--image {ref}: not an image reference", ref=repr(ref)))
    return ref


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise ValueError(_("--env {pair}: expected KEY=VALUE", pair=repr(p)))
        out[key] = value
    return out


def queue(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    state: Annotated[JobStatus | None, typer.Option("--state", "-s", help="Only jobs in this state.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's jobs.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only jobs that accept this model.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List jobs with their state, why they wait, and when they will probably start."""
    with _client(as_json) as c:
        jobs = list(
            c.iter_jobs(
                max_items=limit, project=project, state=state, user=user, model=model, limit=min(limit, 500)
            )
        )
    if as_json:
        _print_json({"items": jobs})
        return
    t = _table(
        n_("{n} job", "{n} jobs", len(jobs)),
        [_("id"), _("name"), _("project"), _("user"), _("state"), _("gpus"), _("model"), _("reason"),
         _("place"), _("est. start")],
    )  # fmt: skip
    for j in jobs:
        t.add_row(
            _text(j.get("id")),
            _text(j.get("name") or None),
            _text(j.get("project")),
            _text(j.get("user")),
            _text(j.get("state")),
            _text(j.get("gpus")),
            _text(_first(j, "model", "models")),
            # a held job says what it waits for ("waiting for dependency j7 (afterok)")
            _text(j.get("detail") if j.get("reason") == "dependency" else _first(j, "reason", "reason_code")),
            _place(j),
            _when(_estimated_start(j)),
        )
    _out().print(t)


def _place(job: Mapping[str, Any]) -> str:
    """A pending job's place in its pool's queue ("3 in H100 in kisti"), or "-"."""
    pos = job.get("queue_position")
    if not pos:
        return "-"
    pool = job.get("queue_pool")
    return _("{n} in {pool}", n=pos, pool=pool) if pool else str(pos)


def show(job_id: Annotated[str, typer.Argument(help="Job id.")], as_json: JsonOpt = False) -> None:
    """Everything the server says about one job."""
    with _client(as_json) as c:
        job = c.job(job_id)
    if as_json:
        _print_json(job)
        return
    t = _table(_("job {id}", id=job_id), [_("field"), _("value")])
    for k, v in job.items():
        shown = _when(v) if (k.endswith("_at") or k.endswith("_ms") or k == "estimated_start") else v
        t.add_row(
            k, json.dumps(shown, ensure_ascii=False) if isinstance(shown, dict | list) else _text(shown)
        )
    _out().print(t)


def cancel(job_id: Annotated[str, typer.Argument(help="Job id.")], as_json: JsonOpt = False) -> None:
    """Cancel a job (a running one is stopped with SIGTERM, then SIGKILL after a grace period)."""
    with _client(as_json) as c:
        job = c.cancel(job_id)
    if as_json:
        _print_json(job)
    else:
        _out().print(
            _("cancelled job [bold]{id}[/] (state {state})", id=job_id, state=_text(job.get("state"))),
            highlight=False,
        )


def explain(job_id: Annotated[str, typer.Argument(help="Job id.")], as_json: JsonOpt = False) -> None:
    """Why a job waits, and when it will probably start."""
    with _client(as_json) as c:
        got = c.explain(job_id)
    if as_json:
        _print_json(got)
        return
    reason = _text(_first(got, "reason", "reason_code"))
    detail = _first(got, "detail", "reason_detail") or ""
    lines = [
        _("job [bold]{id}[/]: {state}", id=job_id, state=_text(got.get("state"))),
        _("reason: {reason}", reason=reason) + (f" ({detail})" if detail else ""),
    ]
    if got.get("queue_position"):
        lines.append(_("place in queue: {place}", place=_place(got)))
    lines.append(_("estimated start: {when}", when=_when(_estimated_start(got))))
    if got.get("budget"):
        lines.append(_("budget: {budget}", budget=got["budget"]))
    _out().print("\n".join(lines), highlight=False)


def logs(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr instead of stdout.")] = False,
    tail: Annotated[int | None, typer.Option(min=1, help="Only the last N lines.")] = None,
    attempt: Annotated[
        int | None, typer.Option(min=1, help="Which run of a preempted job (default: the latest).")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a job's output."""
    stream = "stderr" if stderr else "stdout"
    with _client(as_json) as c:
        text = c.logs(job_id, stream=stream, tail=tail, attempt=attempt)
        if as_json:
            _print_json({"job": job_id, "stream": stream, "text": text})
            return
        sys.stdout.write(text)
        sys.stdout.flush()
        shown = len(text) if tail is None else None
        while follow and str(c.job(job_id).get("state")) in ACTIVE:
            time.sleep(2.0)
            full = c.logs(job_id, stream=stream, attempt=attempt)
            if shown is None:
                shown = len(full)  # after a --tail, follow from what there is now
            sys.stdout.write(full[shown:])
            sys.stdout.flush()
            shown = len(full)


def usage(
    by: Annotated[str, typer.Option(help="project, organisation or sector.")] = "project",
    since: Annotated[
        str | None, typer.Option(help="Start of the range: an ISO date or a duration back from now (30d).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End of the range (ISO date; default now).")] = None,
    path: Annotated[str | None, typer.Option(help="Only this tenant path and what is under it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """GPU-hours and effective GPU-hours used, by project, organisation or sector."""
    try:
        start = _instant(since) if since else None
        end = _instant(until) if until else None
    except ValueError as e:
        _fail(str(e), EXIT_INPUT, as_json)
    with _client(as_json) as c:
        got = c.usage(by=by, start=start, end=end, path=path)
    if as_json:
        _print_json(got)
        return
    rows = page_items(got) or list(got.get("usage", []))
    group = {"project": _("project"), "organisation": _("organisation"), "sector": _("sector")}.get(by, by)
    t = _table(
        _("usage by {by}", by=group), [group, _("GPU-hours"), _("effective GPU-hours"), _("allocations")]
    )
    for r in rows:
        t.add_row(
            _text(_first(r, "key", "path", by)),
            f"{float(r.get('gpu_hours', 0)):,.2f}",
            f"{float(r.get('effective_gpu_hours', 0)):,.2f}",
            _text(r.get("allocations")),
        )
    if "gpu_hours" in got:
        t.add_section()
        t.add_row(
            _("total"),
            f"{float(got['gpu_hours']):,.2f}",
            f"{float(got.get('effective_gpu_hours', 0)):,.2f}",
            _text(sum(int(r.get("allocations") or 0) for r in rows)),
        )
    _out().print(t)


def _instant(text: str) -> str:
    """An ISO instant for the API from an ISO date/time or a duration back from now."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        t = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_duration(text))
    if t.tzinfo is None:
        t = t.astimezone()
    return t.astimezone(dt.UTC).isoformat()


tokens_app = typer.Typer(help="Your own API tokens: list, create (shown once), revoke.", no_args_is_help=True)


@tokens_app.command("list")
def tokens_list(as_json: JsonOpt = False) -> None:
    """Your tokens: scopes, expiry, last use (never their secrets)."""
    with _client(as_json) as c:
        items = c.tokens()
    if as_json:
        _print_json({"items": items})
        return
    t = _table(
        n_("{n} token", "{n} tokens", len(items)),
        [_("id"), _("name"), _("scopes"), _("created"), _("expires"), _("last used"), _("state")],
    )
    for tok in items:
        t.add_row(
            _text(tok.get("id")),
            _text(tok.get("name") or None),
            _text(" ".join(tok.get("scopes") or [])),
            _when(tok.get("created_ms")),
            _when(tok.get("expires_ms")),
            _when(tok.get("last_used_ms")),
            _("revoked") if tok.get("revoked") else _("active"),
        )
    _out().print(t)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="read, submit or admin (repeat; default: your token's scopes)."),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime, e.g. 30d, 12h (default 90 days).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mint a token for yourself; its secret is printed this once."""
    try:
        seconds = parse_duration(expires_in) if expires_in is not None else None
    except ValueError as e:
        _fail(f"--expires-in: {e}", EXIT_INPUT, as_json)
    bad = [s for s in scope or [] if s not in ("read", "submit", "admin")]
    if bad:
        _fail(_("--scope {scope}: give read, submit or admin", scope=repr(bad[0])), EXIT_INPUT, as_json)
    with _client(as_json) as c:
        tok = c.create_token(name=name, scopes=scope, expires_in_s=seconds)
    if as_json:
        _print_json(tok)
        return
    _out().print(
        _(
            "token {id} ({scopes}), expires {when}; the secret, shown once:",
            id=_text(tok.get("id")),
            scopes=" ".join(tok.get("scopes") or []),
            when=_when(tok.get("expires_ms")),
        ),
        highlight=False,
    )
    typer.echo(str(tok.get("token", "")))


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (gpupool tokens list).")], as_json: JsonOpt = False
) -> None:
    """Revoke one of your tokens (it stops working at once)."""
    with _client(as_json) as c:
        c.revoke_token(token_id)
    if as_json:
        _print_json({"revoked": token_id})
    else:
        _out().print(_("revoked token {id}", id=token_id), highlight=False)


COMMANDS: tuple[Callable[..., None], ...] = (login, submit, queue, show, cancel, explain, logs, usage)


def register(app: typer.Typer) -> None:
    """Mount the client commands on ``app`` (the ``gpupool`` command)."""
    for fn in COMMANDS:
        app.command(fn.__name__)(fn)
    app.add_typer(tokens_app, name="tokens")
