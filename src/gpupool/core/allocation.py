"""Allocation matrices: what fraction of time each job should get on each accelerator model.

This module owns the optimisation problems of Gavel (Narayanan et al., OSDI'20, section 4):
each policy maps a throughput matrix ``thr[j][t]`` (job j on model t, relative to a
reference model) to an allocation ``X[j][t]``, the fraction of wall time job j should run on
model t, under the same constraints as Gavel's ``get_base_constraints``:

    X >= 0,   sum_t X[j][t] <= 1,   sum_j gpus[j] * X[j][t] <= capacity[t],

with ``X[j][t] = 0`` where job j may not run on t (its stack, memory or cluster rules it out).

| function             | objective                                                        |
|----------------------|------------------------------------------------------------------|
| ``isolated``         | each job 1/n of every model (Gavel's ``IsolatedPolicy``)           |
| ``equal_share``      | agnostic max-min of GPU-time, spread over models by capacity     |
| ``max_min_fairness`` | max min_j of thr.X / thr.X_isolated (normalised LAS), an LP        |
| ``fifo``             | in arrival order, each job on its fastest model with room          |
| ``finish_time_fairness`` | min max_j of rho_j = finish time under X / under X_isolated    |
| ``min_makespan``     | finish every job as early as possible: max s, thr.X >= remaining*s |

The heterogeneity-*agnostic* forms are the same functions given ``thr`` = 1 wherever a job
may run, as Gavel builds its baselines. LPs are solved with HiGHS through
``scipy.optimize.linprog``. Everything here is pure arithmetic on arrays: no state, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Bound = tuple[float, float | None]

#: relative tolerance of the finish-time-fairness bisection (rho within 1 %)
FTF_TOLERANCE = 0.01
#: at most this many feasibility LPs per finish-time-fairness allocation
FTF_MAX_STEPS = 14


def isolated(gpus: FloatArray, capacity: FloatArray, allowed: BoolArray) -> FloatArray:
    """Gavel's isolated allocation: the cluster split into n equal slices, one per job.

    Job j gets ``capacity[t] / n / gpus[j]`` of each model it may use, rows scaled by the
    largest row sum so that no job exceeds all of its time (so with few jobs each runs all
    the time, spread over the models in proportion to their capacity).
    """
    n = len(gpus)
    x = np.where(allowed, capacity[None, :] / n / gpus[:, None], 0.0)
    peak = float(x.sum(axis=1).max()) if n else 0.0
    return np.asarray(x / peak if peak > 0 else x, dtype=np.float64)


def equal_share(gpus: FloatArray, capacity: FloatArray, allowed: BoolArray) -> FloatArray:
    """Heterogeneity-agnostic max-min fairness of GPU-time, in closed form.

    Every job gets the same GPU-time rate z (water-filled: a job never gets more than all of
    its time), spread over the models it may use in proportion to their capacity. This is
    the interior optimum that Gavel's agnostic ``MaxMinFairnessPolicy`` (all throughputs 1)
    returns from an interior-point solver; an LP vertex would instead pin each job to one
    arbitrary model, which no agnostic scheduler intends.
    """
    n = len(gpus)
    if n == 0:
        return np.zeros((0, len(capacity)))
    reach = np.where(allowed, capacity[None, :], 0.0).sum(axis=1)
    total = float(capacity.sum())
    # Water-filling over z: time_j = min(1, z / gpus_j), sum_j gpus_j * time_j = total.
    order = np.argsort(gpus, kind="stable")
    g = gpus[order]
    time = np.ones(n)
    left, rest = total, n
    for i in range(n):
        z = left / rest
        if z >= g[i]:
            left -= g[i]  # this job can use all of its time; the others share the rest
            rest -= 1
            continue
        time[order[i:]] = z / g[i:]
        break
    share = np.where(allowed, capacity[None, :] / np.maximum(reach, 1e-12)[:, None], 0.0)
    x = np.clip(time[:, None] * share, 0.0, 1.0)
    # Jobs that may use only some models can overload those: scale such a model's column
    # back to its capacity (feasible; what it leaves idle the round mechanism refills).
    load = (x * gpus[:, None]).sum(axis=0)
    over = load > capacity
    x[:, over] *= capacity[over] / load[over]
    return np.asarray(x, dtype=np.float64)


class _Rows:
    """Sparse constraint rows ``A x <= b`` built as triplets (X is row-major: j * k + t)."""

    def __init__(self, n_cols: int) -> None:
        self.n_cols = n_cols
        self.n_rows = 0
        self._r: list[IntArray] = []
        self._c: list[IntArray] = []
        self._v: list[FloatArray] = []
        self._b: list[FloatArray] = []

    def add(self, rows: IntArray, cols: IntArray, vals: FloatArray, rhs: FloatArray) -> None:
        """Rows numbered from 0 within this block; ``rhs`` gives the block's row count."""
        self._r.append(rows + self.n_rows)
        self._c.append(cols)
        self._v.append(vals)
        self._b.append(rhs)
        self.n_rows += len(rhs)

    def base(self, n: int, k: int, gpus: FloatArray, capacity: FloatArray) -> _Rows:
        """Gavel's base constraints: row sums <= 1 and per-model capacity."""
        cols = np.arange(n * k)
        self.add(np.repeat(np.arange(n), k), cols, np.ones(n * k), np.ones(n))
        self.add(np.tile(np.arange(k), n), cols, np.repeat(gpus, k).astype(np.float64), capacity)
        return self

    def solve(self, c: FloatArray, bounds: list[Bound]) -> FloatArray | None:
        """Minimise ``c . x`` with HiGHS; None if infeasible."""
        # Imported here: SciPy takes a quarter of a second to import, and every process that
        # imports the core (the CLI's client commands too) would pay it for round-based
        # policies it may never run.
        from scipy.optimize import linprog
        from scipy.sparse import csr_array

        # Any: scipy-stubs types A_ub as dense only, but linprog's HiGHS methods take a sparse
        # matrix, which keeps an allocation over thousands of jobs small
        a: Any = csr_array(
            (np.concatenate(self._v), (np.concatenate(self._r), np.concatenate(self._c))),
            shape=(self.n_rows, self.n_cols),
        )
        res = linprog(c, A_ub=a, b_ub=np.concatenate(self._b), bounds=bounds, method="highs")
        if res.status != 0 or res.x is None:
            return None
        return np.asarray(res.x, dtype=np.float64)


def _bounds(allowed: BoolArray, extra: Sequence[Bound]) -> list[Bound]:
    out: list[Bound] = [(0.0, 1.0 if a else 0.0) for a in allowed.ravel().tolist()]
    out.extend(extra)
    return out


def max_min_fairness(
    thr: FloatArray,
    gpus: FloatArray,
    capacity: FloatArray,
    allowed: BoolArray,
    weights: FloatArray | None = None,
) -> FloatArray:
    """Gavel's heterogeneity-aware LAS: maximise the least normalised effective throughput.

    Objective: max z subject to ``gpus_j * (thr_j . X_j) / (w_j * thr_j . X_isolated_j) >= z``
    for every job (Gavel's ``MaxMinFairnessPolicyWithPerf``: multiplying by the scale factor
    gives a job on one accelerator the time share of a gang of ``gpus``). A job's throughput
    normalised by what it would get alone on its 1/n slice makes jobs of different types
    comparable, so each goes where it is comparatively fastest.
    """
    n, k = thr.shape
    if n == 0:
        return np.zeros((0, k))
    thr = np.where(allowed, thr, 0.0)
    iso = (thr * isolated(gpus, capacity, allowed)).sum(axis=1)
    w = np.ones(n) if weights is None else weights
    coef = thr * (gpus / (w * np.maximum(iso, 1e-12)))[:, None]
    # Jobs with the same coefficients, size and models are interchangeable: some optimum
    # gives them equal rows (average any optimum over them: still feasible, same least
    # value), so the LP has one row per group, with the group's accelerators in the capacity
    # rows. Gavel's 26 job types x 4 sizes bound the groups however long the queue is.
    key = np.concatenate([coef, gpus[:, None], allowed.astype(np.float64)], axis=1)
    uniq, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    m = len(uniq)
    g_coef = uniq[:, :k]
    g_gpus = uniq[:, k]
    g_allowed = uniq[:, k + 1 :] > 0.5
    rows = _Rows(m * k + 1)
    cols = np.arange(m * k)
    rows.add(np.repeat(np.arange(m), k), cols, np.ones(m * k), np.ones(m))
    rows.add(np.tile(np.arange(k), m), cols, np.repeat(g_gpus * counts, k), capacity)
    # z - coef_g . X_g <= 0 for every group
    gi = np.repeat(np.arange(m), k)
    rows.add(
        np.concatenate([gi, np.arange(m)]),
        np.concatenate([cols, np.full(m, m * k)]),
        np.concatenate([-g_coef.ravel(), np.ones(m)]),
        np.zeros(m),
    )
    c = np.zeros(m * k + 1)
    c[-1] = -1.0
    x = rows.solve(c, _bounds(g_allowed, [(0.0, None)]))
    if x is None:  # pragma: no cover - the LP is always feasible (X = 0)
        return equal_share(gpus, capacity, allowed)
    per_group = np.clip(x[: m * k].reshape(m, k), 0.0, 1.0)
    return np.asarray(per_group[inverse], dtype=np.float64)


def fifo(
    thr: FloatArray,
    gpus: FloatArray,
    capacity: FloatArray,
    allowed: BoolArray,
    value: FloatArray | None = None,
) -> FloatArray:
    """Gavel's heterogeneity-aware FIFO (``FIFOPolicyWithPerf``): rows are in arrival order.

    Each job in turn takes the model with the highest throughput for it among those with
    room for its whole gang; the first job that fits nowhere stops the walk (no job jumps
    the queue). The result is 0/1: the jobs that run this round and where. A job as fast
    on several models takes the one of least ``value`` (how fast a typical job runs there),
    leaving the others to jobs that gain from them (Gavel's tie goes to the first model
    in alphabetical order, which in its cluster happens to be the slowest, the K80).
    """
    n, k = thr.shape
    x = np.zeros((n, k))
    left = capacity.astype(np.float64).copy()
    tie = np.zeros(k) if value is None else value / max(float(np.max(value)), 1e-12)
    for j in range(n):
        fits = allowed[j] & (left >= gpus[j])
        if not fits.any():
            break
        best = np.max(np.where(fits, thr[j], -1.0))
        t = int(np.argmin(np.where(fits & (thr[j] >= best * (1 - 1e-9)), tie, np.inf)))
        x[j, t] = 1.0
        left[t] -= gpus[j]
    return x


def _throughput_floor_lp(
    thr: FloatArray, gpus: FloatArray, capacity: FloatArray, allowed: BoolArray, need: FloatArray
) -> FloatArray | None:
    """An X with ``thr_j . X_j >= need_j`` for every job within the base constraints, or None."""
    n, k = thr.shape
    rows = _Rows(n * k).base(n, k, gpus, capacity)
    rows.add(np.repeat(np.arange(n), k), np.arange(n * k), -thr.ravel(), -need)
    # Among feasible allocations prefer more throughput (Gavel's solver returns any feasible
    # one; a lazier one would leave accelerators idle that the round mechanism must refill).
    x = rows.solve(-thr.ravel(), _bounds(allowed, []))
    if x is None:
        return None
    return np.asarray(np.clip(x.reshape(n, k), 0.0, 1.0), dtype=np.float64)


def finish_time_fairness(
    thr: FloatArray,
    gpus: FloatArray,
    capacity: FloatArray,
    allowed: BoolArray,
    elapsed: FloatArray,
    remaining: FloatArray,
) -> FloatArray:
    """Themis' finish-time fairness in Gavel's form: minimise the largest rho_j.

    ``rho_j(X) = (elapsed_j + remaining_j / thr_j.X_j) / (elapsed_j + remaining_j / thr_j.X_iso_j)``:
    the job's finish time under X over its finish time on its isolated 1/n slice (Gavel's
    ``FinishTimeFairnessPolicyWithPerf``). rho is convex in X but not linear; for a fixed
    bound R the condition rho_j <= R is a linear floor on thr_j.X_j, so R is found by
    bisection over feasibility LPs (to ``FTF_TOLERANCE``).
    """
    n, k = thr.shape
    if n == 0:
        return np.zeros((0, k))
    thr = np.where(allowed, thr, 0.0)
    iso = np.maximum((thr * isolated(gpus, capacity, allowed)).sum(axis=1), 1e-12)
    rem = np.maximum(remaining, 1e-9)
    t_iso = elapsed + rem / iso
    best_rate = thr.max(axis=1)

    def need(r: float) -> FloatArray | None:
        slack = r * t_iso - elapsed
        if np.any(slack <= 0):
            return None
        floor = rem / slack
        return None if np.any(floor > best_rate + 1e-12) else floor

    # No job can beat running alone on its fastest model all the time.
    lo = float(np.max((elapsed + rem / np.maximum(best_rate, 1e-12)) / t_iso))
    hi = max(lo, 1.0)
    found: FloatArray | None = None
    for _ in range(40):  # grow until feasible (the isolated slice may overcommit with few jobs)
        fl = need(hi)
        found = None if fl is None else _throughput_floor_lp(thr, gpus, capacity, allowed, fl)
        if found is not None:
            break
        lo, hi = hi, hi * 2.0
    if found is None:  # pragma: no cover - rho grows without bound only with zero throughput
        return equal_share(gpus, capacity, allowed)
    for _ in range(FTF_MAX_STEPS):
        if hi - lo <= FTF_TOLERANCE * hi:
            break
        mid = (lo + hi) / 2.0
        fl = need(mid)
        got = None if fl is None else _throughput_floor_lp(thr, gpus, capacity, allowed, fl)
        if got is None:
            lo = mid
        else:
            hi, found = mid, got
    return found


def min_makespan(
    thr: FloatArray, gpus: FloatArray, capacity: FloatArray, allowed: BoolArray, remaining: FloatArray
) -> FloatArray:
    """Gavel's ``MinTotalDurationPolicy``: the allocation that finishes all jobs soonest.

    Gavel bisects on the makespan T with feasibility problems ``thr_j.X_j >= remaining_j / T``;
    with s = 1/T that is one LP: maximise s subject to ``thr_j.X_j - remaining_j * s >= 0``.
    """
    n, k = thr.shape
    if n == 0:
        return np.zeros((0, k))
    thr = np.where(allowed, thr, 0.0)
    # Remaining work in units of the largest, so that s is of order 1: in milliseconds s
    # would be ~1e-9, below the solver's feasibility tolerance, and X = 0 would "solve" it.
    rem = np.maximum(remaining, 1e-9)
    rem = rem / rem.max()
    rows = _Rows(n * k + 1).base(n, k, gpus, capacity)
    # remaining_j * s - thr_j . X_j <= 0 for every job
    j = np.repeat(np.arange(n), k)
    rows.add(
        np.concatenate([j, np.arange(n)]),
        np.concatenate([np.arange(n * k), np.full(n, n * k)]),
        np.concatenate([-thr.ravel(), rem]),
        np.zeros(n),
    )
    c = np.zeros(n * k + 1)
    c[-1] = -1.0
    x = rows.solve(c, _bounds(allowed, [(0.0, None)]))
    if x is None:  # pragma: no cover - X = 0, s = 0 is always feasible
        return equal_share(gpus, capacity, allowed)
    return np.asarray(np.clip(x[: n * k].reshape(n, k), 0.0, 1.0), dtype=np.float64)
