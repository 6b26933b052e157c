"""``fifo``: pending jobs in submission order, one queue for everyone.

The baseline of every comparison. With strict order a job that does not fit blocks its
pools; with ``+easy`` later jobs may backfill without delaying it.
"""

from __future__ import annotations

from gpupool.core.policies.base import Policy, register


class Fifo(Policy):
    name = "fifo"
    order = "submit time"


POLICY = register(Fifo())
