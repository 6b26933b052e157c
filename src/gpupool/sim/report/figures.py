"""The report's figures: what each shows, drawn from the runs, and the captions that say so.

This module owns the six figures (utilisation and queue length over time, JCT and
queueing-delay CDFs, GPU-hour share against entitlement, scheduler cycle time) and their
order, alt text, caption and empty-state text (``FIGURES``). The arithmetic lives in
``gpupool.sim.metrics``; this module only draws its results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from gpupool.sim.metrics import horizon_ms, queue_series, utilization_series
from gpupool.sim.report.axes import (
    cdf_points,
    duration_log_axis,
    fmt_duration,
    nice_bucket_s,
    share_text,
    time_unit,
)
from gpupool.sim.report.runs import Run
from gpupool.sim.report.style import new_figure, short_label

MAX_SHARE_GROUPS = 20


def fig_series(runs: Sequence[Run], which: str) -> Figure | None:
    if not any(r.result.samples for r in runs):
        return None
    end = max(horizon_ms(r.result) for r in runs)
    if end <= 0:
        return None
    bucket_s = nice_bucket_s(end / 1000)
    unit, per = time_unit(end / 1000)
    fig, ax = new_figure()
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
            label = f"{short_label(r.name)}  (mean {r.metrics['utilization']:.0%})"
            y = y * 100
        else:
            mean = float(np.average(s.values, weights=np.diff(t)))
            label = f"{short_label(r.name)}  (mean {mean:,.3g})"
        ax.plot(t, y, color=r.color, lw=1.2, alpha=0.9, label=label, drawstyle="steps-post")
    ax.set_xlim(0, end / 1000 / per)
    ax.set_xlabel(f"simulated time ({unit})")
    if which == "util":
        ax.set_title(f"Utilisation over time (mean per {fmt_duration(bucket_s)})")
        ax.set_ylabel("busy accelerators (% of pool)")
        ax.set_ylim(0, 105)
        ax.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    else:
        ax.set_title(f"Queue length over time (mean per {fmt_duration(bucket_s)})")
        ax.set_ylabel("pending jobs")
        ax.set_ylim(bottom=0)
    ax.legend(loc="best")
    return fig


def fig_cdf(runs: Sequence[Run], which: str) -> Figure | None:
    curves = []
    for r in runs:
        v = r.arrays.jct_s if which == "jct" else r.arrays.queue_s
        if not v.size:
            continue
        x, y = cdf_points(v)
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
    fig, ax = new_figure()
    starts = []
    for r, zero, x, y in curves:
        label = short_label(r.name) + (f"  ({share_text(zero)} at 0 s)" if zero > 0 else "")
        ax.plot(x, y, color=r.color, lw=1.6, label=label)
        starts.append(float(y[0]) if y.size else 1.0)
    duration_log_axis(ax, lo, hi)
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


def share_groups(runs: Sequence[Run]) -> tuple[str, str, list[str]]:
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


def fig_share(runs: Sequence[Run]) -> Figure | None:
    kind, note, groups = share_groups(runs)
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
    fig, ax = new_figure(7.2, max(2.6, 0.9 + n_g * (0.18 + 0.12 * n_p)))
    band = 0.8
    bar_h = band / n_p
    y0 = np.arange(n_g, dtype=np.float64)
    for k, r in enumerate(runs):
        ax.barh(
            y0 - band / 2 + (k + 0.5) * bar_h,
            share[k] * 100,
            height=bar_h * 0.92,
            color=r.color,
            label=short_label(r.name),
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
    ax.set_yticks(y0, [short_label(g or "(no sector)") for g in groups])
    ax.invert_yaxis()  # largest consumer on top
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax.set_xlim(0, max(float(share.max()), float(entitled.max()), 0.01) * 100 * 1.08)
    ax.set_xlabel("share of all GPU-hours of the run (%)")
    ax.set_title(f"GPU-hour share vs entitlement, {note}")
    ax.legend(loc="lower right")
    return fig


def fig_cycles(runs: Sequence[Run]) -> Figure | None:
    have = [(r, np.asarray(r.result.cycle_ms, dtype=np.float64)) for r in runs if r.result.cycle_ms]
    if not have:
        return None
    fig, ax = new_figure(7.2, 3.8)
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
        labels.append(f"{short_label(r.name, 18)}\np50 {p50:.3g} ms\np99 {p99:.3g} · max {mx:.3g}")
    ax.set_xticks(range(1, len(have) + 1), labels)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("wall time per cycle (ms, log scale)")
    ax.set_title("Scheduler cycle time (box p25–p75, whiskers p1–p99, × max)")
    return fig


@dataclass(frozen=True, slots=True)
class FigureSpec:
    """One figure of the page: how to draw it, and what the page says about it."""

    draw: Callable[[Sequence[Run]], Figure | None]  # None: nothing to show for these runs
    alt: str
    caption: str
    empty: str  # shown in the figure's place when ``draw`` returns None


# In page order.
FIGURES: Final[tuple[FigureSpec, ...]] = (
    FigureSpec(
        lambda runs: fig_series(runs, "util"),
        "utilisation over time",
        "Share of the pool's accelerators that are busy, averaged over each time bucket.",
        "No pool samples recorded.",
    ),
    FigureSpec(
        lambda runs: fig_series(runs, "queue"),
        "queue length over time",
        "Jobs submitted but not running (pending), averaged over each time bucket.",
        "No pool samples recorded.",
    ),
    FigureSpec(
        lambda runs: fig_cdf(runs, "jct"),
        "JCT CDF",
        "Further left is faster. Read the median JCT where a curve crosses 50%.",
        "No job finished.",
    ),
    FigureSpec(
        lambda runs: fig_cdf(runs, "queue"),
        "queueing delay CDF",
        "Further left and higher is better; jobs that started at once are the curve's "
        "starting height (legend).",
        "No job waited (or none started).",
    ),
    FigureSpec(
        fig_share,
        "GPU-hour share vs entitlement",
        "Bars: each policy's share of all GPU-hours; black tick: entitled share "
        "(equal shares when the fleet defines none). Bars near the tick are fair.",
        "No tenants.",
    ),
    FigureSpec(
        fig_cycles,
        "scheduler cycle time",
        "Wall time of the scheduling core per cycle (measured, not simulated).",
        "No scheduling cycles measured.",
    ),
)
