"""The report of a set of simulation runs (one per policy): files a person opens.

This package owns ``write_report``, which writes into one folder:

* ``metrics.json``: ``compute_metrics`` of each run, keyed by policy name;
* ``jobs.csv``: one row per job per policy (UTF-8; times in ms; empty where a job never
  started or ended);
* ``report.html``: one self-contained page (inline CSS, figures as base64 PNG, no scripts,
  no external assets) with the run's context, a headline table and the figures.

Figures are drawn with Matplotlib's Agg canvas directly (no pyplot, so no global backend
or figure registry is touched) inside an ``rc_context``. Tenant names may be Hangul: the
figures use an installed font with Hangul glyphs when there is one, and otherwise render
boxes for those glyphs after a single logged warning. The arithmetic lives in
``gpupool.sim.metrics``; this package only formats and draws its results.

Modules: ``files`` (``write_report``, metrics.json, jobs.csv), ``runs`` (the runs compared),
``page`` (report.html), ``tables`` (the page's tables), ``figures`` (the figures and their
captions), ``axes`` (time units, ticks, CDF sampling), ``style`` (fonts, colours, PNG).
"""

from __future__ import annotations

from gpupool.sim.report.files import write_report
from gpupool.sim.report.style import hangul_font_family

__all__ = ["hangul_font_family", "write_report"]
