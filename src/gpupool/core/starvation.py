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

import heapq
from collections.abc import Iterator

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

    Cost: a heap of the times jobs could cross the bound (a pending job's is fixed while
    it waits; a running one's is when it would if preempted now) is popped as time
    passes; a full scan of the jobs runs once per bound, for the jobs submitted since the
    last (they cross no sooner than a bound after it). The starving jobs are kept in
    submission order and walked lazily, so a pass that needs only the first few pays for
    those: a sort of every starving job at every cycle made FIFO on ITP 02 five times
    slower.
    """

    def __init__(self, state: PoolState) -> None:
        self.state = state
        #: the starving jobs' sequence numbers, oldest submission first
        self._order: list[int] = []
        #: per starving job: its attempt when it started starving (a start serves it)
        self._attempt: dict[int, int] = {}
        #: per job served since it starved: its wait then (counted again from there)
        self._base: dict[int, int] = {}
        #: per starving job that started: until when the order does not preempt it
        self._until: dict[int, int] = {}
        #: (earliest time it could cross the bound, seq) of the jobs known at the last scan
        self._heap: list[tuple[int, int]] = []
        self._rescan_at = -1

    def pending(self, now: int) -> Iterator[JobState]:
        """The starving pending jobs, oldest submission first, found lazily."""
        self._update(now)
        by_seq, order, attempt = self.state.by_seq, self._order, self._attempt
        i = 0
        while i < len(order):
            seq = order[i]
            j = by_seq.get(seq)
            if j is None or j.status == DONE:
                del order[i]
                del attempt[seq]
                continue
            if j.attempt != attempt[seq]:  # it started since: served
                del order[i]
                del attempt[seq]
                self._served(j, now)
                continue
            yield j
            i += 1

    def protected(self, now: int) -> list[JobState]:
        """The running jobs that started starving and are within their quantum."""
        by_seq = self.state.by_seq
        out = []
        for seq, until in list(self._until.items()):
            j = by_seq.get(seq)
            if j is None or j.status != RUNNING or now >= until:
                del self._until[seq]
            else:
                out.append(j)
        return out

    def _served(self, j: JobState, now: int) -> None:
        # its wait counts anew from its start (a job seen again only after it was also
        # preempted counts from now: a little more than the bound, never less)
        self._base[j.seq] = waited_ms(j, now)
        if j.status == RUNNING:
            self._until[j.seq] = j.start_ms + PREEMPTION_QUANTUM_MS
        heapq.heappush(self._heap, (now + self.state.config.starvation_ms, j.seq))

    def _update(self, now: int) -> None:
        state = self.state
        bound = state.config.starvation_ms
        by_seq, base, heap = state.by_seq, self._base, self._heap
        if now >= self._rescan_at:
            self._rescan_at = now + bound
            heap.clear()
            for j in by_seq.values():
                if j.seq not in self._attempt and j.status != DONE:
                    heap.append((now + max(0, bound - waited_ms(j, now) + base.get(j.seq, 0)), j.seq))
            heapq.heapify(heap)
            if len(base) > 2 * len(by_seq):
                self._base = base = {s: w for s, w in base.items() if s in by_seq}
        added = False
        while heap and heap[0][0] <= now:
            _, seq = heapq.heappop(heap)
            job = by_seq.get(seq)
            if job is None or job.status == DONE or seq in self._attempt:
                continue
            if job.status == RUNNING:  # it started without starving: served, counted anew
                base[seq] = waited_ms(job, now)
                heapq.heappush(heap, (now + bound, seq))
                continue
            w = waited_ms(job, now) - base.get(seq, 0)
            if w >= bound:
                self._order.append(seq)
                self._attempt[seq] = job.attempt
                added = True
            else:
                heapq.heappush(heap, (now + bound - w, seq))
        if added:
            # a job gone since (finished, cancelled) sorts first and is dropped by the walk
            self._order.sort(key=lambda s: (by_seq[s].spec.submit_ms if s in by_seq else -1, s))
