"""The public report as files: one self-contained HTML page (Korean or English) and CSV tables.

This module owns the page a programme publishes for a period, drawn from the figures of
``/v1/reports/public`` (``gpupool.service.report.public``): inline CSS, figures as base64 PNG
(Matplotlib, with a Hangul font such as fonts-nanum when one is installed), no scripts and no
external address, so it opens offline and can be archived as one file. Every table on it is
also written as CSV (Polars), and the figures as ``report.json``.

Its words come from the gettext catalogues (``gpupool/locale``) in the language asked for,
whatever the user's own: ``Words(lang)._`` is extracted by ``scripts/i18n`` like ``_``.
"""

from __future__ import annotations

import datetime as dt
import gettext
import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from gpupool.sim.report.style import PALETTE, figure_style, new_figure, png_base64
from gpupool.translation import DOMAIN, LANGUAGES, LOCALE_DIR

__all__ = ["Words", "write_public_report"]

_CSS = """
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px 32px 48px; color: #1d2330; background: #fafbfc;
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", "Noto Sans KR", "Noto Sans CJK KR",
  "Apple SD Gothic Neo", "Malgun Gothic", NanumGothic, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 30px 0 10px; }
.sub { color: #555e6e; margin: 0 0 16px; }
table { border-collapse: collapse; background: #fff; border: 1px solid #e4e7ec; margin: 6px 0 12px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e4e7ec; text-align: right; }
th { background: #f2f4f7; font-weight: 600; }
td.k, th.k { text-align: left; }
figure { margin: 10px 0; max-width: 760px; background: #fff; border: 1px solid #e4e7ec;
  border-radius: 6px; padding: 10px; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: #555e6e; font-size: 12.5px; margin-top: 6px; }
.scroll { overflow-x: auto; max-width: 100%; }
dl dt { font-weight: 600; margin-top: 8px; }
dl dd { margin-left: 18px; color: #3a4252; }
"""


class Words:
    """The page's words in one language (``en`` or ``ko``)."""

    def __init__(self, lang: str) -> None:
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r} (expected {' or '.join(LANGUAGES)})")
        self.lang = lang
        self._t: gettext.NullTranslations = (
            gettext.NullTranslations()
            if lang == "en"
            else gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang], fallback=True)
        )

    def _(self, message: str, /, **params: object) -> str:
        text = self._t.gettext(message)
        return text.format(**params) if params else text


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{float(x):,.{digits}f}"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):,.1f} %"


def _mins(x: Any) -> str:
    return "–" if x is None else f"{float(x) / 60:,.1f}"


def _h2(text: str) -> str:
    return f"<h2>{_esc(text)}</h2>"


def _date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


Column = tuple[str, str, Callable[[Any], str]]  # key, heading, format


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], empty: str) -> str:
    if not rows:
        return f'<p class="sub">{_esc(empty)}</p>'
    head = "".join(
        f'<th class="{"k" if i == 0 else ""}">{_esc(h)}</th>' for i, (_, h, _f) in enumerate(columns)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"k" if i == 0 else ""}">{_esc(f(r.get(k)))}</td>'
            for i, (k, _h, f) in enumerate(columns)
        )
        + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(fig: Figure | None, caption: str) -> str:
    if fig is None:
        return ""
    return (
        f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{png_base64(fig)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _bars(
    labels: list[str], series: list[tuple[str, list[float]]], ylabel: str, stacked: bool = False
) -> Figure | None:
    if not labels:
        return None
    fig, ax = new_figure(7.2, 2.8)
    n = len(series)
    width = 0.8 / (1 if stacked else n)
    bottom = [0.0] * len(labels)
    for i, (name, values) in enumerate(series):
        xs = [j + (0 if stacked else (i - (n - 1) / 2) * width) for j in range(len(labels))]
        ax.bar(
            xs, values, width, bottom=bottom if stacked else None, label=name, color=PALETTE[i % len(PALETTE)]
        )
        if stacked:
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    ax.legend()
    return fig


def _frames(data: dict[str, Any], w: Words) -> dict[str, tuple[list[dict[str, Any]], list[Column]]]:
    """The page's tables: rows and columns, keyed by the CSV file's stem."""
    title = "title_ko" if w.lang == "ko" else "title_en"
    pool = data["pool"]
    pool_rows = [
        {"metric": w._("Accelerators in the pool"), "value": f"{pool['fleet_gpus']:,}"},
        {"metric": w._("Capacity (GPU-hours)"), "value": _num(pool["capacity_gpu_hours"])},
        {"metric": w._("GPU-hours used"), "value": _num(pool["gpu_hours"])},
        {"metric": w._("Effective GPU-hours (H100-equivalent)"), "value": _num(pool["effective_gpu_hours"])},
        {"metric": w._("Utilisation of the pool"), "value": _pct(pool["utilisation"])},
        {"metric": w._("Jobs started"), "value": f"{pool['jobs_started']:,}"},
        {"metric": w._("Median wait (minutes)"), "value": _mins(pool["wait_p50_s"])},
        {"metric": w._("95th percentile wait (minutes)"), "value": _mins(pool["wait_p95_s"])},
        {"metric": w._("Fairness (Jain's index, 1 = equal)"), "value": _num(pool["jain_fairness"], 3)},
        {"metric": w._("Projects with demand"), "value": f"{pool['projects_with_demand']:,}"},
        {"metric": w._("Share of work on domestic NPUs"), "value": _pct(pool["domestic_npu_share"])},
    ]
    return {
        "pool": (pool_rows, [("metric", w._("Figure"), str), ("value", w._("Value"), str)]),
        "sectors": (
            data["sectors"],
            [
                ("name", w._("Sector"), str),
                ("sector", w._("Key"), str),
                ("granted_gpu_hours", w._("Granted (GPU-h)"), _num),
                ("used_gpu_hours", w._("Used of grants (GPU-h)"), _num),
                ("left_gpu_hours", w._("Left (GPU-h)"), _num),
                ("gpu_hours", w._("Used in period (GPU-h)"), _num),
                ("target_share", w._("Target share"), _pct),
                ("actual_share", w._("Actual share"), _pct),
                ("jobs_started", w._("Jobs started"), str),
                ("wait_p50_s", w._("Median wait (min)"), _mins),
                ("wait_p95_s", w._("p95 wait (min)"), _mins),
            ],
        ),
        "calls": (
            data["calls"],
            [
                (title, w._("Call"), str),
                ("sector", w._("Sector"), str),
                ("granted_gpu_hours", w._("Granted (GPU-h)"), _num),
                ("used_gpu_hours", w._("Used (GPU-h)"), _num),
                ("left_gpu_hours", w._("Left (GPU-h)"), _num),
            ],
        ),
        "models": (
            data["models"],
            [
                ("model", w._("Accelerator model"), str),
                ("vendor", w._("Vendor"), str),
                ("domestic", w._("Domestic NPU"), lambda d: w._("yes") if d else w._("no")),
                ("gpu_hours", w._("GPU-hours"), _num),
                ("effective_gpu_hours", w._("Effective GPU-hours"), _num),
            ],
        ),
    }


def page_html(data: dict[str, Any], w: Words) -> str:
    """The page: headings, tables, figures and definitions in ``w``'s language."""
    tables = _frames(data, w)
    sectors = data["sectors"]
    names = [s["sector"] for s in sectors]  # short keys: display names crowd the axis
    with figure_style(needs_hangul=w.lang == "ko"):
        share = _bars(
            names,
            [
                (w._("Target share"), [100 * (s["target_share"] or 0) for s in sectors]),
                (w._("Actual share"), [100 * (s["actual_share"] or 0) for s in sectors]),
            ],
            w._("share of the pool, per cent"),
        )
        grants = _bars(
            names,
            [
                (w._("Used"), [s["used_gpu_hours"] for s in sectors]),
                (w._("Left"), [s["left_gpu_hours"] for s in sectors]),
            ],
            w._("GPU-hours"),
            stacked=True,
        )
        waits = _bars(
            names,
            [
                (w._("Median wait (min)"), [(s["wait_p50_s"] or 0) / 60 for s in sectors]),
                (w._("p95 wait (min)"), [(s["wait_p95_s"] or 0) / 60 for s in sectors]),
            ],
            w._("minutes"),
        )
        models = data["models"]
        work = _bars(
            [m["model"] for m in models],
            [(w._("GPU-hours"), [m["gpu_hours"] for m in models])],
            w._("GPU-hours"),
        )
    empty = w._("Nothing in this period.")
    heading = _esc(w._("Public report on the national GPU pool: {period}", period=data["period"]))
    parts = [
        f"<h1>{heading}</h1>",
        '<p class="sub">'
        + _esc(
            w._(
                "From {start} to {end}; figures up to {until}.",
                start=_date(data["start_ms"]),
                end=_date(data["end_ms"]),
                until=_date(data["until_ms"]),
            )
        )
        + "</p>",
        _h2(w._("The pool")),
        _table(*tables["pool"], empty),
        _h2(w._("Sectors")),
        _table(*tables["sectors"], empty),
        _figure(share, w._("Share of the pool against its target, by sector")),
        _figure(grants, w._("GPU-hours granted: used and left, by sector")),
        _h2(w._("Calls")),
        _table(*tables["calls"], empty),
        _h2(w._("Waiting times")),
        _figure(waits, w._("Queueing delay of jobs started in the period, by sector")),
        _h2(w._("Accelerator models")),
        _table(*tables["models"], empty),
        _figure(work, w._("GPU-hours by accelerator model")),
        _h2(w._("Definitions")),
        "<dl>"
        + "".join(
            f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>"
            for k, v in (
                (
                    w._("Granted, used, left"),
                    w._(
                        "GPU-hours of the allocations whose period overlaps this one, in full; what their "
                        "projects used of each within its own period; and the difference."
                    ),
                ),
                (w._("Target share"), w._("The sector's guaranteed accelerators over the pool's.")),
                (w._("Actual share"), w._("The sector's GPU-hours in the period over the pool's capacity.")),
                (w._("Waits"), w._("First start minus submission, of the jobs first started in the period.")),
                (
                    w._("Fairness"),
                    w._(
                        "Jain's index of GPU-hours per guaranteed accelerator over the projects with demand."
                    ),
                ),
                (w._("Domestic NPUs"), w._("Accelerators made in Korea: Rebellions ATOM, FuriosaAI RNGD.")),
            )
        )
        + "</dl>",
        '<p class="sub">' + _esc(w._("Every table is also in a CSV file next to this page.")) + "</p>",
    ]
    return (
        f'<!doctype html>\n<html lang="{w.lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{heading}</title><style>{_CSS}</style></head><body>"
        + "\n".join(p for p in parts if p)
        + "</body></html>\n"
    )


def write_public_report(data: dict[str, Any], out: Path, lang: str) -> Path:
    """``report.html``, one CSV per table and ``report.json`` in ``out``; the page's path."""
    w = Words(lang)
    out.mkdir(parents=True, exist_ok=True)
    for stem, (rows, columns) in _frames(data, w).items():
        if stem == "pool":  # the figures themselves, not as the page words them
            pool = data["pool"]
            frame = pl.DataFrame(
                {"metric": list(pool), "value": [None if v is None else float(v) for v in pool.values()]},
                schema={"metric": pl.Utf8, "value": pl.Float64},
            )
        else:
            keys = [k for k, _h, _f in columns if k not in ("title_ko", "title_en")]
            if stem == "calls":
                keys = ["call_id", "title_ko", "title_en", *keys]
            frame = (
                pl.DataFrame([{k: r.get(k) for k in keys} for r in rows], orient="row")
                if rows
                else (pl.DataFrame({k: [] for k in keys}))
            )
        frame.write_csv(out / f"{stem}.csv")
    (out / "report.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    page = out / "report.html"
    page.write_text(page_html(data, w), encoding="utf-8")
    return page
