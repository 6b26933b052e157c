"""The report figures' axes: time units and buckets, duration ticks, CDF sampling.

This module owns turning a run's time span and value ranges into axes a person reads at a
glance: a time unit and bucket for the series, human ticks on a log duration axis, a
subsampled empirical CDF and percentages that do not round 99.7% up to 100%.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

FloatArray = npt.NDArray[np.float64]

# Enough points for a smooth curve at report size; more only slows Agg down.
CDF_POINTS = 2000
SERIES_BUCKETS = 600

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


def duration_log_axis(ax: Axes, lo: float, hi: float) -> None:
    ax.set_xscale("log")
    lo, hi = lo / 1.5, hi * 1.5
    ax.set_xlim(lo, hi)
    ticks = [(v, s) for v, s in _DURATION_TICKS if lo <= v <= hi]
    if len(ticks) >= 2:
        ax.xaxis.set_major_locator(FixedLocator([v for v, _ in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: dict(ticks).get(v, "")))
        ax.xaxis.set_minor_locator(NullLocator())


def time_unit(horizon_s: float) -> tuple[str, float]:
    if horizon_s <= 2 * 3600:
        return "min", 60.0
    if horizon_s <= 72 * 3600:
        return "h", 3600.0
    return "d", 86400.0


def nice_bucket_s(horizon_s: float) -> float:
    want = horizon_s / SERIES_BUCKETS
    for b in (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
        if b >= want:
            return float(b)
    return float(math.ceil(want / 86400) * 86400)


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    if seconds < 86400:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 86400:g} d"


def share_text(frac: float) -> str:
    """A fraction as a percentage that does not round 99.7% up to a misleading "100%"."""
    if 0.995 <= frac < 1.0:
        return f"{frac:.2%}"
    return f"{frac:.0%}"


def cdf_points(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Empirical CDF of ``values`` at up to ``CDF_POINTS`` ranks (always including the last)."""
    x = np.sort(values)
    n = x.size
    y = np.arange(1, n + 1, dtype=np.float64) / n
    if n > CDF_POINTS:
        keep = np.unique(np.linspace(0, n - 1, CDF_POINTS).astype(np.intp))
        x, y = x[keep], y[keep]
    return x, y
