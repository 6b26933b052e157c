"""The report page, ``report.html``: one self-contained file a person opens.

This module owns the page's HTML and CSS: inline CSS, figures as base64 PNG, no scripts, no
external assets; the run's context, the headline table, the figures and the per-group
tables in that order. The tables' content is ``gpupool.sim.report.tables``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from gpupool.sim.report.runs import Run
from gpupool.sim.report.style import png_base64
from gpupool.sim.report.tables import esc, group_table, headline_table

_CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --best:#e8f5e9; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--fg); background: #fafbfc;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans KR", "Noto Sans CJK KR",
  "Apple SD Gothic Neo", "Malgun Gothic", NanumGothic, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
.sub { color: var(--muted); margin: 0 0 16px; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th { background: #f2f4f7; font-weight: 600; }
td.k, th.k { text-align: left; }
tr.sep td { border-top: 2px solid #d0d5dd; }
td.best { background: var(--best); font-weight: 600; }
.h { color: var(--muted); font-size: 12px; margin-left: 4px; }
table.ctx td { text-align: left; white-space: normal; }
table.ctx td:first-child { color: var(--muted); white-space: nowrap; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap;
  word-break: break-all; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 18px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px;
  padding: 10px; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
.empty { color: var(--muted); font-style: italic; padding: 30px; text-align: center; }
details { margin: 10px 0; }
summary { cursor: pointer; font-weight: 600; }
.legend { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def figure_html(fig: Figure | None, alt: str, caption: str, empty: str) -> str:
    if fig is None:
        return (
            f'<figure><div class="empty">{esc(empty)}</div><figcaption>{esc(caption)}</figcaption></figure>'
        )
    data = png_base64(fig)
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page_html(runs: Sequence[Run], title: str, context: Mapping[str, str], figures: str) -> str:
    ctx = "".join(f"<tr><td>{esc(k)}</td><td><code>{esc(v)}</code></td></tr>" for k, v in context.items())
    ctx_html = f'<table class="ctx">{ctx}</table>' if ctx else ""
    details = []
    for r in runs:
        details.append(
            f"<details><summary>{esc(r.name)}: per sector and per tenant</summary>"
            f'<h3>Sectors</h3><div class="scroll">{group_table(r.metrics["sectors"], "sector")}</div>'
            f'<h3>Tenants</h3><div class="scroll">{group_table(r.metrics["tenants"], "tenant")}</div>'
            "</details>"
        )
    policies = ", ".join(r.name for r in runs)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p class="sub">Simulation report · {len(runs)} polic{"y" if len(runs) == 1 else "ies"}: {esc(policies)}</p>
{ctx_html}
<h2>Headline</h2>
<div class="scroll">{headline_table(runs)}</div>
<p class="legend">Green: best value in the row. JCT over finished jobs, queueing delay over started
jobs; percentiles interpolate linearly between ranks. Utilisation is time-weighted from the first
submission to the last job end. Jain fairness is over GPU-hours received divided by entitled share.
— means undefined for that run.</p>
<h2>Figures</h2>
<div class="grid">
{figures}
</div>
<h2>Tenants and sectors</h2>
{"".join(details)}
<p class="legend">Data: <a href="metrics.json">metrics.json</a> (all metrics per policy),
<a href="jobs.csv">jobs.csv</a> (one row per job per policy).</p>
</body>
</html>
"""
