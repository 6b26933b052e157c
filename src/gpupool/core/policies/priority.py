"""``priority``: priority class first, then submission order.

A higher class may preempt a lower one to start (``gpupool.core.preemption``).
"""

from __future__ import annotations

from gpupool.core.policies.base import Policy, register


class Priority(Policy):
    name = "priority"
    order = "priority class, then submit time"
    by_rank = True


POLICY = register(Priority())
