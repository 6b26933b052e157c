"""How the report's figures look and are drawn: fonts (Hangul ones included), style, colours, PNG.

This module owns the Matplotlib side every figure shares: finding an installed font with
Hangul glyphs (tenant names may be Korean) and warning once when there is none, the
``rc_context`` the figures are drawn in, the policies' colours, the figure size and
resolution, label text and encoding a figure as base64 PNG. Figures are drawn with
Matplotlib's Agg canvas directly (no pyplot, so no global backend or figure registry is
touched).
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

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
def figure_style(needs_hangul: bool) -> Iterator[None]:
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


def short_label(text: str, limit: int = 28) -> str:
    """A name as Matplotlib text: shortened, and with ``$`` escaped so it is not mathtext."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return short.replace("$", r"\$") or "(none)"


def has_hangul(texts: Sequence[str]) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" for t in texts for ch in t)


def new_figure(width: float = 7.2, height: float = 3.8) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")
