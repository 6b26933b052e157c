"""``las``: least attained service first (accelerators x time), preemptive.

Attained service grows while a job runs, so the order ages with time: every round
(``Tick``) re-decides every pool. It needs rounds (a decision every minute) and a quantum
(``PREEMPTION_QUANTUM_MS``, past two checkpoints and a restart): without a minimum
runtime every round would preempt everything that runs in favour of jobs that have had no
service yet, and under overload the restart overheads would eat the pool.
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


class Las(Policy):
    name = "las"
    order = "least attained service, GPU x time"
    cycle = Pass.WANTED_SET
    ages = True

    def static_key(self, j: JobState, config: PolicyConfig) -> tuple[float, ...]:
        return (j.attained, j.spec.submit_ms, j.seq)

    def running_key(self, j: JobState, end: int, now: int, config: PolicyConfig) -> tuple[float, ...]:
        return (j.attained + (now - j.start_ms) * j.gpus, j.spec.submit_ms, j.seq)

    def defaults(self, config: C) -> C:
        return with_round(config, 60_000, min_runtime_ms=PREEMPTION_QUANTUM_MS)


POLICY = register(Las())
