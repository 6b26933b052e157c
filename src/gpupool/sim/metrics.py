"""Metrics of one simulation run: what a policy achieved, as plain JSON-ready numbers.

This module owns the arithmetic over a :class:`~gpupool.sim.records.RunResult`:
``compute_metrics`` (the headline numbers, per-tenant and per-sector rollups),
``jain_index``, and the time-weighted resampling of the pool's step-function samples
(``utilization_series``, ``queue_series``) that the report plots. It draws nothing and
writes no files (see ``gpupool.sim.report``).

Conventions:

* Times in the result are integer milliseconds; metrics report seconds (``*_s``) and
  GPU-hours (``*gpu_hours``).
* Percentiles use ``numpy.percentile(..., method="linear")``: linear interpolation between
  the two nearest ranks (the NumPy default, "type 7"), so the p50 of two values is their mean.
* A metric that is undefined for a run (no job finished, no cycle measured, zero wall
  time) is ``None`` rather than NaN, so ``metrics.json`` stays strict JSON.
* ``PoolSample`` rows describe a step function: a sample's values hold from its ``t_ms``
  until the next sample; before the first sample the pool counts as idle and empty.
  Several samples at the same instant: the last one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from gpupool.sim.records import RunResult

__all__ = [
    "JobArrays",
    "Series",
    "compute_metrics",
    "finish_time_fairness",
    "horizon_ms",
    "jain_index",
    "queue_series",
    "utilization",
    "utilization_series",
]

MS_PER_S = 1000.0
MS_PER_HOUR = 3_600_000.0
PERCENTILE_METHOD: Final = "linear"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class JobArrays:
    """The job records of a run as columns: one array element per job, in record order.

    Built once per run so that every metric is a vectorised pass (a run may hold 100k+
    jobs). ``tenant_idx`` indexes into ``tenants`` (distinct names, first-appearance order).
    """

    tenants: list[str]
    tenant_idx: npt.NDArray[np.intp]
    gpus: IntArray
    submit_ms: IntArray
    first_start_ms: IntArray
    end_ms: IntArray
    gpu_ms: IntArray
    preemptions: IntArray
    lost_gpu_ms: IntArray
    failures: IntArray
    failure_lost_gpu_ms: IntArray
    effective_gpu_ms: FloatArray
    absorbed_gpu_ms: IntArray
    duration_ms: IntArray
    state: npt.NDArray[np.str_]
    queue_ms: IntArray

    @classmethod
    def from_result(cls, result: RunResult) -> JobArrays:
        """Columns of ``result.jobs``."""
        jobs = result.jobs
        index: dict[str, int] = {}
        # setdefault keeps first-appearance order, which makes tenant lists deterministic.
        tenant_idx = np.fromiter(
            (index.setdefault(j.tenant, len(index)) for j in jobs), dtype=np.intp, count=len(jobs)
        )

        def col(name: str) -> IntArray:
            return np.fromiter((getattr(j, name) for j in jobs), dtype=np.int64, count=len(jobs))

        return cls(
            tenants=list(index),
            tenant_idx=tenant_idx,
            gpus=col("gpus"),
            submit_ms=col("submit_ms"),
            first_start_ms=col("first_start_ms"),
            end_ms=col("end_ms"),
            gpu_ms=col("gpu_ms"),
            preemptions=col("preemptions"),
            lost_gpu_ms=col("lost_gpu_ms"),
            failures=col("failures"),
            failure_lost_gpu_ms=col("failure_lost_gpu_ms"),
            effective_gpu_ms=np.fromiter(
                (j.effective_gpu_ms for j in jobs), dtype=np.float64, count=len(jobs)
            ),
            absorbed_gpu_ms=col("absorbed_gpu_ms"),
            duration_ms=col("duration_ms"),
            state=np.array([j.state for j in jobs], dtype=np.str_),
            queue_ms=col("queue_ms"),
        )

    def __len__(self) -> int:
        return len(self.state)

    def state_is(self, state: str) -> BoolArray:
        """Mask of the jobs in ``state``."""
        return np.asarray(self.state == state, dtype=np.bool_)

    @property
    def finished(self) -> BoolArray:
        """Mask of the jobs that finished (the population of JCT statistics)."""
        return self.state_is("finished")

    @property
    def started(self) -> BoolArray:
        """Mask of the jobs that ever started (the population of queueing-delay statistics)."""
        return self.first_start_ms >= 0

    @property
    def jct_s(self) -> FloatArray:
        """Completion times (end minus submit) of the finished jobs, in seconds."""
        fin = self.finished & (self.end_ms >= 0)
        return (self.end_ms[fin] - self.submit_ms[fin]) / MS_PER_S

    @property
    def queue_s(self) -> FloatArray:
        """Queueing delays of the started jobs, in seconds (``JobRecord.queue_ms``: all time
        spent waiting, including after preemptions)."""
        return self.queue_ms[self.started] / MS_PER_S


class Series(NamedTuple):
    """A resampled time series: bucket start times (s from the simulation's start) and the
    time-weighted mean of the quantity over each bucket."""

    t_s: FloatArray
    values: FloatArray


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, slots=True)
class _Samples:
    t_ms: IntArray
    busy_fraction: FloatArray
    pending: FloatArray


def _samples(result: RunResult) -> _Samples:
    s = result.samples
    n = len(s)
    t = np.fromiter((x.t_ms for x in s), dtype=np.int64, count=n)
    busy = np.fromiter((x.busy_gpus for x in s), dtype=np.float64, count=n)
    total = np.fromiter((x.total_gpus for x in s), dtype=np.float64, count=n)
    pending = np.fromiter((x.pending_jobs for x in s), dtype=np.float64, count=n)
    # The simulator appends in time order; a stable sort costs little and keeps "last sample
    # at an instant wins" true even if it ever does not.
    order = np.argsort(t, kind="stable")
    t, busy, total, pending = t[order], busy[order], total[order], pending[order]
    # A pool with no accelerators up (total 0) is not busy: 0, not a division by zero.
    frac = np.divide(busy, total, out=np.zeros_like(busy), where=total > 0)
    return _Samples(t_ms=t, busy_fraction=frac, pending=pending)


def _step_mean(t_ms: IntArray, values: FloatArray, start_ms: float, end_ms: float) -> float:
    """Time-weighted mean over [start, end] of the step function (0 before the first sample)."""
    if end_ms <= start_ms or len(t_ms) == 0:
        return 0.0
    seg_start = t_ms.astype(np.float64)
    seg_end = np.append(seg_start[1:], np.inf)
    overlap = np.minimum(seg_end, end_ms) - np.maximum(seg_start, start_ms)
    return float(np.sum(values * np.clip(overlap, 0.0, None)) / (end_ms - start_ms))


def _step_bucket_means(t_ms: IntArray, values: FloatArray, edges_ms: FloatArray) -> FloatArray:
    """Time-weighted mean of the step function over each [edges[k], edges[k+1]].

    Evaluates the step function's running integral at the edges (piecewise linear between
    samples), so the cost is O(samples + buckets log samples) whatever the bucket size.
    """
    if len(t_ms) == 0:
        return np.zeros(len(edges_ms) - 1)
    t = t_ms.astype(np.float64)
    area_at_sample = np.concatenate(([0.0], np.cumsum(values[:-1] * np.diff(t))))
    i = np.searchsorted(t, edges_ms, side="right") - 1
    ic = np.clip(i, 0, None)
    area = np.where(i >= 0, area_at_sample[ic] + values[ic] * (edges_ms - t[ic]), 0.0)
    widths = np.diff(edges_ms)
    return np.diff(area) / widths


def horizon_ms(result: RunResult) -> int:
    """The end of the observed run: simulation end, last sample, or last job end."""
    candidates = [result.sim_end_ms]
    if result.samples:
        candidates.append(max(s.t_ms for s in result.samples))
    candidates.extend(j.end_ms for j in result.jobs)
    return max(candidates)


def _series(
    result: RunResult, which: str, bucket_s: float, start_ms: int | None, end_ms: int | None
) -> Series:
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be positive, got {bucket_s}")
    s = _samples(result)
    lo = 0.0 if start_ms is None else float(start_ms)
    hi = float(horizon_ms(result) if end_ms is None else end_ms)
    if hi <= lo:
        return Series(np.zeros(0), np.zeros(0))
    step = bucket_s * MS_PER_S
    # The last bucket is cut at the end rather than stretched past it, so its mean covers
    # only observed time.
    starts = np.arange(lo, hi, step)
    # Float steps can leave a start a rounding error short of the end: a sliver of a bucket
    # whose mean is noise. Such a sliver is dropped (the first bucket always stays).
    starts = starts[(starts < hi - step * 1e-9) | (np.arange(starts.size) == 0)]
    edges = np.append(starts, hi)
    values = s.busy_fraction if which == "utilization" else s.pending
    return Series(edges[:-1] / MS_PER_S, _step_bucket_means(s.t_ms, values, edges))


def utilization_series(
    result: RunResult, bucket_s: float, *, start_ms: int | None = None, end_ms: int | None = None
) -> Series:
    """Busy fraction of the pool (busy/total accelerators), time-weighted per bucket.

    Buckets of ``bucket_s`` seconds from ``start_ms`` (default 0) to ``end_ms`` (default:
    the latest of simulation end, last sample and last job end); the last one may be short.
    """
    return _series(result, "utilization", bucket_s, start_ms, end_ms)


def queue_series(
    result: RunResult, bucket_s: float, *, start_ms: int | None = None, end_ms: int | None = None
) -> Series:
    """Pending jobs (queue length), time-weighted per bucket; buckets as in ``utilization_series``."""
    return _series(result, "queue", bucket_s, start_ms, end_ms)


def utilization(result: RunResult) -> float:
    """Time-weighted mean busy fraction from the first submission to the last job end.

    If no job ended, the window runs to the end of the run instead. 0.0 for an empty window.
    """
    return _utilization(result, JobArrays.from_result(result), _samples(result))


def _utilization(result: RunResult, a: JobArrays, s: _Samples) -> float:
    if len(a) == 0:
        return 0.0
    start = float(a.submit_ms.min())
    ended = a.end_ms >= 0
    end = float(a.end_ms[ended].max()) if ended.any() else float(horizon_ms(result))
    u = _step_mean(s.t_ms, s.busy_fraction, start, end)
    # Only float rounding can push a mean of values in [0, 1] outside [0, 1].
    return min(max(u, 0.0), 1.0)


def _windows(result: RunResult, a: JobArrays, s: _Samples) -> dict[str, float | None]:
    """Utilisation over the arrival window (first to last submission) and over the drain
    after it (last submission to last job end), and how long each lasted.

    ``utilization`` averages over both: a 24-hour workload whose longest jobs run for days
    after the last arrival reads as a low utilisation although the fleet was busy while work
    arrived. The two windows apart say which is which.
    """
    if len(a) == 0:
        return dict.fromkeys(("utilization_arrivals", "utilization_drain", "arrival_hours", "drain_hours"))
    first, last = float(a.submit_ms.min()), float(a.submit_ms.max())
    ended = a.end_ms >= 0
    end = float(a.end_ms[ended].max()) if ended.any() else float(horizon_ms(result))
    end = max(end, last)

    def mean(lo: float, hi: float) -> float | None:
        return min(max(_step_mean(s.t_ms, s.busy_fraction, lo, hi), 0.0), 1.0) if hi > lo else None

    return {
        "utilization_arrivals": mean(first, last),
        "utilization_drain": mean(last, end),
        "arrival_hours": (last - first) / MS_PER_HOUR,
        "drain_hours": (end - last) / MS_PER_HOUR,
    }


# --------------------------------------------------------------------------- fairness


def jain_index(x: Sequence[float] | FloatArray) -> float | None:
    """Jain's fairness index (sum x)^2 / (n sum x^2) of non-negative allocations.

    1 when all are equal, 1/n when one gets everything. ``None`` for no allocations;
    1.0 when all are zero (everyone was treated alike, if badly).
    """
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return None
    if np.any(a < 0):
        raise ValueError("Jain's index needs non-negative allocations")
    sq = float(np.sum(a * a))
    if sq == 0.0:
        return 1.0
    j = float(np.sum(a)) ** 2 / (a.size * sq)
    # Rounding can land a hair outside the mathematical range [1/n, 1].
    return min(max(j, 1.0 / a.size), 1.0)


# --------------------------------------------------------------------------- finish-time fairness


def finish_time_fairness(result: RunResult, jobs: JobArrays | None = None) -> FloatArray:
    """Themis' finish-time fairness rho of every finished job (in record order of those jobs).

    rho = JCT in the shared pool / JCT on an isolated 1/N share of it (Mahajan et al.,
    NSDI'20), N = the mean number of jobs in the system (pending + running, from the pool
    samples) over the job's lifetime. On C accelerators a share of C/N holds a job of g
    accelerators whole when C/N >= g, and time-slices it by (C/N)/g otherwise, so the
    isolated JCT is ``duration x max(1, N g / C)`` with the job's duration as the workload
    states it (on the reference model). rho > 1: the job did worse than its fair slice.
    Jobs without a duration are left out.
    """
    a = JobArrays.from_result(result) if jobs is None else jobs
    fin = a.finished & (a.end_ms >= 0) & (a.duration_ms > 0)
    if not fin.any() or result.total_gpus <= 0:
        return np.zeros(0)
    smp = result.samples
    t = np.fromiter((x.t_ms for x in smp), dtype=np.float64, count=len(smp))
    n = np.fromiter((x.pending_jobs + x.running_jobs for x in smp), dtype=np.float64, count=len(smp))
    order = np.argsort(t, kind="stable")
    t, n = t[order], n[order]
    sub = a.submit_ms[fin].astype(np.float64)
    end = a.end_ms[fin].astype(np.float64)
    if t.size:
        area_at = np.concatenate(([0.0], np.cumsum(n[:-1] * np.diff(t))))

        def area(x: FloatArray) -> FloatArray:
            i = np.searchsorted(t, x, side="right") - 1
            ic = np.clip(i, 0, None)
            return np.where(i >= 0, area_at[ic] + n[ic] * (x - t[ic]), 0.0)

        span = end - sub
        at_sub = n[np.clip(np.searchsorted(t, sub, side="right") - 1, 0, None)]
        mean_n = np.where(span > 0, (area(end) - area(sub)) / np.maximum(span, 1.0), at_sub)
    else:
        mean_n = np.ones(len(sub))
    mean_n = np.maximum(mean_n, 1.0)  # the job itself was in the system
    isolated = a.duration_ms[fin] * np.maximum(1.0, mean_n * a.gpus[fin] / result.total_gpus)
    return np.asarray((end - sub) / isolated, dtype=np.float64)


# --------------------------------------------------------------------------- metrics


def _f(x: float | np.floating[Any]) -> float:
    return float(x)


def _mean(a: FloatArray) -> float | None:
    return _f(np.mean(a)) if a.size else None


def _pct(a: FloatArray, q: float) -> float | None:
    return _f(np.percentile(a, q, method=PERCENTILE_METHOD)) if a.size else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


#: estimates are judged on jobs that waited longer than this (a short wait's relative
#: error says little: 30 s off a 1-minute wait is 50 %)
ESTIMATE_MIN_WAIT_MS = 600_000


def estimate_accuracy(result: RunResult) -> dict[str, Any]:
    """How far the estimated start at submission was from the first start, relative to the wait.

    Over jobs that started after waiting more than 10 minutes and had an estimate
    (``JobRecord.estimated_start_ms``, recorded with ``SimConfig.estimates``): the median and
    90th percentile of ``|estimate - start| / (start - submit)``, the share estimated early
    (before the start that happened), and how many jobs were judged and how many had no
    estimate. None where the run recorded none.
    """
    if all(j.estimated_start_ms < 0 for j in result.jobs):
        return dict.fromkeys(
            ("estimate_jobs_judged", "estimate_jobs_without", "estimate_error_median", "estimate_error_p90",
             "estimate_early_share"),
        )  # fmt: skip
    errs: list[float] = []
    early = missing = 0
    for j in result.jobs:
        wait = j.first_start_ms - j.submit_ms
        if j.first_start_ms < 0 or wait <= ESTIMATE_MIN_WAIT_MS:
            continue
        if j.estimated_start_ms < 0:
            missing += 1
            continue
        errs.append(abs(j.estimated_start_ms - j.first_start_ms) / wait)
        early += j.estimated_start_ms < j.first_start_ms
    e = np.asarray(errs, dtype=np.float64)
    return {
        "estimate_jobs_judged": len(errs),
        "estimate_jobs_without": missing,
        "estimate_error_median": _pct(e, 50),
        "estimate_error_p90": _pct(e, 90),
        "estimate_early_share": _f(early / len(errs)) if errs else None,
    }


def _skipped_rows(result: RunResult) -> int:
    got = result.meta.get("skipped_rows", 0)
    return got if isinstance(got, int) else 0


def _meta_int(result: RunResult, key: str) -> int:
    v = result.meta.get(key, 0)
    return int(v) if isinstance(v, int | float) else 0


def compute_metrics(result: RunResult, *, jobs: JobArrays | None = None) -> dict[str, Any]:
    """The metrics of one run as a JSON-serialisable dict (plain ints, floats, str, None).

    Headline keys: ``policy``, job counts by state (``jobs``, ``finished``,
    ``unschedulable``, ``unfinished``, ``cancelled``; ``skipped_rows``: trace rows left out
    as bad with ``--skip-bad-rows``, never submitted), JCT over finished jobs
    (``avg/p50/p95/p99_jct_s``), queueing delay over started jobs (``avg/p50/p95/p99_queue_s``),
    ``makespan_s`` (last end minus first submit), ``utilization`` (see ``utilization``),
    ``utilization_arrivals``/``utilization_drain`` and ``arrival_hours``/``drain_hours``
    (the same over the arrival window and over the drain after the last arrival),
    ``jain_fairness``, ``preemptions``, ``gpu_hours``, ``lost_gpu_hours``, failures
    (``node_failures`` and ``node_drains``: node events of the run; ``failure_interruptions``:
    job attempts a node failure ended; ``failure_lost_gpu_hours``: the work they lost since
    their last checkpoint plus restart overheads, part of ``lost_gpu_hours``;
    ``down_gpu_hours``/``drained_gpu_hours``: accelerator-hours nodes were down/drained),
    ``effective_gpu_hours`` (accelerator-hours scaled by the job's throughput where it ran,
    in reference-model hours), ``npu_absorbed_gpu_hours`` (accelerator-hours that jobs able
    to run on CUDA ran on another stack's accelerators), ``ftf_rho_mean``/``ftf_rho_max``
    (see ``finish_time_fairness``), scheduler cost
    (``cycles``, ``cycle_ms_p50/p99/max``, ``wall_s``, ``jobs_per_wall_s``,
    ``sim_hours_per_wall_hour``), ``total_gpus``.

    ``tenants``: one dict per tenant that submitted work or has an entitlement, sorted by
    GPU-hours (descending): ``tenant``, ``sector``, ``jobs``, ``finished``, ``gpu_hours``,
    ``effective_gpu_hours``,
    ``share`` (of all GPU-hours of the run), ``entitled_share``, ``avg_jct_s``,
    ``avg_queue_s``. ``sectors``: the same rolled up per sector (averages over the sector's
    jobs, not averages of tenant averages), with ``tenants`` (count).

    Jain's index is over x_i = GPU-hours of tenant i / its entitled share, for tenants with
    an entitlement > 0 that submitted at least one job; when the run has no positive
    entitlement at all, every submitting tenant gets an equal share (and ``entitled_share``
    reports that equal share).

    ``jobs``: the run's ``JobArrays`` if the caller already built them (it saves a pass over
    the records, which dominates the cost for 100k+ jobs).
    """
    a = JobArrays.from_result(result) if jobs is None else jobs
    samples = _samples(result)
    n_jobs = len(a)
    finished = a.finished
    jct = a.jct_s
    queue = a.queue_s

    ended = a.end_ms >= 0
    makespan_s = (
        _f((a.end_ms[ended].max() - a.submit_ms.min()) / MS_PER_S) if n_jobs and ended.any() else None
    )

    # ---- per tenant (bincount over tenant index: one pass per column)
    n_t = len(a.tenants)
    idx = a.tenant_idx
    started = a.started
    t_jobs = np.bincount(idx, minlength=n_t)
    t_fin = np.bincount(idx[finished], minlength=n_t)
    t_gpu_ms = np.bincount(idx, weights=a.gpu_ms, minlength=n_t)
    t_eff_ms = np.bincount(idx, weights=a.effective_gpu_ms, minlength=n_t)
    fin_ended = finished & ended
    t_jct_n = np.bincount(idx[fin_ended], minlength=n_t)
    t_jct_sum = np.bincount(idx[fin_ended], weights=jct, minlength=n_t)
    t_q_n = np.bincount(idx[started], minlength=n_t)
    t_q_sum = np.bincount(idx[started], weights=queue, minlength=n_t)

    names = list(a.tenants)
    # Entitled tenants that submitted nothing are listed too: "entitled but idle" is part of
    # the fairness picture even though Jain's index leaves them out.
    known = set(names)
    extra = [t for t, e in result.entitlement.items() if e > 0 and t not in known]
    names += sorted(extra)
    pad = len(extra)
    t_jobs = np.append(t_jobs, np.zeros(pad, dtype=np.int64))
    t_fin = np.append(t_fin, np.zeros(pad, dtype=np.int64))
    t_gpu_ms = np.append(t_gpu_ms, np.zeros(pad))
    t_eff_ms = np.append(t_eff_ms, np.zeros(pad))
    t_jct_n = np.append(t_jct_n, np.zeros(pad, dtype=np.int64))
    t_jct_sum = np.append(t_jct_sum, np.zeros(pad))
    t_q_n = np.append(t_q_n, np.zeros(pad, dtype=np.int64))
    t_q_sum = np.append(t_q_sum, np.zeros(pad))

    has_entitlement = any(e > 0 for e in result.entitlement.values())
    submitting = t_jobs > 0
    n_submitting = int(submitting.sum())
    if has_entitlement:
        entitled = np.array([max(result.entitlement.get(t, 0.0), 0.0) for t in names])
    else:
        entitled = np.where(submitting, 1.0 / max(n_submitting, 1), 0.0)

    total_gpu_ms = float(t_gpu_ms.sum())
    t_gpu_h = t_gpu_ms / MS_PER_HOUR
    fair_mask = submitting & (entitled > 0)
    jain = jain_index(t_gpu_h[fair_mask] / entitled[fair_mask])

    sectors = [result.sector_of.get(t, "") for t in names]
    tenant_rows: list[dict[str, Any]] = [
        {
            "tenant": names[i],
            "sector": sectors[i],
            "jobs": int(t_jobs[i]),
            "finished": int(t_fin[i]),
            "gpu_hours": _f(t_gpu_h[i]),
            "effective_gpu_hours": _f(t_eff_ms[i] / MS_PER_HOUR),
            "share": _f(t_gpu_ms[i] / total_gpu_ms) if total_gpu_ms > 0 else 0.0,
            "entitled_share": _f(entitled[i]),
            "avg_jct_s": _f(t_jct_sum[i] / t_jct_n[i]) if t_jct_n[i] else None,
            "avg_queue_s": _f(t_q_sum[i] / t_q_n[i]) if t_q_n[i] else None,
        }
        for i in range(len(names))
    ]
    tenant_rows.sort(key=lambda r: (-r["gpu_hours"], r["tenant"]))

    # ---- per sector: sum the tenant sums, then divide (job-weighted averages)
    sector_names = sorted(set(sectors))
    s_of = np.array([sector_names.index(s) for s in sectors], dtype=np.intp)
    n_s = len(sector_names)

    def by_sector(v: npt.NDArray[Any]) -> FloatArray:
        return np.asarray(np.bincount(s_of, weights=v.astype(np.float64), minlength=n_s), dtype=np.float64)

    s_tenants = np.bincount(s_of, minlength=n_s)
    s_jobs, s_fin, s_gpu_ms = by_sector(t_jobs), by_sector(t_fin), by_sector(t_gpu_ms)
    s_eff_ms = by_sector(t_eff_ms)
    s_ent = by_sector(entitled)
    s_jct_n, s_jct_sum = by_sector(t_jct_n), by_sector(t_jct_sum)
    s_q_n, s_q_sum = by_sector(t_q_n), by_sector(t_q_sum)
    sector_rows: list[dict[str, Any]] = [
        {
            "sector": sector_names[k],
            "tenants": int(s_tenants[k]),
            "jobs": int(s_jobs[k]),
            "finished": int(s_fin[k]),
            "gpu_hours": _f(s_gpu_ms[k] / MS_PER_HOUR),
            "effective_gpu_hours": _f(s_eff_ms[k] / MS_PER_HOUR),
            "share": _f(s_gpu_ms[k] / total_gpu_ms) if total_gpu_ms > 0 else 0.0,
            "entitled_share": _f(s_ent[k]),
            "avg_jct_s": _f(s_jct_sum[k] / s_jct_n[k]) if s_jct_n[k] else None,
            "avg_queue_s": _f(s_q_sum[k] / s_q_n[k]) if s_q_n[k] else None,
        }
        for k in range(n_s)
    ]
    sector_rows.sort(key=lambda r: (-r["gpu_hours"], r["sector"]))

    cycles = np.asarray(result.cycle_ms, dtype=np.float64)
    rho = finish_time_fairness(result, a)
    last_end = int(a.end_ms.max()) if len(a) else 0
    last_sample = int(samples.t_ms[-1]) if samples.t_ms.size else 0
    sim_s = max(result.sim_end_ms, last_end, last_sample) / MS_PER_S

    return {
        "policy": result.policy,
        "total_gpus": int(result.total_gpus),
        "jobs": n_jobs,
        "finished": int(finished.sum()),
        "unschedulable": int(a.state_is("unschedulable").sum()),
        "unfinished": int(a.state_is("unfinished").sum()),
        "cancelled": int(a.state_is("cancelled").sum()),
        "skipped_rows": _skipped_rows(result),
        "avg_jct_s": _mean(jct),
        "p50_jct_s": _pct(jct, 50),
        "p95_jct_s": _pct(jct, 95),
        "p99_jct_s": _pct(jct, 99),
        "avg_queue_s": _mean(queue),
        "p50_queue_s": _pct(queue, 50),
        "p95_queue_s": _pct(queue, 95),
        "p99_queue_s": _pct(queue, 99),
        "makespan_s": makespan_s,
        "utilization": _utilization(result, a, samples),
        **_windows(result, a, samples),
        "jain_fairness": jain,
        "preemptions": int(a.preemptions.sum()),
        "gpu_hours": total_gpu_ms / MS_PER_HOUR,
        "lost_gpu_hours": _f(a.lost_gpu_ms.sum() / MS_PER_HOUR),
        "node_failures": _meta_int(result, "node_failures"),
        "node_drains": _meta_int(result, "node_drains"),
        "failure_interruptions": int(a.failures.sum()),
        "failure_lost_gpu_hours": _f(a.failure_lost_gpu_ms.sum() / MS_PER_HOUR),
        "down_gpu_hours": _meta_int(result, "down_gpu_ms") / MS_PER_HOUR,
        "drained_gpu_hours": _meta_int(result, "drained_gpu_ms") / MS_PER_HOUR,
        "effective_gpu_hours": _f(a.effective_gpu_ms.sum() / MS_PER_HOUR),
        "npu_absorbed_gpu_hours": _f(a.absorbed_gpu_ms.sum() / MS_PER_HOUR),
        "ftf_rho_mean": _mean(rho),
        "ftf_rho_max": _f(rho.max()) if rho.size else None,
        "cycles": int(cycles.size),
        "cycle_ms_p50": _pct(cycles, 50),
        "cycle_ms_p99": _pct(cycles, 99),
        "cycle_ms_max": _f(cycles.max()) if cycles.size else None,
        **estimate_accuracy(result),
        "wall_s": float(result.wall_s),
        "jobs_per_wall_s": _ratio(n_jobs, result.wall_s),
        "sim_hours_per_wall_hour": _ratio(sim_s, result.wall_s),
        "tenants": tenant_rows,
        "sectors": sector_rows,
    }
