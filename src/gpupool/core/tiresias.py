"""Tiresias: discretised two-dimensional least-attained-service (Gu et al., NSDI'19).

This module owns the ``tiresias`` policy's ordering, which the wanted-set pass uses as its
key (the starvation rule that promotes jobs is in ``gpupool.core.tiresias_promoter``):

* attained service is two-dimensional: accelerators x time (GPU-ms), so a wide gang ages
  as fast as its width, and nothing about a job's future is assumed (non-clairvoyant);
* jobs are sorted into a few priority queues by attained service (``TiresiasConfig``
  thresholds; the default, one threshold at 48 min x 4 GPUs, is the Tiresias simulator's);
  a higher queue always goes first and may preempt a lower one, and within a queue jobs
  keep their arrival order, so jobs of one queue never preempt each other back and forth
  (that is why Tiresias discretises: continuous LAS thrashes between near-equal jobs);
* starvation is avoided by promotion: a pending job that has waited ``promote_knob`` times
  as long as it has run since it was last promoted goes back to the highest queue with its
  attained service reset (Tiresias' ``promote_knob`` rule).

Pure: keys are functions of the job's counters and ``now``.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from gpupool.core.job_state import JobState

#: The Tiresias simulator's default queue threshold: 48 minutes on 4 GPUs, in GPU-ms.
DEFAULT_THRESHOLD_GPU_MS = 48 * 60_000 * 4


@dataclass(frozen=True, slots=True)
class TiresiasConfig:
    """Queue thresholds (attained GPU-ms, ascending) and the starvation knob (0 = off)."""

    thresholds_gpu_ms: tuple[int, ...] = (DEFAULT_THRESHOLD_GPU_MS,)
    promote_knob: float = 4.0

    def __post_init__(self) -> None:
        t = self.thresholds_gpu_ms
        if any(x <= 0 for x in t) or list(t) != sorted(set(t)):
            raise ValueError("tiresias thresholds must be positive and strictly ascending")
        if self.promote_knob < 0:
            raise ValueError("tiresias promote_knob must be >= 0")


def queue_of(attained_gpu_ms: float, config: TiresiasConfig) -> int:
    """The queue (0 = highest priority) of a job that has attained this much service."""
    return bisect_right(config.thresholds_gpu_ms, attained_gpu_ms)


def key(attained_gpu_ms: float, j: JobState, config: TiresiasConfig) -> tuple[float, ...]:
    """Sort key: queue, then arrival, then the submission sequence (explicit tie-break)."""
    return (queue_of(attained_gpu_ms, config), j.spec.submit_ms, j.seq)
