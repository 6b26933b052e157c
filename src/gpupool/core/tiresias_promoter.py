"""Tiresias' starvation rule: a pending job that waited long enough goes back to the top queue.

This module owns ``Promoter`` (Gu et al., NSDI'19): a pending job that has waited
``promote_knob`` times as long as it has run since it was last promoted goes back to the
highest queue with its attained service reset. Applied to the pool state's pending jobs at
every round (``Tick``); the queues themselves are in ``gpupool.core.tiresias``.

Part of the pure core.
"""

from __future__ import annotations

from gpupool.core.job_state import JobState
from gpupool.core.pool_state import PoolState
from gpupool.core.tiresias import TiresiasConfig, queue_of


class Promoter:
    """Tiresias' starvation rule, applied to the pending jobs at every round (``Tick``)."""

    def __init__(self, config: TiresiasConfig) -> None:
        self.config = config
        #: per promoted job: (time waited, time run) when it was promoted; the rule counts
        #: only what came after (Tiresias resets both counters on promotion)
        self._base: dict[int, tuple[int, int]] = {}

    def promote(self, state: PoolState, now: int) -> int:
        """Move starving pending jobs to the highest queue; returns how many moved."""
        knob = self.config.promote_knob
        if knob <= 0 or not self.config.thresholds_gpu_ms:
            return 0
        starving: list[JobState] = []
        for q in state.queues.values():
            for entry in q:
                j = state.by_seq[entry[-1]]
                if queue_of(j.attained, self.config) == 0:
                    continue
                waited0, ran0 = self._base.get(j.seq, (0, 0))
                waited = now - j.spec.submit_ms - j.run_ms - waited0
                ran = j.run_ms - ran0
                if ran > 0 and waited >= knob * ran:
                    starving.append(j)
        for j in starving:
            state.dequeue(j)
            self._base[j.seq] = (now - j.spec.submit_ms - j.run_ms, j.run_ms)
            j.attained = 0.0
            state.enqueue(j)
        if len(self._base) > 4 * max(1, len(state.by_seq)):
            # forget jobs that have left the state (bounded memory in long runs)
            self._base = {s: b for s, b in self._base.items() if s in state.by_seq}
        return len(starving)
