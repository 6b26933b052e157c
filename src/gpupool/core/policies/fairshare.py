"""``fairshare``: class, then within-guarantee first, then decayed usage over weight.

Sub-queues per (candidate set, project, class) are merged by the fair-share prefix of
``gpupool.core.fairshare``; within one, jobs keep their submission order. A tenant under its
guarantee reclaims borrowed capacity by preemption.
"""

from __future__ import annotations

from gpupool.core.policies.base import Policy, register


class FairShare(Policy):
    name = "fairshare"
    order = "class; within guarantee first; decayed usage/weight"
    by_rank = True
    fair = True


POLICY = register(FairShare())
