"""``gavel-makespan``: the allocation that finishes all jobs soonest.

Round-based (Gavel's mechanism, ``gpupool.core.heterogeneity``) with the ``makespan``
allocation of ``gpupool.core.allocation``; heterogeneity-aware: it reads the throughput table.
"""

from __future__ import annotations

from gpupool.core.policies.base import RoundBased, register


class GavelMakespan(RoundBased):
    name = "gavel-makespan"
    order = "the allocation that finishes all jobs soonest"
    objective = "makespan"
    aware = True


POLICY = register(GavelMakespan())
