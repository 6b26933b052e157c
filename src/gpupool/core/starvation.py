"""The starvation bound: which jobs have waited too long, found without a scan per cycle.

This module owns ``StarvingJobs`` and ``waited_ms``. Every pass serves a starving job
before its policy's order (``SchedulerConfig.starvation_ms``, 24 h by default): the
wanted-set pass (``gpupool.core.wanted_set_pass``) takes it first and holds accelerators
for it, preempting past the quantum; the queue pass (``gpupool.core.queue_pass``) tries it
first and, if it does not fit, blocks its pools (strict order) or gives it the reservation
(EASY); Gavel's rounds share time among all jobs and need no bound.

Part of the pure core.
"""

from __future__ import annotations

from gpupool.core.job_state import DONE, PENDING, RUNNING, JobState
from gpupool.core.policies.base import PREEMPTION_QUANTUM_MS
from gpupool.core.pool_state import PoolState


def waited_ms(j: JobState, now: int) -> int:
    """How long ``j`` has waited pending, summed over its attempts, as of ``now``.

    A running job's wait is frozen at its start (its run time so far is not waiting).
    """
    if j.status == PENDING:
        return now - j.spec.submit_ms - j.run_ms
    return j.start_ms - j.spec.submit_ms - j.run_ms


class StarvingJobs:
    """The jobs of a pool state past the starvation bound, found without a scan per cycle.

    A job starves when it has waited the bound since it was last served: its wait is
    counted from its submission, and again from zero each time it starts (Tiresias
    resets its counters on promotion). A starving job that starts is *protected* for the
    preemption quantum (``PREEMPTION_QUANTUM_MS``, past two checkpoints, also under
    ``srtf``, which has none): it keeps work, then it is ordered as any other. Protecting
    it for the whole bound made it a long job nothing could preempt: on ITP cluster 02 at
    80 % load ``las``'s mean JCT rose from 30 ks to 74 ks; with the quantum it is 31 ks and
    ``tiresias`` fell from 197 ks to 80 ks.
    A full scan runs only when some job could have crossed the bound since the last one
    (``_next``: the earliest time any job known then could, a running one counted as if
    it were preempted at the scan); a job submitted later crosses it later still.
    """

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self._seqs: set[int] = set()
        #: per job served since it starved: its wait then (counted again from there)
        self._base: dict[int, int] = {}
        #: per starving job that started: until when the order does not preempt it
        self._until: dict[int, int] = {}
        self._next = -1

    def at(self, now: int) -> tuple[list[JobState], list[JobState]]:
        """The starving pending jobs (oldest submission first) and the protected running ones."""
        state = self.state
        bound = state.config.starvation_ms
        by_seq = state.by_seq
        for seq in list(self._seqs):
            j = by_seq.get(seq)
            if j is None:
                self._seqs.discard(seq)
            elif j.status == RUNNING:  # served: protected a while, its wait counted anew
                self._seqs.discard(seq)
                self._base[seq] = waited_ms(j, now)
                self._until[seq] = j.start_ms + PREEMPTION_QUANTUM_MS
        if now >= self._next:
            nxt = now + bound
            base = self._base
            for j in by_seq.values():
                if j.seq in self._seqs or j.status == DONE:
                    continue
                w = waited_ms(j, now) - base.get(j.seq, 0)
                if w >= bound and j.status == PENDING:
                    self._seqs.add(j.seq)
                else:
                    nxt = min(nxt, now + max(1, bound - w))
            self._next = nxt
            if len(base) > 2 * len(by_seq):
                self._base = {s: w for s, w in base.items() if s in by_seq}
        protected = []
        for seq, until in list(self._until.items()):
            j = by_seq.get(seq)
            if j is None or j.status != RUNNING or now >= until:
                del self._until[seq]
            else:
                protected.append(j)
        pending = sorted((by_seq[s] for s in self._seqs), key=lambda j: (j.spec.submit_ms, j.seq))
        protected.sort(key=lambda j: (j.spec.submit_ms, j.seq))
        return pending, protected
