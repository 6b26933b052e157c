"""``gavel-las``: max-min of throughput normalised to an equal share.

Round-based (Gavel's mechanism, ``gpupool.core.heterogeneity``) with the ``las``
allocation of ``gpupool.core.allocation``; heterogeneity-aware: it reads the throughput table.
"""

from __future__ import annotations

from gpupool.core.policies.base import RoundBased, register


class GavelLas(RoundBased):
    name = "gavel-las"
    order = "max-min of throughput normalised to an equal share"
    objective = "las"
    aware = True


POLICY = register(GavelLas())
