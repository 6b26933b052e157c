"""The report: the three files, what the page contains, Korean names, and large runs."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gpupool.sim.metrics import JobArrays, compute_metrics
from gpupool.sim.records import JobRecord, PoolSample, RunResult
from gpupool.sim.report import figures, hangul_font_family, runs, style, write_report

H = 3_600_000
SNU = "서울대학교"
KAIST = "KAIST/vision"
ETRI = "한국전자통신연구원"
PNG_TAG = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def make_run(policy: str, slowdown: int = 1, *, sectors: bool = True) -> RunResult:
    """Six jobs of three tenants on 8 GPUs; ``slowdown`` stretches every queueing delay."""
    jobs: list[JobRecord] = []
    for i, (tenant, gpus) in enumerate([(SNU, 4), (SNU, 2), (KAIST, 2), (KAIST, 1), (ETRI, 1), (ETRI, 8)]):
        submit = i * 600_000
        start = submit + i * 60_000 * slowdown
        end = start + (i + 1) * H // 2
        jobs.append(
            JobRecord(
                id=f"j{i}",
                tenant=tenant,
                gpus=gpus,
                submit_ms=submit,
                duration_ms=end - start,
                state="finished",
                first_start_ms=start,
                end_ms=end,
                run_ms=end - start,
                gpu_ms=(end - start) * gpus,
                model="H100",
                cluster="daejeon",
            )
        )
    jobs.append(JobRecord(id="big", tenant=ETRI, gpus=64, submit_ms=0, duration_ms=H, state="unschedulable"))
    jobs.append(JobRecord(id="late", tenant=KAIST, gpus=1, submit_ms=5 * H, duration_ms=H))  # never started
    samples = [
        PoolSample(t_ms=t, busy_gpus=b, total_gpus=8, pending_jobs=p, running_jobs=r)
        for t, b, p, r in [(0, 4, 1, 1), (H, 8, 2, 3), (2 * H, 6, 0, 2), (4 * H, 1, 1, 1), (6 * H, 0, 1, 0)]
    ]
    return RunResult(
        policy=policy,
        jobs=jobs,
        samples=samples,
        total_gpus=8,
        entitlement={SNU: 0.5, KAIST: 0.3, ETRI: 0.2},
        sector_of={SNU: "academia", KAIST: "academia", ETRI: "public"} if sectors else {},
        cycle_ms=[0.5, 0.7, 1.2, 0.9, 3.0],
        wall_s=0.25,
        sim_end_ms=6 * H,
    )


CONTEXT = {
    "fleet": "fleets/national.yaml (8 × H100)",
    "tenants": f"3 ({SNU}, {KAIST}, {ETRI})",
    "seed": "42",
    "command": "gpupool sim run --policies fifo,backfill <out>",
}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    path = write_report(out, [make_run("fifo", 3), make_run("backfill", 1)], title="Pool A", context=CONTEXT)
    assert path == out / "report.html"
    return out


def test_writes_three_files(written: Path) -> None:
    assert {p.name for p in written.iterdir()} == {"metrics.json", "jobs.csv", "report.html"}


def test_metrics_json_parses_and_matches_compute_metrics(written: Path) -> None:
    data = json.loads((written / "metrics.json").read_text(encoding="utf-8"))
    assert list(data) == ["fifo", "backfill"]
    expected = json.loads(json.dumps(compute_metrics(make_run("fifo", 3))))
    assert data["fifo"] == expected
    assert data["backfill"]["avg_queue_s"] < data["fifo"]["avg_queue_s"]
    assert {t["tenant"] for t in data["fifo"]["tenants"]} == {SNU, KAIST, ETRI}
    # Korean written as UTF-8 text, not \\u escapes: the file is for people too.
    assert SNU in (written / "metrics.json").read_text(encoding="utf-8")


def test_jobs_csv_has_one_row_per_job_per_policy(written: Path) -> None:
    df = pl.read_csv(written / "jobs.csv")
    assert df.height == 2 * 8
    assert df["policy"].to_list() == ["fifo"] * 8 + ["backfill"] * 8
    assert SNU in df["tenant"].to_list()
    row = df.filter((pl.col("policy") == "fifo") & (pl.col("id") == "j1")).row(0, named=True)
    assert row["queue_ms"] == 180_000 and row["jct_ms"] == 180_000 + H
    assert row["sector"] == "academia" and row["model"] == "H100"
    late = df.filter((pl.col("policy") == "fifo") & (pl.col("id") == "late")).row(0, named=True)
    # "Never" is an empty cell, not -1.
    assert late["first_start_ms"] is None and late["queue_ms"] is None and late["jct_ms"] is None
    assert late["state"] == "unfinished"


def test_html_is_self_contained_with_figures_and_korean(written: Path) -> None:
    page = (written / "report.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in page
    images = PNG_TAG.findall(page)
    assert len(images) == 6  # utilisation, queue, JCT CDF, queue CDF, shares, cycles
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    for name in (SNU, ETRI, "Pool A", "fifo", "backfill"):
        assert name in page
    # Context at the top, before the headline table.
    assert page.index("gpupool sim run") < page.index("Headline")
    # No external assets and no scripts.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for label in ("Utilisation (%)", "Mean JCT (s)", "Makespan (h)", "Cycle time p99 (ms)"):
        assert label in page


def test_best_value_is_marked(written: Path) -> None:
    page = (written / "report.html").read_text(encoding="utf-8")
    row = re.search(r"Mean queueing delay \(s\)</td>(.*?)</tr>", page)
    assert row is not None
    cells = re.findall(r"<td( class=\"best\")?>", row.group(1))
    assert cells == ["", ' class="best"']  # backfill waited less


def test_names_are_escaped(tmp_path: Path) -> None:
    run = make_run("<b>fifo</b>")
    run.jobs[0].tenant = "<script>alert(1)</script>"
    page = write_report(tmp_path, [run], title="A & B", context={"note": '"quoted" <x>'}).read_text("utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>fifo</b>" not in page and "&lt;b&gt;fifo&lt;/b&gt;" in page
    assert "A &amp; B" in page and "&quot;quoted&quot; &lt;x&gt;" in page


def test_duplicate_policy_names_are_kept_apart(tmp_path: Path) -> None:
    write_report(tmp_path, [make_run("fifo"), make_run("fifo", 2)], title="t", context={})
    data = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert list(data) == ["fifo", "fifo (2)"]
    assert data["fifo (2)"]["policy"] == "fifo (2)"


def test_no_results_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_report(tmp_path, [], title="t", context={})


def test_degenerate_run_still_reports(tmp_path: Path) -> None:
    run = RunResult(
        policy="empty",
        jobs=[JobRecord(id="x", tenant=SNU, gpus=1, submit_ms=0, duration_ms=1, state="unfinished")],
        samples=[],
        total_gpus=8,
    )
    page = write_report(tmp_path / "new" / "dir", [run], title="t", context={}).read_text("utf-8")
    assert "No pool samples recorded." in page and "No job finished." in page
    assert "No scheduling cycles measured." in page
    assert len(PNG_TAG.findall(page)) == 1  # only the share figure has data
    json.loads((tmp_path / "new" / "dir" / "metrics.json").read_text(encoding="utf-8"))


def test_share_figure_groups_many_tenants() -> None:
    def make_runs(n: int, sectors: bool) -> list[runs.Run]:
        r = make_run("p", sectors=sectors)
        for i, j in enumerate(r.jobs):
            j.tenant = f"기관{i % n:02d}"
        r.entitlement = {}
        r.sector_of = {f"기관{i:02d}": f"s{i % 3}" for i in range(n)} if sectors else {}
        return [runs.Run("p", "#000", r, compute_metrics(r), JobArrays.from_result(r))]

    kind, _, groups = figures.share_groups(make_runs(8, sectors=True))
    assert kind == "tenant" and len(groups) == 8
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "MAX_SHARE_GROUPS", 5)
        kind, note, groups = figures.share_groups(make_runs(8, sectors=True))
        assert kind == "sector" and sorted(groups) == ["s0", "s1", "s2"] and "8 tenants" in note
        kind, note, groups = figures.share_groups(make_runs(8, sectors=False))
        assert kind == "tenant" and len(groups) == 5 and "top 5 of 8" in note


def test_installed_hangul_font_has_hangul_glyphs() -> None:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    family = hangul_font_family()
    if family is None:
        pytest.skip("no font with Hangul glyphs installed (install fonts-nanum)")
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    assert FT2Font(path).get_char_index(ord("서")) != 0


def test_without_hangul_font_no_warning_spam(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(style, "hangul_font_family", lambda: None)
    style._warn_no_hangul_font_once.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="gpupool.sim.report"):
            page = write_report(tmp_path, [make_run("fifo")], title="t", context={}).read_text("utf-8")
            write_report(tmp_path, [make_run("fifo")], title="t", context={})
    assert [str(w.message) for w in caught] == []
    assert len([r for r in caplog.records if "Hangul" in r.getMessage()]) == 1
    assert SNU in page and len(PNG_TAG.findall(page)) == 6


def big_run(policy: str, n_jobs: int, n_samples: int, seed: int) -> RunResult:
    rng = np.random.default_rng(seed)
    submit = np.sort(rng.integers(0, 30 * 24 * H // 24, n_jobs))
    wait = (rng.exponential(600_000, n_jobs) * (rng.random(n_jobs) < 0.6)).astype(np.int64)
    run = rng.lognormal(15, 1.2, n_jobs).astype(np.int64) + 1
    gpus = rng.choice([1, 2, 4, 8, 16], n_jobs)
    tenants = [f"기관{i:03d}" for i in range(120)]
    who = rng.integers(0, len(tenants), n_jobs)
    jobs = [
        JobRecord(
            id=f"j{i}",
            tenant=tenants[who[i]],
            gpus=int(gpus[i]),
            submit_ms=int(submit[i]),
            duration_ms=int(run[i]),
            state="finished",
            first_start_ms=int(submit[i] + wait[i]),
            end_ms=int(submit[i] + wait[i] + run[i]),
            run_ms=int(run[i]),
            gpu_ms=int(run[i] * gpus[i]),
        )
        for i in range(n_jobs)
    ]
    t = np.sort(rng.integers(0, int(submit[-1]), n_samples))
    busy = rng.integers(0, 2049, n_samples)
    pending = rng.integers(0, 500, n_samples)
    samples = [PoolSample(int(t[i]), int(busy[i]), 2048, int(pending[i]), 100) for i in range(n_samples)]
    return RunResult(
        policy=policy,
        jobs=jobs,
        samples=samples,
        total_gpus=2048,
        entitlement={x: 1 / len(tenants) for x in tenants},
        sector_of={x: f"sector-{i % 6}" for i, x in enumerate(tenants)},
        cycle_ms=list(rng.lognormal(0, 1, n_samples)),
        wall_s=30.0,
    )


@pytest.mark.slow
def test_large_run_reports_in_seconds(tmp_path: Path) -> None:
    runs = [big_run("fifo", 100_000, 200_000, 1), big_run("backfill", 100_000, 200_000, 2)]
    start = time.perf_counter()
    write_report(tmp_path, runs, title="large", context={})
    elapsed = time.perf_counter() - start
    # About 1.5 s on a developer machine; the bound leaves room for slow CI runners.
    assert elapsed < 20, elapsed
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(PNG_TAG.findall(page)) == 6
    # Figures are resampled, so the page stays small whatever the run size.
    assert len(page) < 2_000_000
    assert pl.read_csv(tmp_path / "jobs.csv").height == 200_000


def test_hangul_font_found_even_when_matplotlib_cache_predates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib import font_manager

    hangul_font_family.cache_clear()
    try:
        if hangul_font_family() is None:
            pytest.skip("no font with Hangul glyphs installed (install fonts-nanum)")
        # A font cache written before the font package was installed lists no such family.
        stale = [f for f in font_manager.fontManager.ttflist if f.name not in style._HANGUL_FAMILIES]
        monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
        hangul_font_family.cache_clear()
        assert hangul_font_family() is not None
    finally:
        hangul_font_family.cache_clear()
