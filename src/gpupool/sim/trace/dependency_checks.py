"""Checking a workload's dependencies and arrays: readable, naming jobs of the file, earlier,
no cycle.

This module owns ``check_dependencies``, run by the native reader on its ``dependency``
column (Slurm's ``--dependency`` text, ``gpupool.core.dependencies``). A row is refused with
file, line and field when its text cannot be read, when it names a job the file does not
hold, when the jobs' dependencies form a cycle, or when it names a job submitted after it
(later, or at the same time on a later line): the twin submits in that order, and a job may
only name one that exists, as in the live service. A task ``ID_N`` of an array row counts as
a job of the file. ``check_arrays`` refuses an ``array`` cell that cannot be read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gpupool.core.array_spec import ArrayError, parse_array
from gpupool.core.dependencies import DependencyError, find_cycle, parse_dependencies
from gpupool.sim.workload import TraceError

FIELD = "dependency"


def check_dependencies(
    path: str,
    ids: Sequence[str],
    texts: Sequence[str],
    submit_ms: npt.NDArray[np.int64],
    lines: npt.NDArray[np.int64],
    arrays: Sequence[str] | None = None,
) -> None:
    """Raise ``TraceError`` for the first row whose dependencies are wrong (see the module)."""
    row_of = {job_id: i for i, job_id in enumerate(ids)}
    for i, text in enumerate(arrays or ()):
        if text:  # its tasks are named ID_N: a dependency on one is one on that row
            row_of.update({f"{ids[i]}_{n}": i for n in parse_array(text).indices})
    line = [int(x) for x in lines.tolist()]
    submit = [int(x) for x in submit_ms.tolist()]
    edges: dict[str, list[str]] = {}
    for i, text in enumerate(texts):
        if not text:
            continue
        try:
            deps = parse_dependencies(text)
        except DependencyError as e:
            raise TraceError(path, line[i], FIELD, str(e)) from None
        for d in deps:
            if d.job_id not in row_of:
                raise TraceError(
                    path, line[i], FIELD, f"names job {d.job_id!r}, which the file does not hold"
                )
        edges[ids[i]] = [d.job_id for d in deps]
    if not edges:
        return
    cycle = find_cycle(edges)
    if cycle is not None:
        raise TraceError(path, line[row_of[cycle[0]]], FIELD, f"dependency cycle: {' -> '.join(cycle)}")
    for job_id, targets in edges.items():
        i = row_of[job_id]
        for t in targets:
            k = row_of[t]
            if k == i:
                raise TraceError(path, line[i], FIELD, f"names {t!r}, a task of its own array")
            if (submit[k], k) > (submit[i], i):
                raise TraceError(
                    path, line[i], FIELD, f"names job {t!r}, submitted after it (line {line[k]})"
                )


def check_arrays(path: str, texts: Sequence[str], lines: npt.NDArray[np.int64]) -> None:
    """Raise ``TraceError`` for the first ``array`` cell that cannot be read."""
    for i, text in enumerate(texts):
        if text:
            try:
                parse_array(text)
            except ArrayError as e:
                raise TraceError(path, int(lines[i]), "array", str(e)) from None
