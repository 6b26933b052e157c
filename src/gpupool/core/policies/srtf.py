"""``srtf``: shortest remaining time first, preemptive (oracle; an experiment's baseline).

Every cycle the wanted set is recomputed over running and pending jobs by remaining time:
a pending job's estimate (``job_state.remaining``), a running job's time to its expected end.
"""

from __future__ import annotations

from gpupool.core.job_state import JobState, remaining
from gpupool.core.policies.base import Pass, Policy, PolicyConfig, register


class Srtf(Policy):
    name = "srtf"
    order = "oracle remaining time (experiments)"
    cycle = Pass.WANTED_SET

    def static_key(self, j: JobState, config: PolicyConfig) -> tuple[float, ...]:
        return (remaining(j, config.default_walltime_ms), j.spec.submit_ms, j.seq)

    def running_key(self, j: JobState, end: int, now: int, config: PolicyConfig) -> tuple[float, ...]:
        return (max(0, end - now), j.spec.submit_ms, j.seq)


POLICY = register(Srtf())
