"""Shared accelerators: a fraction of compute and an amount of memory per job.

This module owns ``ShareRequest`` (what a job on a shared GPU asks: ``gpu_fraction`` and/or
``gpu_memory_gib``), its resolution against a model (``ShareNeed``: the compute share and
the memory it is given, and the fraction it is charged) and ``SharedGpu``, the accounting of
one time-sliced or MPS-shared accelerator.

Rules, and why:

* Memory is never oversubscribed: time-slicing swaps no device memory, so two jobs whose
  memory adds up past the card's would fail with out-of-memory at run time. A job that names
  only a fraction is given that fraction of the memory (the limit MPS enforces with
  ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``); one that names only memory gets the same share of
  compute.
* Compute shares add up to at most 1 (MPS ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``; under plain
  time-slicing the share is what the scheduler promises, not what the driver enforces).
* A job is charged ``max(fraction, memory / card memory)`` of an accelerator-hour: what it
  keeps from others (KAI-Scheduler and Run:ai charge GPU fractions the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: fractions are kept in millionths so that sums are exact (0.1 + 0.2 must equal 0.3)
UNIT = 1_000_000


class ShareError(ValueError):
    """A share request that no accelerator could satisfy; ``field`` names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class ShareRequest:
    """A job's request for part of one shared accelerator (0 = not given)."""

    gpu_fraction: float = 0.0
    gpu_memory_gib: float = 0.0

    def validate(self) -> None:
        if self.gpu_fraction == 0 and self.gpu_memory_gib == 0:
            raise ShareError("gpu_fraction", "give gpu_fraction and/or gpu_memory")
        if not 0 <= self.gpu_fraction <= 1:
            raise ShareError("gpu_fraction", f"must be in (0, 1], got {self.gpu_fraction}")
        if self.gpu_memory_gib < 0:
            raise ShareError("gpu_memory", f"must be > 0, got {self.gpu_memory_gib}")

    def need(self, memory_gib: float) -> ShareNeed:
        """What the request takes of a card with ``memory_gib``; ShareError if it cannot fit."""
        self.validate()
        if self.gpu_memory_gib > memory_gib:
            raise ShareError(
                "gpu_memory", f"{self.gpu_memory_gib:g} GiB is more than the card's {memory_gib:g} GiB"
            )
        mem_share = self.gpu_memory_gib / memory_gib
        compute = self.gpu_fraction if self.gpu_fraction > 0 else mem_share
        memory = self.gpu_memory_gib if self.gpu_memory_gib > 0 else self.gpu_fraction * memory_gib
        return ShareNeed(
            compute=max(1, round(compute * UNIT)),
            memory_mib=max(1, round(memory * 1024)),
            charged=max(compute, mem_share),
        )


@dataclass(frozen=True, slots=True)
class ShareNeed:
    """A resolved request: compute in millionths of the card, memory in MiB, charged share."""

    compute: int
    memory_mib: int
    charged: float


@dataclass(slots=True)
class SharedGpu:
    """The accounting of one shared accelerator: what its jobs hold, never more than it has."""

    memory_mib: int
    compute_used: int = 0
    memory_used: int = 0
    holders: dict[str, ShareNeed] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return not self.holders

    def fits(self, need: ShareNeed) -> bool:
        return (
            self.compute_used + need.compute <= UNIT and self.memory_used + need.memory_mib <= self.memory_mib
        )

    def take(self, holder: str, need: ShareNeed) -> None:
        """``holder`` takes ``need``; ValueError if that would oversubscribe or it holds already."""
        if holder in self.holders:
            raise ValueError(f"{holder} already holds part of this GPU")
        if not self.fits(need):
            raise ValueError(f"{holder}: would oversubscribe this GPU")
        self.holders[holder] = need
        self.compute_used += need.compute
        self.memory_used += need.memory_mib

    def give_back(self, holder: str) -> None:
        need = self.holders.pop(holder)
        self.compute_used -= need.compute
        self.memory_used -= need.memory_mib

    @property
    def free_share(self) -> float:
        """The share a new job could still get: the smaller of free compute and free memory."""
        return min((UNIT - self.compute_used) / UNIT, (self.memory_mib - self.memory_used) / self.memory_mib)
