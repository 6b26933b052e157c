"""``gavel-ftf``: finish-time fairness on effective throughput.

Round-based (Gavel's mechanism, ``gpupool.core.heterogeneity``) with the ``ftf``
allocation of ``gpupool.core.allocation``; heterogeneity-aware: it reads the throughput table.
"""

from __future__ import annotations

from gpupool.core.policies.base import RoundBased, register


class GavelFtf(RoundBased):
    name = "gavel-ftf"
    order = "finish-time fairness on effective throughput"
    objective = "ftf"
    aware = True


POLICY = register(GavelFtf())
