"""The report commands: ``gpupool report usage`` and ``gpupool report public``.

This module owns the command-line surface of the reports (``/v1/reports``). ``report usage``
fetches usage per time bucket, group and accelerator model and prints it as a table, CSV,
JSON or Parquet (Polars); ``report public`` fetches a period's public figures and writes the
self-contained HTML page, its CSV tables and JSON into a folder, in Korean or English
(``gpupool.service.report.public_page``). Bad options end in one line naming the problem and
exit code 2, before anything is asked of the server.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gpupool.cli.client_cmd import EXIT_INPUT, _client, _fail, _out, _print_json, _table
from gpupool.translation import LANGUAGES, _, language

__all__ = ["register", "report_app", "usage_frame"]

report_app = typer.Typer(
    help="Reports: usage over time, and the public report of a period.", no_args_is_help=True
)

BY = ("sector", "organisation", "project", "user")
EVERY = ("day", "week", "month")
FORMATS = ("table", "csv", "parquet", "json")
COLUMNS = (
    "period",
    "key",
    "model",
    "gpu_hours",
    "effective_gpu_hours",
    "jobs",
    "started",
    "wait_p50_s",
    "wait_p95_s",
    "entitlement_gpu_hours",
    "share_of_entitlement",
)


def _one_of(value: str, allowed: tuple[str, ...], option: str, as_json: bool) -> str:
    if value not in allowed:
        _fail(
            _(
                "{option}: unknown value {value} (expected one of: {allowed})",
                option=option,
                value=repr(value),
                allowed=", ".join(allowed),
            ),
            EXIT_INPUT,
            as_json,
        )
    return value


def _date(text: str | None, option: str, as_json: bool) -> str | None:
    """``text`` if it reads as an ISO date or instant (UTC unless it names a zone)."""
    if text is None:
        return None
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        _fail(
            _(
                "{option}: cannot read {value} as a date (write 2026-03-01 or 2026-03-01T09:00+09:00)",
                option=option,
                value=repr(text),
            ),
            EXIT_INPUT,
            as_json,
        )
    return text


def usage_frame(rows: list[dict[str, Any]]) -> Any:
    """The report's rows as a Polars frame, its columns in a fixed order."""
    import polars as pl

    schema: dict[str, Any] = {
        "period": pl.Utf8,
        "key": pl.Utf8,
        "model": pl.Utf8,
        "gpu_hours": pl.Float64,
        "effective_gpu_hours": pl.Float64,
        "jobs": pl.Int64,
        "started": pl.Int64,
        "wait_p50_s": pl.Float64,
        "wait_p95_s": pl.Float64,
        "entitlement_gpu_hours": pl.Float64,
        "share_of_entitlement": pl.Float64,
    }
    return pl.DataFrame([{k: r.get(k) for k in COLUMNS} for r in rows], schema=schema, orient="row")


def _scope(scope: str) -> str:
    """What the figures cover, in the user's language (the server says it in English)."""
    return {
        "all": _("all"),
        "whole totals of the groups you may see": _("whole totals of the groups you may see"),
        "your projects only": _("your projects only"),
    }.get(scope, scope)


def _n(x: Any, spec: str = ",.2f") -> str:
    return "-" if x is None else format(x, spec)


@report_app.command("usage")
def usage(
    by: Annotated[str, typer.Option(help="sector, organisation, project or user.")] = "project",
    start: Annotated[
        str | None,
        typer.Option("--from", help="Start: ISO date or instant (UTC unless it says); default 30 days back."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="End (exclusive): ISO date or instant; default now.")
    ] = None,
    every: Annotated[str, typer.Option(help="Bucket: day, week (from Monday) or month, in UTC.")] = "day",
    fmt: Annotated[str, typer.Option("--format", help="table, csv, parquet or json.")] = "table",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file (needed for parquet).")
    ] = None,
) -> None:
    """GPU-hours, effective GPU-hours, jobs, waits and share of entitlement over time."""
    as_json = fmt == "json"
    _one_of(fmt, FORMATS, "--format", False)
    _one_of(by, BY, "--by", as_json)
    _one_of(every, EVERY, "--every", as_json)
    start = _date(start, "--from", as_json)
    end = _date(end, "--to", as_json)
    if fmt == "parquet" and out is None:
        _fail(_("--format parquet writes a file: give --out FILE"), EXIT_INPUT)
    with _client(as_json) as c:
        got = c.usage_report(by=by, every=every, start=start, end=end)
    rows: list[dict[str, Any]] = list(got.get("rows", []))
    if fmt == "json":
        if out is not None:
            import json

            out.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        else:
            _print_json(got)
        return
    if fmt in ("csv", "parquet"):
        frame = usage_frame(rows)
        if fmt == "parquet":
            assert out is not None
            frame.write_parquet(out)
        elif out is not None:
            frame.write_csv(out)
        else:
            buf = io.StringIO()
            frame.write_csv(buf)
            sys.stdout.write(buf.getvalue())
        return
    group = {
        "project": _("project"),
        "organisation": _("organisation"),
        "sector": _("sector"),
        "user": _("user"),
    }[by]
    t = _table(
        _(
            "usage by {by}, every {every} ({scope})",
            by=group,
            every=every,
            scope=_scope(str(got.get("scope", ""))),
        ),
        [
            _("period"),
            group,
            _("model"),
            _("GPU-hours"),
            _("effective GPU-hours"),
            _("jobs"),
            _("wait p50 (min)"),
            _("wait p95 (min)"),
            _("of entitlement"),
        ],
    )
    for r in rows:
        p50, p95 = (None if r[k] is None else r[k] / 60 for k in ("wait_p50_s", "wait_p95_s"))
        t.add_row(
            str(r["period"]),
            str(r["key"]),
            str(r["model"]),
            _n(r["gpu_hours"]),
            _n(r["effective_gpu_hours"]),
            str(r["jobs"]),
            _n(p50, ",.1f"),
            _n(p95, ",.1f"),
            _n(r["share_of_entitlement"], ".1%"),
        )
    if not rows:
        t.caption = _("no usage in this range")
    _out().print(t)


@report_app.command("public")
def public(
    period: Annotated[str, typer.Option(help="2026, 2026-H1, 2026-Q1 or 2026-03 (UTC).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for report.html, the CSV tables and report.json.")
    ],
    lang: Annotated[
        str | None, typer.Option(help="Language of the page: ko or en (default: your language).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON too.")] = False,
) -> None:
    """The public report of a period: a self-contained HTML page and CSV of every table."""
    chosen = lang or language()
    _one_of(chosen, LANGUAGES, "--lang", as_json)
    from gpupool.service.report.buckets import PeriodError
    from gpupool.service.report.buckets import period as read_period

    try:
        read_period(period)
    except PeriodError as e:
        _fail(str(e), EXIT_INPUT, as_json)
    with _client(as_json) as c:
        data = c.public_report(period)
    from gpupool.service.report.public_page import write_public_report

    try:
        page = write_public_report(data, out, chosen)
    except OSError as e:
        _fail(
            _("cannot write the report to {out}: {error}", out=out, error=e.strerror or e),
            EXIT_INPUT,
            as_json,
        )
    if as_json:
        _print_json(data)
    else:
        _out().print(_("report: {path}", path=page))


def register(app: typer.Typer) -> None:
    """Mount ``gpupool report`` on ``app``."""
    app.add_typer(report_app, name="report")
