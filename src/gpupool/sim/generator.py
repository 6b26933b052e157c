"""Workload generators: synthetic job streams calibrated on a trace, and Gavel's job generator.

This module owns making workloads that no trace gives directly:

* ``generate_workload``: a Poisson job stream at a target offered load for a fleet of a
  given size, whose job shapes are resampled from a calibration workload (any
  ``read_trace`` output), optionally with gangs scaled up for a large fleet;
* ``generate_gavel``: the synthetic job generator of Gavel (Narayanan et al., OSDI'20), as
  its artifact implements it (``scheduler/utils.py::generate_job`` @ c4fa400);
* ``offered_load``: the load a workload offers a fleet, to check a generated one.

All randomness comes from a ``numpy.random.Generator`` seeded with ``seed`` (never the
global RNG), drawn in a fixed order, so a seed always gives the same workload. It reads no
files except Gavel's shipped throughput table (through ``gpupool.sim.trace``) and does not
schedule anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from gpupool.sim.trace import gavel_v100_throughputs
from gpupool.sim.workload import WorkloadJob

__all__ = ["GAVEL_SCALE_FACTORS", "generate_gavel", "generate_workload", "offered_load"]

_MS_PER_HOUR: Final = 3_600_000

#: Gavel's multi-GPU scale-factor distribution (a Philly fit): 1/2/4/8 GPUs w.p. .7/.1/.15/.05.
GAVEL_SCALE_FACTORS: Final[tuple[tuple[int, float], ...]] = ((1, 0.7), (2, 0.1), (4, 0.15), (8, 0.05))

_IntArray = npt.NDArray[np.int64]


def offered_load(jobs: Sequence[WorkloadJob], *, capacity_gpus: int, hours: float) -> float:
    """GPU-time submitted over GPU-time available: ``sum(gpus * duration) / (capacity * hours)``.

    Counts the whole run time of every job in ``jobs`` (those submitted within the horizon),
    the usual definition of offered load for a job stream.
    """
    if capacity_gpus < 1 or hours <= 0:
        raise ValueError("capacity_gpus must be >= 1 and hours > 0")
    gpu_ms = sum(job.gpus * job.duration_ms for job in jobs)
    return gpu_ms / (capacity_gpus * hours * _MS_PER_HOUR)


def _shape_gangs(gpus: _IntArray, *, size_scale: int, cap: int, gpus_per_node: int) -> _IntArray:
    """Scale gang sizes, cap them, and make multi-node gangs whole nodes.

    A gang wider than a node is rounded up to a multiple of ``gpus_per_node`` (whole nodes,
    as multi-node training is placed), or down when rounding up would pass the cap.
    """
    scaled = np.minimum(gpus * size_scale, cap)
    multi = scaled > gpus_per_node
    up = -(-scaled // gpus_per_node) * gpus_per_node
    down = (scaled // gpus_per_node) * gpus_per_node
    whole_nodes = np.where(up <= cap, up, down)
    return np.where(multi, whole_nodes, scaled).astype(np.int64)


def _tenant_weights(tenants: Sequence[tuple[str, float]]) -> tuple[list[str], npt.NDArray[np.float64]]:
    names = [name for name, _ in tenants]
    weights = np.asarray([weight for _, weight in tenants], dtype=np.float64)
    if not names or any(not name for name in names) or len(set(names)) != len(names):
        raise ValueError("tenants must be non-empty, with distinct non-empty names")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("tenant weights must be finite, >= 0, and not all 0")
    return names, weights / weights.sum()


def generate_workload(
    calibration: Sequence[WorkloadJob],
    *,
    capacity_gpus: int,
    load: float,
    hours: float,
    tenants: Sequence[tuple[str, float]] | None = None,
    seed: int,
    max_gpus: int | None = None,
    gpus_per_node: int = 8,
    size_scale: int = 1,
) -> list[WorkloadJob]:
    """A Poisson job stream offering ``load`` x ``capacity_gpus`` GPUs of work for ``hours``.

    Job shapes: each job is a calibration job drawn uniformly with replacement (the joint
    empirical distribution of ``(gpus, duration_ms)``, which also carries its
    ``workload_class``). Its gang is multiplied by ``size_scale`` (e.g. 8 for a national
    fleet with 64-1024-GPU training gangs from a Philly-like trace), capped at ``max_gpus``
    (and always at ``capacity_gpus``: a wider job could never run), and a gang wider than
    ``gpus_per_node`` becomes whole nodes with ``gpus_per_worker = gpus_per_node``.

    Arrivals: a Poisson process of rate ``load * capacity_gpus / E[gpus * duration]`` over
    ``[0, hours)``, where the expectation is over the shaped calibration jobs, so the expected
    offered load (see ``offered_load``) is exactly ``load``. Heavy-tailed traces make the
    realised load of a short horizon noisy (Philly's GPU-time has a coefficient of
    variation near 10); check it with ``offered_load``.

    Tenants: drawn independently with the ``(name, weight)`` of ``tenants``; with None, each
    job keeps its calibration job's tenant (the trace's own tenant frequencies and per-tenant
    job shapes).

    Jobs are sorted by submit time and numbered ``gen-0``, ``gen-1``, ...
    """
    if not calibration:
        raise ValueError("calibration workload is empty")
    if capacity_gpus < 1 or gpus_per_node < 1 or size_scale < 1:
        raise ValueError("capacity_gpus, gpus_per_node and size_scale must be >= 1")
    if not (math.isfinite(load) and load > 0) or not (math.isfinite(hours) and hours > 0):
        raise ValueError("load and hours must be finite and > 0")
    if max_gpus is not None and max_gpus < 1:
        raise ValueError("max_gpus must be >= 1")
    cap = capacity_gpus if max_gpus is None else min(max_gpus, capacity_gpus)

    base_gpus = np.fromiter((job.gpus for job in calibration), dtype=np.int64, count=len(calibration))
    durations = np.fromiter((job.duration_ms for job in calibration), dtype=np.int64, count=len(calibration))
    gpus = _shape_gangs(base_gpus, size_scale=size_scale, cap=cap, gpus_per_node=gpus_per_node)
    mean_gpu_ms = float(np.mean(gpus.astype(np.float64) * durations))
    if mean_gpu_ms <= 0:
        raise ValueError("calibration jobs have no GPU-time (all durations are 0)")
    horizon_ms = hours * _MS_PER_HOUR
    jobs_per_ms = load * capacity_gpus / mean_gpu_ms

    rng = np.random.default_rng(seed)
    # Draw order is part of the seed's meaning: count, times, shapes, tenants.
    count = int(rng.poisson(jobs_per_ms * horizon_ms))
    # Given the count, Poisson arrival times are i.i.d. uniform on the horizon.
    submit = np.floor(np.sort(rng.uniform(0.0, horizon_ms, count))).astype(np.int64).tolist()
    picks = rng.integers(0, len(calibration), count)
    if tenants is not None:
        names, weights = _tenant_weights(tenants)
        tenant_of = [names[k] for k in rng.choice(len(names), size=count, p=weights).tolist()]
    else:
        tenant_of = [calibration[k].tenant for k in picks.tolist()]

    job_gpus = gpus[picks].tolist()
    job_durations = durations[picks].tolist()
    return [
        WorkloadJob(
            id=f"gen-{i}",
            submit_ms=submit[i],
            duration_ms=job_durations[i],
            gpus=job_gpus[i],
            tenant=tenant_of[i],
            gpus_per_worker=gpus_per_node if job_gpus[i] > gpus_per_node else 0,
            workload_class=calibration[k].workload_class,
        )
        for i, k in enumerate(picks.tolist())
    ]


def _gavel_job_types() -> tuple[list[str], list[str]]:
    """Gavel's 26 job types and the 19 that can run distributed (scale factor > 1).

    Taken from the throughput table, whose keys are exactly Gavel's job table: a type is
    distributed-capable iff it has a throughput at a scale factor above 1.
    """
    table = gavel_v100_throughputs()
    all_types = sorted({job_type for job_type, _ in table})
    distributed = sorted({job_type for job_type, sf in table if sf > 1})
    return all_types, distributed


def generate_gavel(
    *,
    num_jobs: int,
    seed: int,
    jobs_per_hour: float | None = None,
    multi_gpu: bool = False,
    tenant: str = "gavel",
) -> list[WorkloadJob]:
    """Gavel's synthetic jobs: ``num_jobs`` jobs, Poisson at ``jobs_per_hour`` or all at t=0.

    Per job, as Gavel's ``generate_job`` (default path) draws them:

    * scale factor (GPUs): 1 unless ``multi_gpu``; then 1/2/4/8 w.p. .7/.1/.15/.05
      (``GAVEL_SCALE_FACTORS``);
    * job type: uniform over the 26 types when the scale factor is 1, else uniform over the
      19 distributed-capable types (Gavel draws the scale factor first and re-draws the type
      until it can run distributed, which is the same distribution);
    * duration on a V100 at that scale factor: ``60 * 10**U(1.5, 3)`` s w.p. 0.8, else
      ``60 * 10**U(3, 4)`` s (Gavel sets ``total_steps = duration x V100 throughput``, so the
      V100 duration is the drawn one);
    * arrivals: exponential gaps of mean ``3600 / jobs_per_hour`` s, the first job arriving
      after one gap; ``jobs_per_hour=None`` is Gavel's static trace (all jobs at t=0).

    The distributions are Gavel's; the random stream is NumPy's, so individual jobs differ
    from Gavel's own traces for the same seed. Job ``i`` is ``gavel-<i>``, matching Gavel's
    job ids (its JCT metric uses jobs 4000-5000).
    """
    if num_jobs < 0:
        raise ValueError("num_jobs must be >= 0")
    if jobs_per_hour is not None and not (math.isfinite(jobs_per_hour) and jobs_per_hour > 0):
        raise ValueError("jobs_per_hour must be > 0 (or None for a static trace)")
    if not tenant:
        raise ValueError("tenant must be non-empty")
    all_types, distributed = _gavel_job_types()
    rng = np.random.default_rng(seed)
    # Draw order is part of the seed's meaning: scale factors, types, durations, arrivals.
    if multi_gpu:
        factors = np.asarray([sf for sf, _ in GAVEL_SCALE_FACTORS], dtype=np.int64)
        probabilities = np.asarray([p for _, p in GAVEL_SCALE_FACTORS], dtype=np.float64)
        scale = factors[rng.choice(len(factors), size=num_jobs, p=probabilities)]
    else:
        scale = np.ones(num_jobs, dtype=np.int64)
    any_type = rng.integers(0, len(all_types), num_jobs)
    distributed_type = rng.integers(0, len(distributed), num_jobs)
    long_job = rng.random(num_jobs) >= 0.8
    short_exponent = rng.uniform(1.5, 3.0, num_jobs)
    long_exponent = rng.uniform(3.0, 4.0, num_jobs)
    duration_s = 60.0 * np.power(10.0, np.where(long_job, long_exponent, short_exponent))
    if jobs_per_hour is None:
        arrival_ms = np.zeros(num_jobs, dtype=np.int64)
    else:
        gaps_s = rng.exponential(3600.0 / jobs_per_hour, num_jobs)
        arrival_ms = np.rint(np.cumsum(gaps_s) * 1000.0).astype(np.int64)

    job_types = [
        all_types[a] if sf == 1 else distributed[d]
        for sf, a, d in zip(scale.tolist(), any_type.tolist(), distributed_type.tolist(), strict=True)
    ]
    durations_ms = np.rint(duration_s * 1000.0).astype(np.int64).tolist()
    return [
        WorkloadJob(
            id=f"gavel-{i}",
            submit_ms=submit,
            duration_ms=durations_ms[i],
            gpus=gpus,
            tenant=tenant,
            workload_class=job_types[i],
        )
        for i, (submit, gpus) in enumerate(zip(arrival_ms.tolist(), scale.tolist(), strict=True))
    ]
