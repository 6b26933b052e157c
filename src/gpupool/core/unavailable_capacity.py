"""Unavailable capacity in a waiting job's reason: the accelerators it waits for are drained or down.

This module owns ``unavailable_note``: when a job waits for accelerators (``resources``) and
none of the pools it may use could hold it even once everything running there ends, because
part of them is drained or down, its reason says so ("8 of 8 H200 drained or down"): the
job is held, not refused (a drained node comes back), and the user learns that it waits for
nodes, not for other jobs. A node removed from the fleet is another matter: the job is then
refused as never startable at the next start (``gpupool.core.scheduler.refusal``).

Part of the pure core.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpupool.core.capacity import Pool


def unavailable_note(pools: list[Pool], cands: Iterable[int], gpus: int) -> str:
    """``"; N of M MODEL drained or down"`` when only unavailable nodes keep ``gpus`` from
    fitting in any of ``cands``, else ``""``."""
    off: dict[str, list[int]] = {}
    for pi in cands:
        p = pools[pi]
        if p.schedulable >= gpus:
            return ""  # it fits there once running jobs end: it waits for them, not for nodes
        if p.total >= gpus:
            got = off.setdefault(p.model, [0, 0])
            got[0] += p.total - p.schedulable
            got[1] += p.total
    if not off:
        return ""
    return "; " + ", ".join(f"{n} of {m} {model} drained or down" for model, (n, m) in sorted(off.items()))
