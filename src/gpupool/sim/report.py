"""The report of a set of simulation runs (one per policy): files a person opens.

This module owns ``write_report``, which writes into one folder:

* ``metrics.json``: ``compute_metrics`` of each run, keyed by policy name;
* ``jobs.csv``: one row per job per policy (UTF-8; times in ms; empty where a job never
  started or ended);
* ``report.html``: one self-contained page (inline CSS, figures as base64 PNG, no scripts,
  no external assets) with the run's context, a headline table and the figures.

Figures are drawn with Matplotlib's Agg canvas directly (no pyplot, so no global backend
or figure registry is touched) inside an ``rc_context``. Tenant names may be Hangul: the
figures use an installed font with Hangul glyphs when there is one, and otherwise render
boxes for those glyphs after a single logged warning. The arithmetic lives in
``gpupool.sim.metrics``; this module only formats and draws its results.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter

from gpupool.sim.metrics import (
    JobArrays,
    compute_metrics,
    horizon_ms,
    queue_series,
    utilization_series,
)
from gpupool.sim.records import RunResult

__all__ = ["hangul_font_family", "write_report"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

# Enough points for a smooth curve at report size; more only slows Agg down.
CDF_POINTS = 2000
SERIES_BUCKETS = 600
MAX_SHARE_GROUPS = 20
DPI = 130
# Tab10, in order: the same policy keeps the same colour in every figure.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

# Families known to carry Hangul, best first. A .ttc collection registers under its first
# face's name, hence "Noto Sans CJK JP" (it holds the Korean glyphs too).
_HANGUL_FAMILIES = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Source Han Sans KR",
    "NanumGothic",
    "NanumBarunGothic",
    "Noto Sans CJK JP",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "UnDotum",
    "Baekmuk Gulim",
)
_HANGUL_FILE_HINTS = (
    "notosanscjk",
    "notosanskr",
    "sourcehansans",
    "nanumgothic",
    "nanumbarungothic",
    "malgun",
    "applesdgothicneo",
    "applegothic",
    "undotum",
    "baekmuk",
)


# --------------------------------------------------------------------------- fonts


@functools.cache
def hangul_font_family() -> str | None:
    """The family name of an installed font with Hangul glyphs, or ``None`` if there is none."""
    known = {f.name for f in font_manager.fontManager.ttflist}
    for family in _HANGUL_FAMILIES:
        if family in known:
            return family

    # Matplotlib's font cache may predate a font installed later (e.g. by apt after the
    # first import): look at the font files themselves and register a match.
    def key(path: str) -> tuple[bool, str]:
        name = Path(path).name.lower()
        return ("bold" in name, name)

    for path in sorted(font_manager.findSystemFonts(), key=key):
        flat = Path(path).name.lower().replace(" ", "").replace("-", "").replace("_", "")
        if not any(hint in flat for hint in _HANGUL_FILE_HINTS):
            continue
        try:
            font_manager.fontManager.addfont(path)
            return str(font_manager.FontProperties(fname=path).get_name())
        except (OSError, RuntimeError, ValueError):
            continue
    return None


@functools.cache
def _warn_no_hangul_font_once() -> None:
    log.warning(
        "no font with Hangul glyphs found; Korean names in report figures will show as boxes "
        "(install fonts-nanum or fonts-noto-cjk)"
    )


@contextmanager
def _figure_style(needs_hangul: bool) -> Iterator[None]:
    hangul = hangul_font_family()
    # DejaVu first keeps Latin text and the minus sign in Matplotlib's usual face; Agg falls
    # back glyph by glyph to the Hangul font for Korean names.
    families = ["DejaVu Sans", hangul] if hangul else ["DejaVu Sans"]
    if needs_hangul and hangul is None:
        _warn_no_hangul_font_once()
    style = matplotlib.rc_context(
        {
            "font.family": families,
            "font.size": 9.5,
            # Regular weight: a bold request makes Matplotlib log a "failed to find font
            # weight" line for Hangul fonts whose bold face is registered as 600.
            "axes.titlesize": 11.5,
            "axes.titlelocation": "left",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "legend.fontsize": 8.5,
        }
    )
    with style, warnings.catch_warnings():
        # Without a Hangul font every missing glyph warns once per draw: one log line above
        # says it instead.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font", category=UserWarning)
        yield


def _label(text: str, limit: int = 28) -> str:
    """A name as Matplotlib text: shortened, and with ``$`` escaped so it is not mathtext."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return short.replace("$", r"\$") or "(none)"


def _has_hangul(texts: Sequence[str]) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" for t in texts for ch in t)


def _new_figure(width: float = 7.2, height: float = 3.8) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- axes helpers

# Human ticks for durations on a log axis: "1 min" reads faster than "6×10¹ s".
_DURATION_TICKS: tuple[tuple[float, str], ...] = (
    (0.001, "1 ms"),
    (0.01, "10 ms"),
    (0.1, "100 ms"),
    (1, "1 s"),
    (10, "10 s"),
    (60, "1 min"),
    (600, "10 min"),
    (3600, "1 h"),
    (6 * 3600, "6 h"),
    (86400, "1 d"),
    (7 * 86400, "1 w"),
    (30 * 86400, "30 d"),
    (365 * 86400, "1 y"),
)


def _duration_log_axis(ax: Axes, lo: float, hi: float) -> None:
    ax.set_xscale("log")
    lo, hi = lo / 1.5, hi * 1.5
    ax.set_xlim(lo, hi)
    ticks = [(v, s) for v, s in _DURATION_TICKS if lo <= v <= hi]
    if len(ticks) >= 2:
        ax.xaxis.set_major_locator(FixedLocator([v for v, _ in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: dict(ticks).get(v, "")))
        ax.xaxis.set_minor_locator(NullLocator())


def _time_unit(horizon_s: float) -> tuple[str, float]:
    if horizon_s <= 2 * 3600:
        return "min", 60.0
    if horizon_s <= 72 * 3600:
        return "h", 3600.0
    return "d", 86400.0


def _nice_bucket_s(horizon_s: float) -> float:
    want = horizon_s / SERIES_BUCKETS
    for b in (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
        if b >= want:
            return float(b)
    return float(math.ceil(want / 86400) * 86400)


def _fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    if seconds < 86400:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 86400:g} d"


def _share_text(frac: float) -> str:
    """A fraction as a percentage that does not round 99.7% up to a misleading "100%"."""
    if 0.995 <= frac < 1.0:
        return f"{frac:.2%}"
    return f"{frac:.0%}"


def _cdf_points(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Empirical CDF of ``values`` at up to ``CDF_POINTS`` ranks (always including the last)."""
    x = np.sort(values)
    n = x.size
    y = np.arange(1, n + 1, dtype=np.float64) / n
    if n > CDF_POINTS:
        keep = np.unique(np.linspace(0, n - 1, CDF_POINTS).astype(np.intp))
        x, y = x[keep], y[keep]
    return x, y


# --------------------------------------------------------------------------- runs


@dataclass(slots=True)
class _Run:
    name: str
    color: str
    result: RunResult
    metrics: dict[str, Any]
    arrays: JobArrays


def _unique_names(results: Sequence[RunResult]) -> list[str]:
    # metrics.json is keyed by policy: two runs of one policy (e.g. two seeds) must not
    # silently overwrite each other.
    seen: dict[str, int] = {}
    names = []
    for r in results:
        seen[r.policy] = seen.get(r.policy, 0) + 1
        names.append(r.policy if seen[r.policy] == 1 else f"{r.policy} ({seen[r.policy]})")
    return names


# --------------------------------------------------------------------------- figures


def _fig_series(runs: Sequence[_Run], which: str) -> Figure | None:
    if not any(r.result.samples for r in runs):
        return None
    end = max(horizon_ms(r.result) for r in runs)
    if end <= 0:
        return None
    bucket_s = _nice_bucket_s(end / 1000)
    unit, per = _time_unit(end / 1000)
    fig, ax = _new_figure()
    for r in runs:
        if not r.result.samples:
            continue
        fn = utilization_series if which == "util" else queue_series
        s = fn(r.result, bucket_s, start_ms=0, end_ms=end)
        if not s.values.size:
            continue
        # steps-post draws a value from its point to the next: repeat the last value at the
        # end so the last bucket shows too.
        t = np.append(s.t_s, end / 1000) / per
        y = np.append(s.values, s.values[-1])
        if which == "util":
            label = f"{_label(r.name)}  (mean {r.metrics['utilization']:.0%})"
            y = y * 100
        else:
            mean = float(np.average(s.values, weights=np.diff(t)))
            label = f"{_label(r.name)}  (mean {mean:,.3g})"
        ax.plot(t, y, color=r.color, lw=1.2, alpha=0.9, label=label, drawstyle="steps-post")
    ax.set_xlim(0, end / 1000 / per)
    ax.set_xlabel(f"simulated time ({unit})")
    if which == "util":
        ax.set_title(f"Utilisation over time (mean per {_fmt_duration(bucket_s)})")
        ax.set_ylabel("busy accelerators (% of pool)")
        ax.set_ylim(0, 105)
        ax.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    else:
        ax.set_title(f"Queue length over time (mean per {_fmt_duration(bucket_s)})")
        ax.set_ylabel("pending jobs")
        ax.set_ylim(bottom=0)
    ax.legend(loc="best")
    return fig


def _fig_cdf(runs: Sequence[_Run], which: str) -> Figure | None:
    curves = []
    for r in runs:
        v = r.arrays.jct_s if which == "jct" else r.arrays.queue_s
        if not v.size:
            continue
        x, y = _cdf_points(v)
        # A log axis cannot show 0: the curve starts at its first positive value, already at
        # the height of the zero-valued jobs, which the legend states.
        pos = x > 0
        curves.append((r, float(np.mean(v <= 0)), x[pos], y[pos]))
    plotted = [x for _, _, x, _ in curves if x.size]
    if not plotted:
        return None
    # Limits from the plotted points, not the raw data: a lone 1 ms outlier dropped by the
    # subsampling would otherwise stretch the axis over empty decades.
    lo = min(float(x[0]) for x in plotted)
    hi = max(float(x[-1]) for x in plotted)
    fig, ax = _new_figure()
    starts = []
    for r, zero, x, y in curves:
        label = _label(r.name) + (f"  ({_share_text(zero)} at 0 s)" if zero > 0 else "")
        ax.plot(x, y, color=r.color, lw=1.6, label=label)
        starts.append(float(y[0]) if y.size else 1.0)
    _duration_log_axis(ax, lo, hi)
    # When most jobs sit at the far left (e.g. 95% never waited), a 0-100% axis leaves the
    # interesting part as a flat line at the top: start the axis below the lowest curve.
    bottom = math.floor(min(starts) * 10) / 10
    bottom = bottom if bottom >= 0.3 else 0.0
    ax.set_ylim(bottom, 1.0 + (1.0 - bottom) * 0.04)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if which == "jct":
        ax.set_title("Job completion time (CDF of finished jobs)" + (" — zoomed" if bottom else ""))
        ax.set_xlabel("JCT: end − submit (log scale)")
        ax.set_ylabel("finished jobs with JCT ≤ x")
    else:
        ax.set_title("Queueing delay (CDF of started jobs)" + (" — zoomed" if bottom else ""))
        ax.set_xlabel("delay: first start − submit (log scale)")
        ax.set_ylabel("started jobs with delay ≤ x")
    ax.legend(loc="lower right")
    return fig


def _share_groups(runs: Sequence[_Run]) -> tuple[str, str, list[str]]:
    """Which rows the share figure shows: ("tenant" | "sector", title note, group names)."""
    gpu_h: dict[str, float] = {}
    for r in runs:
        for t in r.metrics["tenants"]:
            gpu_h[t["tenant"]] = gpu_h.get(t["tenant"], 0.0) + t["gpu_hours"]
    tenants = sorted(gpu_h, key=lambda t: (-gpu_h[t], t))
    if len(tenants) <= MAX_SHARE_GROUPS:
        return "tenant", "per tenant", tenants
    sector_h: dict[str, float] = {}
    for r in runs:
        for s in r.metrics["sectors"]:
            sector_h[s["sector"]] = sector_h.get(s["sector"], 0.0) + s["gpu_hours"]
    if 1 < len(sector_h) <= MAX_SHARE_GROUPS:
        return (
            "sector",
            f"per sector ({len(tenants)} tenants)",
            sorted(sector_h, key=lambda s: (-sector_h[s], s)),
        )
    return (
        "tenant",
        f"top {MAX_SHARE_GROUPS} of {len(tenants)} tenants by GPU-hours",
        tenants[:MAX_SHARE_GROUPS],
    )


def _fig_share(runs: Sequence[_Run]) -> Figure | None:
    kind, note, groups = _share_groups(runs)
    if not groups:
        return None
    rows = "tenants" if kind == "tenant" else "sectors"
    share = np.zeros((len(runs), len(groups)))
    entitled = np.zeros(len(groups))
    pos = {g: i for i, g in enumerate(groups)}
    for k, r in enumerate(runs):
        for row in r.metrics[rows]:
            i = pos.get(row[kind])
            if i is not None:
                share[k, i] = row["share"]
                # Entitlement is a property of the tenant, not of the policy: the first run's.
                if k == 0:
                    entitled[i] = row["entitled_share"]
    n_g, n_p = len(groups), len(runs)
    # Without entitlements the metrics compare against equal shares: say so in the legend.
    entitled_any = any(e > 0 for r in runs for e in r.result.entitlement.values())
    tick_label = "entitled share" if entitled_any else "equal share (no entitlements)"
    fig, ax = _new_figure(7.2, max(2.6, 0.9 + n_g * (0.18 + 0.12 * n_p)))
    band = 0.8
    bar_h = band / n_p
    y0 = np.arange(n_g, dtype=np.float64)
    for k, r in enumerate(runs):
        ax.barh(
            y0 - band / 2 + (k + 0.5) * bar_h,
            share[k] * 100,
            height=bar_h * 0.92,
            color=r.color,
            label=_label(r.name),
        )
    for i in range(n_g):
        ax.plot(
            [entitled[i] * 100] * 2,
            [y0[i] - band / 2, y0[i] + band / 2],
            color="black",
            lw=2,
            solid_capstyle="butt",
            label=(tick_label if i == 0 else None),
        )
    ax.set_yticks(y0, [_label(g or "(no sector)") for g in groups])
    ax.invert_yaxis()  # largest consumer on top
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax.set_xlim(0, max(float(share.max()), float(entitled.max()), 0.01) * 100 * 1.08)
    ax.set_xlabel("share of all GPU-hours of the run (%)")
    ax.set_title(f"GPU-hour share vs entitlement, {note}")
    ax.legend(loc="lower right")
    return fig


def _fig_cycles(runs: Sequence[_Run]) -> Figure | None:
    have = [(r, np.asarray(r.result.cycle_ms, dtype=np.float64)) for r in runs if r.result.cycle_ms]
    if not have:
        return None
    fig, ax = _new_figure(7.2, 3.8)
    # Box = p25..p75, whiskers = p1..p99; fliers would be thousands of dots, so the max is
    # drawn as one marker instead.
    data = [np.maximum(c, 1e-6) for _, c in have]
    bp = ax.boxplot(
        data,
        whis=(1, 99),
        showfliers=False,
        widths=0.55,
        patch_artist=True,
        medianprops={"color": "black", "lw": 1.5},
    )
    for patch, (r, _) in zip(bp["boxes"], have, strict=True):
        patch.set_facecolor(r.color)
        patch.set_alpha(0.55)
    labels = []
    for i, (r, c) in enumerate(have, start=1):
        p50, p99, mx = np.percentile(c, 50), np.percentile(c, 99), float(c.max())
        ax.plot([i], [mx], marker="x", color="black", ms=6, ls="none")
        labels.append(f"{_label(r.name, 18)}\np50 {p50:.3g} ms\np99 {p99:.3g} · max {mx:.3g}")
    ax.set_xticks(range(1, len(have) + 1), labels)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("wall time per cycle (ms, log scale)")
    ax.set_title("Scheduler cycle time (box p25–p75, whiskers p1–p99, × max)")
    return fig


# --------------------------------------------------------------------------- HTML


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


def _e(text: object) -> str:
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
        _Row("Jain fairness (1 = fair)", "jain_fairness", _fmt(".3f"), "high"),
        _Row("GPU-hours used (h)", "gpu_hours", hours),
        _Row("GPU-hours lost to preemption (h)", "lost_gpu_hours", hours, "low"),
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


def _headline_table(runs: Sequence[_Run]) -> str:
    head = "".join(f"<th>{_e(r.name)}</th>" for r in runs)
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
        out.append(f'<tr{tr}><td class="k">{_e(row.label)}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _group_table(rows: Sequence[Mapping[str, Any]], kind: str, limit: int = 50) -> str:
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
            first = f"<td class='k'>{_e(row['tenant'])}</td><td class='k'>{_e(row['sector'] or '—')}</td>"
        else:
            first = f"<td class='k'>{_e(row['sector'] or '(no sector)')}</td><td>{row['tenants']:,}</td>"
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


def _figure_html(fig: Figure | None, alt: str, caption: str, empty: str) -> str:
    if fig is None:
        return f'<figure><div class="empty">{_e(empty)}</div><figcaption>{_e(caption)}</figcaption></figure>'
    data = _png_base64(fig)
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _html(runs: Sequence[_Run], title: str, context: Mapping[str, str], figures: str) -> str:
    ctx = "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in context.items())
    ctx_html = f'<table class="ctx">{ctx}</table>' if ctx else ""
    details = []
    for r in runs:
        details.append(
            f"<details><summary>{_e(r.name)}: per sector and per tenant</summary>"
            f'<h3>Sectors</h3><div class="scroll">{_group_table(r.metrics["sectors"], "sector")}</div>'
            f'<h3>Tenants</h3><div class="scroll">{_group_table(r.metrics["tenants"], "tenant")}</div>'
            "</details>"
        )
    policies = ", ".join(r.name for r in runs)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">Simulation report · {len(runs)} polic{"y" if len(runs) == 1 else "ies"}: {_e(policies)}</p>
{ctx_html}
<h2>Headline</h2>
<div class="scroll">{_headline_table(runs)}</div>
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


# --------------------------------------------------------------------------- files


def _jobs_frame(run: _Run) -> pl.DataFrame:
    jobs = run.result.jobs
    a = run.arrays
    sector_of = run.result.sector_of
    n = len(jobs)

    def ints(name: str) -> npt.NDArray[np.int64]:
        return np.fromiter((getattr(j, name) for j in jobs), dtype=np.int64, count=n)

    frame = pl.DataFrame(
        {
            "policy": pl.Series([run.name] * n, dtype=pl.String),
            "id": pl.Series([j.id for j in jobs], dtype=pl.String),
            "tenant": pl.Series([j.tenant for j in jobs], dtype=pl.String),
            "sector": pl.Series([sector_of.get(j.tenant, "") for j in jobs], dtype=pl.String),
            "state": pl.Series([j.state for j in jobs], dtype=pl.String),
            "gpus": a.gpus,
            "submit_ms": a.submit_ms,
            "first_start_ms": a.first_start_ms,
            "end_ms": a.end_ms,
            "duration_ms": ints("duration_ms"),
            "run_ms": ints("run_ms"),
            "gpu_ms": a.gpu_ms,
            "preemptions": a.preemptions,
            "lost_gpu_ms": a.lost_gpu_ms,
            "model": pl.Series([j.model for j in jobs], dtype=pl.String),
            "cluster": pl.Series([j.cluster for j in jobs], dtype=pl.String),
            "reason": pl.Series([j.reason for j in jobs], dtype=pl.String),
        }
    )
    # The records use -1 for "never"; in a table an empty cell says that without a magic
    # number that sums and means would silently include.
    start, end, submit = pl.col("first_start_ms"), pl.col("end_ms"), pl.col("submit_ms")
    return frame.with_columns(
        pl.when(start >= 0).then(start - submit).alias("queue_ms"),
        pl.when(end >= 0).then(end - submit).alias("jct_ms"),
        pl.when(start >= 0).then(start).alias("first_start_ms"),
        pl.when(end >= 0).then(end).alias("end_ms"),
    ).select(
        "policy",
        "id",
        "tenant",
        "sector",
        "state",
        "gpus",
        "submit_ms",
        "first_start_ms",
        "end_ms",
        "queue_ms",
        "jct_ms",
        "duration_ms",
        "run_ms",
        "gpu_ms",
        "preemptions",
        "lost_gpu_ms",
        "model",
        "cluster",
        "reason",
    )


def write_report(
    out_dir: Path, results: Sequence[RunResult], *, title: str, context: Mapping[str, str]
) -> Path:
    """Write ``metrics.json``, ``jobs.csv`` and ``report.html`` for ``results`` into ``out_dir``.

    ``results`` holds one run per policy (same workload); runs that share a policy name are
    told apart as "name (2)", "name (3)". ``context`` (e.g. fleet, tenants, workload, seed,
    command line) is shown at the top of the page in the given order. Creates ``out_dir``
    if needed, overwrites the three files, and returns the path of ``report.html``.
    """
    if not results:
        raise ValueError("write_report needs at least one RunResult")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, (name, r) in enumerate(zip(_unique_names(results), results, strict=True)):
        arrays = JobArrays.from_result(r)
        metrics = {**compute_metrics(r, jobs=arrays), "policy": name}
        runs.append(_Run(name, PALETTE[i % len(PALETTE)], r, metrics, arrays))

    metrics_path = out_dir / "metrics.json"
    with metrics_path.open("w", encoding="utf-8") as f:
        # allow_nan=False: a NaN would make the file unreadable to strict JSON parsers; the
        # metrics use None for undefined values, so this only trips on a bug.
        json.dump({r.name: r.metrics for r in runs}, f, ensure_ascii=False, indent=2, allow_nan=False)
        f.write("\n")

    pl.concat([_jobs_frame(r) for r in runs], how="vertical").write_csv(out_dir / "jobs.csv")

    names = [r.name for r in runs] + [t["tenant"] for r in runs for t in r.metrics["tenants"]]
    names += [s["sector"] for r in runs for s in r.metrics["sectors"]]
    with _figure_style(_has_hangul(names)):
        figures = [
            _figure_html(
                _fig_series(runs, "util"),
                "utilisation over time",
                "Share of the pool's accelerators that are busy, averaged over each time bucket.",
                "No pool samples recorded.",
            ),
            _figure_html(
                _fig_series(runs, "queue"),
                "queue length over time",
                "Jobs submitted but not running (pending), averaged over each time bucket.",
                "No pool samples recorded.",
            ),
            _figure_html(
                _fig_cdf(runs, "jct"),
                "JCT CDF",
                "Further left is faster. Read the median JCT where a curve crosses 50%.",
                "No job finished.",
            ),
            _figure_html(
                _fig_cdf(runs, "queue"),
                "queueing delay CDF",
                "Further left and higher is better; jobs that started at once are the curve's "
                "starting height (legend).",
                "No job waited (or none started).",
            ),
            _figure_html(
                _fig_share(runs),
                "GPU-hour share vs entitlement",
                "Bars: each policy's share of all GPU-hours; black tick: entitled share "
                "(equal shares when the fleet defines none). Bars near the tick are fair.",
                "No tenants.",
            ),
            _figure_html(
                _fig_cycles(runs),
                "scheduler cycle time",
                "Wall time of the scheduling core per cycle (measured, not simulated).",
                "No scheduling cycles measured.",
            ),
        ]

    path = out_dir / "report.html"
    path.write_text(_html(runs, title, context, "\n".join(figures)), encoding="utf-8")
    return path
