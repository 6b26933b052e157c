"""The report's three files, written into one folder by ``write_report``.

This module owns what goes into the folder: ``metrics.json`` (the runs' metrics keyed by
name), ``jobs.csv`` (one row per job per run) and ``report.html`` (drawn by the other
modules of this package).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from gpupool.sim.records import RunResult
from gpupool.sim.report.figures import FIGURES
from gpupool.sim.report.page import figure_html, page_html
from gpupool.sim.report.runs import Run, make_runs
from gpupool.sim.report.style import figure_style, has_hangul


def _jobs_frame(run: Run) -> pl.DataFrame:
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
            "failures": a.failures,
            "failure_lost_gpu_ms": a.failure_lost_gpu_ms,
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
        "failures",
        "failure_lost_gpu_ms",
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
    runs = make_runs(results)

    metrics_path = out_dir / "metrics.json"
    with metrics_path.open("w", encoding="utf-8") as f:
        # allow_nan=False: a NaN would make the file unreadable to strict JSON parsers; the
        # metrics use None for undefined values, so this only trips on a bug.
        json.dump({r.name: r.metrics for r in runs}, f, ensure_ascii=False, indent=2, allow_nan=False)
        f.write("\n")

    pl.concat([_jobs_frame(r) for r in runs], how="vertical").write_csv(out_dir / "jobs.csv")

    names = [r.name for r in runs] + [t["tenant"] for r in runs for t in r.metrics["tenants"]]
    names += [s["sector"] for r in runs for s in r.metrics["sectors"]]
    with figure_style(has_hangul(names)):
        # Each figure is encoded as soon as it is drawn, inside the style (text is laid out at
        # draw time), and dropped before the next one is drawn.
        figures = [figure_html(f.draw(runs), f.alt, f.caption, f.empty) for f in FIGURES]

    path = out_dir / "report.html"
    path.write_text(page_html(runs, title, context, "\n".join(figures)), encoding="utf-8")
    return path
