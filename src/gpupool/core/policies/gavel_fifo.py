"""``gavel-fifo``: arrival order, each job on its fastest free model.

Round-based (Gavel's mechanism, ``gpupool.core.heterogeneity``) with the ``fifo``
allocation of ``gpupool.core.allocation``; heterogeneity-aware: it reads the throughput table.
"""

from __future__ import annotations

from gpupool.core.policies.base import RoundBased, register


class GavelFifo(RoundBased):
    name = "gavel-fifo"
    order = "arrival order, each job on its fastest free model"
    objective = "fifo"
    aware = True


POLICY = register(GavelFifo())
