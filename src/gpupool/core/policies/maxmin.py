"""``maxmin``: round-based max-min fair GPU-time (agnostic LAS).

Round-based (Gavel's mechanism, ``gpupool.core.heterogeneity``) with the ``las``
allocation of ``gpupool.core.allocation``; heterogeneity-agnostic: every model counts alike
(as in Gavel's baselines).
"""

from __future__ import annotations

from gpupool.core.policies.base import RoundBased, register


class MaxMin(RoundBased):
    name = "maxmin"
    order = "round-based max-min fair GPU-time (agnostic LAS)"
    objective = "las"
    aware = False


POLICY = register(MaxMin())
