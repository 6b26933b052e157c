"""``sjf``: shortest job first by the oracle duration hint (an experiment's baseline)."""

from __future__ import annotations

from gpupool.core.job_state import JobState
from gpupool.core.policies.base import Policy, PolicyConfig, register


class Sjf(Policy):
    name = "sjf"
    order = "oracle duration (experiments)"

    def static_key(self, j: JobState, config: PolicyConfig) -> tuple[float, ...]:
        return (j.spec.duration_hint_ms, j.spec.submit_ms, j.seq)


POLICY = register(Sjf())
