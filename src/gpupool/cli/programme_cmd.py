"""The national programme's commands: ``gpupool calls ...``, ``gpupool applications ...``,
``gpupool apply``, ``gpupool review`` and ``gpupool award`` (ADR 0010).

This module owns the command-line surface of calls and applications. Like the other client
commands (``gpupool.cli.client_cmd``, whose client, output and exit codes these share) each
is a thin Typer function over one API call, printing a Rich table or, with ``--json``, the
server's JSON unchanged. Amounts are ``MODEL=NUMBER`` pairs (``--hours H100=500``), dates ISO
(``2026-03-01``, local time unless it says otherwise) or ``now``, criteria ``key:weight`` or
``key:weight:name``, scores ``key=score``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from gpupool.cli.client_cmd import EXIT_INPUT, JsonOpt, _client, _fail, _out, _print_json, _table, _when

__all__ = ["register"]

calls_app = typer.Typer(
    help="Calls for applications: write, open, close, review, rank, report.", no_args_is_help=True
)
applications_app = typer.Typer(
    help="Applications to calls: write, submit, withdraw, read, report outputs.", no_args_is_help=True
)

Hours = Annotated[
    list[str], typer.Option("--hours", help="GPU-hours per model: MODEL=HOURS (repeat; * for any).")
]
Guarantee = Annotated[
    list[str] | None, typer.Option("--guarantee", help="Guaranteed accelerators per model: MODEL=N (repeat).")
]


def _pairs(items: list[str] | None, what: str, as_json: bool, number: type = float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key.strip()] = number(value)
        except ValueError:
            _fail(f"{what}: cannot read {item!r} (write KEY=NUMBER, e.g. H100=500)", EXIT_INPUT, as_json)
    return out


def _ms(text: str, what: str, as_json: bool) -> int:
    """Epoch milliseconds of an ISO date/time (local when it names no zone) or ``now``."""
    if text.strip().lower() == "now":
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        _fail(
            f"{what}: cannot read {text!r} as a date (write 2026-03-01 or 2026-03-01T09:00+09:00)",
            EXIT_INPUT,
            as_json,
        )
    if t.tzinfo is None:
        t = t.astimezone()
    return int(t.timestamp() * 1000)


def _criteria(items: list[str], as_json: bool) -> list[dict[str, Any]]:
    out = []
    for item in items:
        parts = item.split(":", 2)
        try:
            if len(parts) < 2:
                raise ValueError
            out.append(
                {"key": parts[0], "weight": float(parts[1]), "name": parts[2] if len(parts) > 2 else parts[0]}
            )
        except ValueError:
            _fail(
                f"--criterion: cannot read {item!r} (write key:weight or key:weight:name)",
                EXIT_INPUT,
                as_json,
            )
    return out


def _amounts(d: Mapping[str, Any]) -> str:
    return (
        ", ".join(f"{m} {float(v):,.1f}" if isinstance(v, float) else f"{m} {v}" for m, v in d.items()) or "-"
    )


def _show_call(c: Mapping[str, Any]) -> None:
    t = _table(f"call {c['id']}: {c['title_en']} / {c['title_ko']}", ["field", "value"])
    t.add_row("state", f"{c['state']}" + (" (accepting applications)" if c.get("accepting") else ""))
    t.add_row("eligible sectors", ", ".join(c["eligible_sectors"]))
    t.add_row("GPU-hours", _amounts(c["gpu_hours"]))
    t.add_row("GPU-hours left", _amounts(c["gpu_hours_left"]))
    t.add_row("guaranteed (left)", f"{_amounts(c['guaranteed'])} ({_amounts(c['guaranteed_left'])})")
    t.add_row("award period", f"{_when(c['period_start_ms'])} .. {_when(c['period_end_ms'])}")
    t.add_row("open", f"{_when(c['opens_ms'])} .. {_when(c['closes_ms'])}")
    t.add_row("criteria", ", ".join(f"{k['name']} ({k['key']}) x{k['weight']:g}" for k in c["criteria"]))
    t.add_row("reviewers", ", ".join(c["reviewers"]) or "-")
    _out().print(t)


def _show_application(a: Mapping[str, Any]) -> None:
    t = _table(f"application {a['id']}: {a['title']}", ["field", "value"])
    t.add_row("call", str(a["call_id"]))
    t.add_row("project", a["project"])
    t.add_row("state", a["state"])
    t.add_row("GPU-hours asked", _amounts(a["gpu_hours"]))
    t.add_row("guaranteed asked", _amounts(a["guaranteed"]))
    t.add_row("period", f"{_when(a['period_start_ms'])} .. {_when(a['period_end_ms'])}")
    if a.get("renews_allocation_id"):
        t.add_row("renews allocation", str(a["renews_allocation_id"]))
    t.add_row("justification", a["justification"])
    t.add_row("expected outputs", a["expected_outputs"] or "-")
    for r in a.get("reviews", []):
        t.add_row(f"review by {r['reviewer']}", f"{_amounts(r['scores'])}  {r['comment']}")
    award = a.get("award")
    if award:
        t.add_row("awarded", f"{_amounts(award['gpu_hours'])}; guaranteed {_amounts(award['guaranteed'])}")
        t.add_row("allocations", ", ".join(str(i) for i in award["allocation_ids"]))
    for o in a.get("outputs", []):
        t.add_row(f"output ({o['kind']})", f"{o['title']} {o['url']}")
    _out().print(t)


def _done(got: Any, as_json: bool, line: str) -> None:
    if as_json:
        _print_json(got)
    else:
        _out().print(line, highlight=False)


# -- calls ---------------------------------------------------------------------------------


@calls_app.command("create")
def calls_create(
    title_ko: Annotated[str, typer.Option("--title-ko", help="Title in Korean.")],
    title_en: Annotated[str, typer.Option("--title-en", help="Title in English.")],
    sector: Annotated[list[str], typer.Option("--sector", help="An eligible sector (repeat).")],
    hours: Hours,
    period_start: Annotated[
        str, typer.Option("--period-start", help="Start of the award period (ISO date).")
    ],
    period_end: Annotated[str, typer.Option("--period-end", help="End of the award period (ISO date).")],
    closes: Annotated[str, typer.Option("--closes", help="Last moment to submit (ISO date).")],
    criterion: Annotated[
        list[str], typer.Option("--criterion", help="A review criterion key:weight[:name] (repeat).")
    ],
    guarantee: Guarantee = None,
    opens: Annotated[str, typer.Option("--opens", help="First moment to submit (ISO date or now).")] = "now",
    effective: Annotated[
        bool, typer.Option("--effective", help="Count its GPU-hours as effective (H100-equivalent) hours.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a call (a draft: `gpupool calls open` announces it). Pool admins."""
    body = {
        "title_ko": title_ko,
        "title_en": title_en,
        "eligible_sectors": sector,
        "gpu_hours": _pairs(hours, "--hours", as_json),
        "guaranteed": _pairs(guarantee, "--guarantee", as_json, int),
        "period_start_ms": _ms(period_start, "--period-start", as_json),
        "period_end_ms": _ms(period_end, "--period-end", as_json),
        "opens_ms": _ms(opens, "--opens", as_json),
        "closes_ms": _ms(closes, "--closes", as_json),
        "criteria": _criteria(criterion, as_json),
        "unit": "effective" if effective else "gpu_hours",
    }
    with _client(as_json) as c:
        got = c.create_call(body)
    _done(
        got,
        as_json,
        f"call [bold]{got['id']}[/] written as a draft: `gpupool calls open {got['id']}` opens it",
    )


@calls_app.command("list")
def calls_list(
    state: Annotated[str | None, typer.Option(help="draft, open, closed or decided.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The calls you may see (drafts are the pool admins')."""
    with _client(as_json) as c:
        got = c.calls(state=state)
    if as_json:
        _print_json(got)
        return
    t = _table("calls", ["id", "title", "state", "sectors", "GPU-hours left", "closes"])
    for k in got:
        t.add_row(
            str(k["id"]),
            f"{k['title_en']} / {k['title_ko']}",
            k["state"] + (" (accepting)" if k["accepting"] else ""),
            ", ".join(k["eligible_sectors"]),
            _amounts(k["gpu_hours_left"]),
            _when(k["closes_ms"]),
        )
    _out().print(t)


@calls_app.command("show")
def calls_show(call_id: Annotated[int, typer.Argument(help="Call id.")], as_json: JsonOpt = False) -> None:
    """Everything about one call."""
    with _client(as_json) as c:
        got = c.call(call_id)
    if as_json:
        _print_json(got)
    else:
        _show_call(got)


def _step(call_id: int, step: str, as_json: bool) -> None:
    with _client(as_json) as c:
        got = c.call_step(call_id, step)
    _done(got, as_json, f"call [bold]{call_id}[/] is {got['state']}")


@calls_app.command("open")
def calls_open(call_id: Annotated[int, typer.Argument(help="Call id.")], as_json: JsonOpt = False) -> None:
    """Open a call for applications."""
    _step(call_id, "open", as_json)


@calls_app.command("close")
def calls_close(call_id: Annotated[int, typer.Argument(help="Call id.")], as_json: JsonOpt = False) -> None:
    """Close a call: its submitted applications go under review."""
    _step(call_id, "close", as_json)


@calls_app.command("decide")
def calls_decide(call_id: Annotated[int, typer.Argument(help="Call id.")], as_json: JsonOpt = False) -> None:
    """Mark a call decided: applications still undecided are declined."""
    _step(call_id, "decide", as_json)


@calls_app.command("reviewer")
def calls_reviewer(
    call_id: Annotated[int, typer.Argument(help="Call id.")],
    user: Annotated[str, typer.Argument(help="The user who reviews the call's applications.")],
    as_json: JsonOpt = False,
) -> None:
    """Assign a reviewer to a call."""
    with _client(as_json) as c:
        got = c.add_reviewer(call_id, user)
    _done(got, as_json, f"call [bold]{call_id}[/] reviewers: {', '.join(got['reviewers'])}")


@calls_app.command("ranking")
def calls_ranking(call_id: Annotated[int, typer.Argument(help="Call id.")], as_json: JsonOpt = False) -> None:
    """The call's applications ranked by weighted review score, and what is left to award."""
    with _client(as_json) as c:
        got = c.ranking(call_id)
    if as_json:
        _print_json(got)
        return
    t = _table(
        f"call {call_id} ranking (left: {_amounts(got['gpu_hours_left'])})",
        ["rank", "application", "project", "state", "score", "reviews", "GPU-hours asked"],
    )
    for i in got["items"]:
        score = "-" if i["score"] is None else f"{i['score']:.2f} / {got['score_max']:g}"
        t.add_row(
            str(i["rank"]), str(i["application_id"]), i["project"], i["state"], score, str(i["reviews"]),
            _amounts(i["gpu_hours"]),
        )  # fmt: skip
    _out().print(t)


@calls_app.command("report")
def calls_report(call_id: Annotated[int, typer.Argument(help="Call id.")], as_json: JsonOpt = False) -> None:
    """The call's awards: GPU-hours granted and used, and the outputs reported."""
    with _client(as_json) as c:
        got = c.call_report(call_id)
    if as_json:
        _print_json(got)
        return
    scope = "" if got["scope"] == "all" else " (your projects only)"
    t = _table(
        f"call {call_id} report{scope}", ["application", "project", "state", "granted", "used", "outputs"]
    )
    for a in got["awards"]:
        outputs = "\n".join(f"{o['kind']}: {o['title']} {o['url']}" for o in a["outputs"]) or "-"
        t.add_row(
            str(a["application_id"]), a["project"], a["state"], _amounts(a["gpu_hours"]),
            _amounts(a["used_gpu_hours"]), outputs,
        )  # fmt: skip
    t.add_section()
    t.add_row("total", "", "", _amounts(got["granted_gpu_hours"]), _amounts(got["used_gpu_hours"]), "")
    _out().print(t)


# -- applications --------------------------------------------------------------------------


def applications_create(
    call: Annotated[int, typer.Option("--call", help="The call applied to.")],
    project: Annotated[str, typer.Option("--project", help="The project applying (path or unique name).")],
    title: Annotated[str, typer.Option("--title", help="Title of the application.")],
    hours: Hours,
    justification: Annotated[str, typer.Option("--justification", help="Why (text, or @FILE to read it).")],
    guarantee: Guarantee = None,
    expected_outputs: Annotated[
        str, typer.Option("--outputs", help="Expected outputs (text, or @FILE to read it).")
    ] = "",
    period_start: Annotated[str | None, typer.Option("--period-start", help="Default: the call's.")] = None,
    period_end: Annotated[str | None, typer.Option("--period-end", help="Default: the call's.")] = None,
    renews: Annotated[
        int | None, typer.Option("--renews", help="The allocation this application renews or extends.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write an application to an open call (a draft: `gpupool applications submit` sends it)."""
    body: dict[str, Any] = {
        "call_id": call,
        "project": project,
        "title": title,
        "gpu_hours": _pairs(hours, "--hours", as_json),
        "guaranteed": _pairs(guarantee, "--guarantee", as_json, int),
        "justification": _text_or_file(justification, as_json),
        "expected_outputs": _text_or_file(expected_outputs, as_json),
    }
    if period_start is not None:
        body["period_start_ms"] = _ms(period_start, "--period-start", as_json)
    if period_end is not None:
        body["period_end_ms"] = _ms(period_end, "--period-end", as_json)
    if renews is not None:
        body["renews_allocation_id"] = renews
    with _client(as_json) as c:
        got = c.create_application(body)
    then = f"`gpupool applications submit {got['id']}` sends it"
    _done(got, as_json, f"application [bold]{got['id']}[/] written as a draft: {then}")


def _text_or_file(text: str, as_json: bool) -> str:
    if not text.startswith("@"):
        return text
    try:
        with open(text[1:], encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        _fail(f"cannot read {text[1:]}: {e.strerror}", EXIT_INPUT, as_json)


def _app_step(application_id: int, step: str, as_json: bool, body: Mapping[str, Any] | None = None) -> None:
    with _client(as_json) as c:
        got = c.application_step(application_id, step, body)
    _done(got, as_json, f"application [bold]{application_id}[/] is {got['state']}")


@applications_app.command("submit")
def applications_submit(
    application_id: Annotated[int, typer.Argument(help="Application id.")], as_json: JsonOpt = False
) -> None:
    """Submit an application (while its call accepts applications)."""
    _app_step(application_id, "submit", as_json)


@applications_app.command("withdraw")
def applications_withdraw(
    application_id: Annotated[int, typer.Argument(help="Application id.")], as_json: JsonOpt = False
) -> None:
    """Withdraw an application (before it is decided)."""
    _app_step(application_id, "withdraw", as_json)


@applications_app.command("decline")
def applications_decline(
    application_id: Annotated[int, typer.Argument(help="Application id.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Decline an application (pool admins)."""
    _app_step(application_id, "decline", as_json, {"note": note})


@applications_app.command("list")
def applications_list(
    call: Annotated[int | None, typer.Option(help="Only this call's.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project's.")] = None,
    state: Annotated[str | None, typer.Option(help="Only in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The applications you may read."""
    with _client(as_json) as c:
        got = c.applications(call=call, project=project, state=state)
    if as_json:
        _print_json(got)
        return
    t = _table("applications", ["id", "call", "project", "title", "state", "GPU-hours asked", "awarded"])
    for a in got:
        awarded = _amounts(a["award"]["gpu_hours"]) if a.get("award") else "-"
        t.add_row(
            str(a["id"]),
            str(a["call_id"]),
            a["project"],
            a["title"],
            a["state"],
            _amounts(a["gpu_hours"]),
            awarded,
        )
    _out().print(t)


@applications_app.command("show")
def applications_show(
    application_id: Annotated[int, typer.Argument(help="Application id.")], as_json: JsonOpt = False
) -> None:
    """Everything you may read about one application."""
    with _client(as_json) as c:
        got = c.application(application_id)
    if as_json:
        _print_json(got)
    else:
        _show_application(got)


@applications_app.command("output")
def applications_output(
    application_id: Annotated[int, typer.Argument(help="Application id (an awarded one).")],
    kind: Annotated[str, typer.Option(help="paper, model, product, dataset, software or other.")],
    title: Annotated[str, typer.Option(help="Title of the output.")],
    url: Annotated[str, typer.Option(help="Where it is (http or https).")],
    as_json: JsonOpt = False,
) -> None:
    """Report an output (paper, model, product...) against an award."""
    with _client(as_json) as c:
        got = c.application_step(application_id, "outputs", {"kind": kind, "title": title, "url": url})
    _done(got, as_json, f"output {got['id']} reported against application [bold]{application_id}[/]")


def review(
    application_id: Annotated[int, typer.Argument(help="Application id.")],
    score: Annotated[list[str], typer.Option("--score", help="A criterion's score: KEY=0..10 (repeat).")],
    comment: Annotated[str, typer.Option(help="Your comment (text, or @FILE to read it).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Score an application you review, criterion by criterion (replaces your earlier review)."""
    body = {"scores": _pairs(score, "--score", as_json), "comment": _text_or_file(comment, as_json)}
    with _client(as_json) as c:
        got = c.application_step(application_id, "reviews", body)
    _done(got, as_json, f"review of application [bold]{application_id}[/] recorded")


def award(
    application_id: Annotated[int, typer.Argument(help="Application id.")],
    hours: Hours,
    guarantee: Guarantee = None,
    note: Annotated[str, typer.Option(help="A note kept with the award.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Award an application in full or in part (pool admins): its allocations are created."""
    body = {
        "gpu_hours": _pairs(hours, "--hours", as_json),
        "guaranteed": _pairs(guarantee, "--guarantee", as_json, int),
        "note": note,
    }
    with _client(as_json) as c:
        got = c.application_step(application_id, "award", body)
    if as_json:
        _print_json(got)
        return
    a = got["award"]
    _out().print(
        f"application [bold]{application_id}[/] is {got['state']}: {_amounts(a['gpu_hours'])} GPU-hours"
        f" (allocations {', '.join(str(i) for i in a['allocation_ids'])})",
        highlight=False,
    )


applications_app.command("create")(applications_create)
applications_app.command("review")(review)
applications_app.command("award")(award)


def register(app: typer.Typer) -> None:
    """Mount ``calls``, ``applications``, ``apply``, ``review`` and ``award`` on ``app``."""
    app.add_typer(calls_app, name="calls")
    app.add_typer(applications_app, name="applications")
    app.command("apply")(applications_create)
    app.command("review")(review)
    app.command("award")(award)
