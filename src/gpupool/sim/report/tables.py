"""The report page's tables: the headline comparison of the runs and the per-group tables.

This module owns the rows of the headline table (which metrics, in which unit, which way
is better), marking the best value of a row, the per-sector and per-tenant tables, and
the HTML text of values (escaping, numbers, seconds with a human reading).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpupool.sim.report.runs import Run


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _human_s(seconds: float) -> str:
    if seconds < 90:
        return ""
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _num(v: float, digits: int = 1) -> str:
    return f"{v:,.{digits}f}"


def _fmt_s(v: Any) -> str:
    h = _human_s(float(v))
    return _num(float(v)) + (f'<span class="h">{h}</span>' if h else "")


@dataclass(frozen=True, slots=True)
class _Row:
    label: str
    key: str
    fmt: Callable[[Any], str]
    better: str = ""  # "low", "high" or "" (no best is marked)
    sep: bool = False  # a rule above: starts a new group of rows


def _fmt(spec: str, scale: float = 1.0) -> Callable[[Any], str]:
    def fmt(v: Any) -> str:
        return format(float(v) * scale, spec)

    return fmt


def _headline_rows() -> list[_Row]:
    count, hours, ms = _fmt(",.0f"), _fmt(",.1f"), _fmt(",.3g")
    return [
        _Row("Jobs", "jobs", count),
        _Row("Finished", "finished", count, "high"),
        _Row("Unschedulable", "unschedulable", count),
        _Row("Unfinished at end", "unfinished", count, "low"),
        _Row("Mean JCT (s)", "avg_jct_s", _fmt_s, "low", sep=True),
        _Row("p50 JCT (s)", "p50_jct_s", _fmt_s, "low"),
        _Row("p95 JCT (s)", "p95_jct_s", _fmt_s, "low"),
        _Row("p99 JCT (s)", "p99_jct_s", _fmt_s, "low"),
        _Row("Mean queueing delay (s)", "avg_queue_s", _fmt_s, "low", sep=True),
        _Row("p50 queueing delay (s)", "p50_queue_s", _fmt_s, "low"),
        _Row("p95 queueing delay (s)", "p95_queue_s", _fmt_s, "low"),
        _Row("p99 queueing delay (s)", "p99_queue_s", _fmt_s, "low"),
        _Row("Makespan (h)", "makespan_s", _fmt(",.2f", 1 / 3600), "low", sep=True),
        _Row("Utilisation (%)", "utilization", _fmt(".1f", 100), "high"),
        _Row("Utilisation while jobs arrive (%)", "utilization_arrivals", _fmt(".1f", 100), "high"),
        _Row("Utilisation in the drain after (%)", "utilization_drain", _fmt(".1f", 100)),
        _Row("Drain after the last arrival (h)", "drain_hours", _fmt(",.1f")),
        _Row("Jain fairness (1 = fair)", "jain_fairness", _fmt(".3f"), "high"),
        _Row("GPU-hours used (h)", "gpu_hours", hours),
        _Row("GPU-hours lost to preemption (h)", "lost_gpu_hours", hours, "low"),
        _Row("Node failures", "node_failures", count, "low"),
        _Row("Job attempts ended by node failures", "failure_interruptions", count, "low"),
        _Row("GPU-hours lost to node failures (h)", "failure_lost_gpu_hours", hours, "low"),
        _Row("Accelerator-hours nodes were down (h)", "down_gpu_hours", hours, "low"),
        _Row("Effective GPU-hours (reference-model h)", "effective_gpu_hours", hours),
        _Row("CUDA-capable demand run on NPUs (h)", "npu_absorbed_gpu_hours", hours),
        _Row("Finish-time fairness ρ, mean (1 = fair share)", "ftf_rho_mean", _fmt(".2f"), "low"),
        _Row("Finish-time fairness ρ, max", "ftf_rho_max", _fmt(".2f"), "low"),
        _Row("Preemptions", "preemptions", count, "low"),
        _Row("Scheduling cycles", "cycles", count, sep=True),
        _Row("Cycle time p50 (ms)", "cycle_ms_p50", ms, "low"),
        _Row("Cycle time p99 (ms)", "cycle_ms_p99", ms, "low"),
        _Row("Cycle time max (ms)", "cycle_ms_max", ms, "low"),
        _Row("Wall time (s)", "wall_s", _fmt(",.2f")),
        _Row("Jobs per wall second", "jobs_per_wall_s", count, "high"),
        _Row("Simulated h per wall h (×)", "sim_hours_per_wall_hour", count, "high"),
    ]


def headline_table(runs: Sequence[Run]) -> str:
    head = "".join(f"<th>{esc(r.name)}</th>" for r in runs)
    out = [f'<table class="headline"><thead><tr><th class="k">Metric</th>{head}</tr></thead><tbody>']
    for row in _headline_rows():
        values = [r.metrics.get(row.key) for r in runs]
        texts = [None if v is None else row.fmt(v) for v in values]
        best: str | None = None
        present = [(float(v), t) for v, t in zip(values, texts, strict=True) if v is not None and t]
        # Mark a winner only where there is a contest: several runs that differ as shown (a
        # difference hidden by rounding is no win).
        if row.better and len(present) >= 2 and len({t for _, t in present}) > 1:
            pick = min if row.better == "low" else max
            best = pick(present, key=lambda p: p[0])[1]
        cells = []
        for t in texts:
            if t is None:
                cells.append('<td title="undefined for this run">—</td>')
                continue
            cls = ' class="best"' if t == best else ""
            cells.append(f"<td{cls}>{t}</td>")
        tr = ' class="sep"' if row.sep else ""
        out.append(f'<tr{tr}><td class="k">{esc(row.label)}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def group_table(rows: Sequence[Mapping[str, Any]], kind: str, limit: int = 50) -> str:
    cols = (
        "<th class='k'>Tenant</th><th class='k'>Sector</th>"
        if kind == "tenant"
        else "<th class='k'>Sector</th><th>Tenants</th>"
    )
    out = [
        f"<table><thead><tr>{cols}<th>Jobs</th><th>GPU-hours (h)</th><th>Share (%)</th>"
        "<th>Entitled (%)</th><th>Mean JCT (s)</th><th>Mean queueing delay (s)</th></tr></thead><tbody>"
    ]
    for row in rows[:limit]:
        if kind == "tenant":
            first = f"<td class='k'>{esc(row['tenant'])}</td><td class='k'>{esc(row['sector'] or '—')}</td>"
        else:
            first = f"<td class='k'>{esc(row['sector'] or '(no sector)')}</td><td>{row['tenants']:,}</td>"
        jct = "—" if row["avg_jct_s"] is None else _fmt_s(row["avg_jct_s"])
        q = "—" if row["avg_queue_s"] is None else _fmt_s(row["avg_queue_s"])
        out.append(
            f"<tr>{first}<td>{row['jobs']:,}</td><td>{_num(row['gpu_hours'])}</td>"
            f"<td>{row['share'] * 100:.1f}</td><td>{row['entitled_share'] * 100:.1f}</td>"
            f"<td>{jct}</td><td>{q}</td></tr>"
        )
    out.append("</tbody></table>")
    if len(rows) > limit:
        out.append(f'<p class="legend">Top {limit} of {len(rows)} by GPU-hours; all are in metrics.json.</p>')
    return "".join(out)
