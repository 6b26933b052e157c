"""The files of a sweep: its runs as one table, the summary over seeds, and an HTML report.

This module owns writing a sweep's results (``gpupool.sim.sweep``) to a directory:
``runs.parquet`` and ``runs.csv`` (one row per run), ``summary.csv`` (mean and 95 %
confidence half-width per policy, change and load) and ``report.html`` (the summary as
tables and Matplotlib figures of the headline metrics against load, with error bars).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from gpupool.sim.sweep import GROUP, KEYS, METRICS, SECTOR_PREFIX

#: (metric, label, factor) of the report's figures and summary table.
SHOWN: Final = (
    ("avg_queue_s", "mean queueing delay (h)", 1 / 3600),
    ("p99_queue_s", "p99 queueing delay (h)", 1 / 3600),
    ("utilization", "utilisation (%)", 100.0),
    ("jain_fairness", "Jain fairness", 1.0),
    ("node_failures", "node failures", 1.0),
    ("failure_lost_gpu_hours", "GPU-hours lost to failures", 1.0),
)


def _frame(rows: Sequence[dict[str, Any]]) -> Any:
    import polars as pl

    columns = list(KEYS) + list(METRICS)
    extra = sorted({k for r in rows for k in r if k.startswith(SECTOR_PREFIX)})
    columns += [*extra, "error"]
    data = {c: [r.get(c) for r in rows] for c in columns}
    schema: dict[str, Any] = {c: pl.Float64 for c in columns}
    schema.update(policy=pl.String, change=pl.String, seed=pl.Int64, error=pl.String)
    return pl.DataFrame(data, schema=schema)


def write_sweep(
    out: Path, rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], title: str
) -> Path:
    """Write the sweep's files under ``out``; return the report's path."""
    import polars as pl

    out.mkdir(parents=True, exist_ok=True)
    frame = _frame(rows)
    frame.write_parquet(out / "runs.parquet")
    frame.write_csv(out / "runs.csv")
    pl.DataFrame(list(summary), infer_schema_length=None).write_csv(out / "summary.csv")
    path = out / "report.html"
    path.write_text(_html(rows, summary, title), encoding="utf-8")
    return path


def _cell(mean: Any, ci: Any, factor: float) -> str:
    if mean is None:
        return "-"
    text = f"{mean * factor:,.3g}"
    if ci is not None:
        text += f" ± {ci * factor:,.2g}"
    return text


def _html(rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], title: str) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(k)}</th>" for k in (*GROUP, "runs", "errors"))
    head += "".join(f"<th>{esc(label)}</th>" for _, label, _ in SHOWN)
    body = []
    for s in summary:
        cells = "".join(f"<td>{esc(str(s[k]))}</td>" for k in (*GROUP, "runs", "errors"))
        cells += "".join(f"<td>{esc(_cell(s[f'{m}_mean'], s[f'{m}_ci95'], f))}</td>" for m, _, f in SHOWN)
        body.append(f"<tr>{cells}</tr>")
    sectors = sorted({k for r in rows for k in r if k.startswith(SECTOR_PREFIX)})
    sector_rows = []
    for s in summary:
        cells = "".join(f"<td>{esc(str(s[k]))}</td>" for k in GROUP)
        cells += "".join(f"<td>{esc(_cell(s[f'{k}_mean'], s[f'{k}_ci95'], 1 / 3600))}</td>" for k in sectors)
        sector_rows.append(f"<tr>{cells}</tr>")
    sector_head = "".join(f"<th>{esc(k)}</th>" for k in GROUP)
    sector_head += "".join(f"<th>{esc(k[len(SECTOR_PREFIX) :])}</th>" for k in sectors)
    errors = [r for r in rows if r.get("error")]
    err_html = "".join(
        f"<li>{esc(r['policy'])} / {esc(r['change'])} / load {r['load']} / seed {r['seed']}: "
        f"{esc(str(r['error']))}</li>"
        for r in errors
    )
    figures = "".join(
        f'<img alt="{esc(label)}" src="data:image/png;base64,{png}">' for label, png in _figures(summary)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}img{{max-width:48%;margin:.5em}}</style>
</head><body>
<h1>{esc(title)}</h1>
<p>{len(rows)} runs. Each cell: the mean over seeds ± the half-width of its 95 % confidence
interval (Student's t over the seeds; none with one seed).</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
<h2>Mean queueing delay per sector (h)</h2>
<table><thead><tr>{sector_head}</tr></thead><tbody>{"".join(sector_rows)}</tbody></table>
{f"<h2>Runs that failed</h2><ul>{err_html}</ul>" if errors else ""}
<h2>Figures</h2>
{figures}
</body></html>
"""


def _figures(summary: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """One PNG (base64) per shown metric: the metric against load, one line per (policy,
    change), error bars = the 95 % confidence interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in summary:
        series.setdefault((s["policy"], s["change"]), []).append(s)
    out = []
    for metric, label, factor in SHOWN:
        fig, ax = plt.subplots(figsize=(6, 4))
        for k, ((policy, change), pts) in enumerate(series.items()):
            pts = sorted((p for p in pts if p[f"{metric}_mean"] is not None), key=lambda p: p["load"])
            if not pts:
                continue
            # side by side around each load, so that error bars at the same load do not hide
            # one another
            dodge = (k - (len(series) - 1) / 2) * 0.6
            ax.errorbar(
                [p["load"] * 100 + dodge for p in pts],
                [p[f"{metric}_mean"] * factor for p in pts],
                yerr=[(p[f"{metric}_ci95"] or 0.0) * factor for p in pts],
                marker="o",
                capsize=3,
                label=f"{policy} / {change}",
            )
        ax.set_xlabel("offered load (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out.append((label, base64.b64encode(buf.getvalue()).decode("ascii")))
    return out
