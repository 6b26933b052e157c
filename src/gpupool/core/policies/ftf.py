"""``ftf``: round-based finish-time fairness (agnostic).

Round-based (Gavel's mechanism, ``gpupool.core.heterogeneity``) with the ``ftf``
allocation of ``gpupool.core.allocation``; heterogeneity-agnostic: every model counts alike
(as in Gavel's baselines).
"""

from __future__ import annotations

from gpupool.core.policies.base import RoundBased, register


class Ftf(RoundBased):
    name = "ftf"
    order = "round-based finish-time fairness (agnostic)"
    objective = "ftf"
    aware = False


POLICY = register(Ftf())
