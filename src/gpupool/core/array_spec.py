"""Array specs: which task indices a job array holds and how many may run at once.

This module owns ``ArraySpec`` and its text form, Slurm's ``--array``: ``0-99``, ``0-99:2``
(a step), ``1,3,5-7`` (a list), each with an optional ``%N`` limit on running tasks
(``parse_array``, ``format_array``), and the id of a task (``task_id``: ``ARRAY_INDEX``).
Pure data; the scheduler's record of arrays is ``gpupool.core.job_arrays``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: the most tasks one array may hold (Slurm's MaxArraySize is 1,001 by default; a national
#: pool's parameter sweeps are larger)
MAX_ARRAY_TASKS = 100_000
_PART = re.compile(r"^(\d{1,6})(?:-(\d{1,6})(?::(\d{1,6}))?)?$")


class ArrayError(ValueError):
    """An array text that cannot be read; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """Task indices (ascending, distinct) and how many may run at once (0: no limit)."""

    indices: tuple[int, ...]
    limit: int = 0

    def __str__(self) -> str:
        return format_array(self)


def parse_array(text: str) -> ArraySpec:
    """``0-99``, ``0-99:2``, ``1,3,5-7``, each with an optional ``%N`` limit."""
    body, pct, lim = text.strip().partition("%")
    limit = 0
    if pct:
        if not lim.isdigit() or int(lim) < 1:
            raise ArrayError(f"the limit after % must be a whole number >= 1, not {lim!r}")
        limit = int(lim)
    got: set[int] = set()
    for part in body.split(","):
        m = _PART.match(part.strip())
        if m is None:
            raise ArrayError(f"{part.strip()!r} is not an index, a range A-B or a stepped range A-B:S")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        step = int(m.group(3)) if m.group(3) is not None else 1
        if hi < lo:
            raise ArrayError(f"range {part.strip()!r} ends before it starts")
        if step < 1:
            raise ArrayError(f"range {part.strip()!r} has a step below 1")
        if (hi - lo) // step + 1 + len(got) > MAX_ARRAY_TASKS:
            raise ArrayError(f"at most {MAX_ARRAY_TASKS} tasks")
        got.update(range(lo, hi + 1, step))
    return ArraySpec(tuple(sorted(got)), limit)


def format_array(a: ArraySpec) -> str:
    """The text form of ``a`` (runs of consecutive indices as ranges)."""
    parts: list[str] = []
    idx = a.indices
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        parts.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
        i = j + 1
    return ",".join(parts) + (f"%{a.limit}" if a.limit else "")


def task_id(array_id: str, index: int) -> str:
    return f"{array_id}_{index}"
