"""``tiresias``: discretised two-dimensional LAS queues with starvation promotion.

The queues and their key are ``gpupool.core.tiresias``; the promotion of starving jobs at
every round is ``gpupool.core.tiresias_promoter``. It needs rounds (a minute) to demote and
promote; no quantum: its discrete queues are the thrashing guard.
"""

from __future__ import annotations

from gpupool.core.job_state import JobState
from gpupool.core.policies.base import (
    PREEMPTION_QUANTUM_MS,
    C,
    Pass,
    Policy,
    PolicyConfig,
    register,
    with_round,
)
from gpupool.core.tiresias import key


class Tiresias(Policy):
    name = "tiresias"
    order = "discretised 2D-LAS queues, starvation promotion"
    cycle = Pass.WANTED_SET
    ages = True
    promotes = True

    def static_key(self, j: JobState, config: PolicyConfig) -> tuple[float, ...]:
        return key(j.attained, j, config.tiresias)

    def running_key(self, j: JobState, end: int, now: int, config: PolicyConfig) -> tuple[float, ...]:
        return key(j.attained + (now - j.start_ms) * j.gpus, j, config.tiresias)

    def defaults(self, config: C) -> C:
        # Discrete queues alone do not bound thrashing: promotions put gangs back in the top
        # queue, which then preempt each other before any checkpoint (on ITP cluster 02, 88 %
        # of GPU-hours lost without a quantum).
        return with_round(config, 60_000, min_runtime_ms=PREEMPTION_QUANTUM_MS)


POLICY = register(Tiresias())
