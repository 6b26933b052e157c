"""The running allocations as the loop tracks them, by the service's id and by the core's.

This module owns ``Running`` and ``AllocationIndex``. An allocation has two names: the
service's ``j7.1`` (``store.allocation_id``: in job rows, usage, the outbox and executors,
unique forever) and the core's ``j7#1`` (in ``Start``, ``Preempt``, ``Stop`` and what
``JobFinished`` must name). The core's attempt count restarts after a rebuild where the
service's does not, so the two cannot be one format; the index keeps both directions, and
mapping a core decision to the service's allocation is one dict lookup, not a scan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Running:
    """A running allocation as the loop tracks it."""

    seq: int
    allocation_id: str  # the service's (unique forever)
    core_allocation_id: str  # what the core calls it (JobFinished must name this one)
    cluster: str
    #: a task of a job array: its id in the core (``j7_3``; ``seq`` is the array's); "" for a job
    job: str = ""


class AllocationIndex:
    """Running allocations by the service's id, with the core's id as a second key."""

    __slots__ = ("_by_core", "_by_id")

    def __init__(self) -> None:
        self._by_id: dict[str, Running] = {}
        self._by_core: dict[str, str] = {}

    def add(self, run: Running) -> None:
        self._by_id[run.allocation_id] = run
        self._by_core[run.core_allocation_id] = run.allocation_id

    def pop(self, allocation_id: str) -> Running | None:
        """Forget an allocation (None if it was not running)."""
        run = self._by_id.pop(allocation_id, None)
        if run is not None and self._by_core.get(run.core_allocation_id) == allocation_id:
            del self._by_core[run.core_allocation_id]
        return run

    def get(self, allocation_id: str) -> Running | None:
        return self._by_id.get(allocation_id)

    def __getitem__(self, allocation_id: str) -> Running:
        return self._by_id[allocation_id]

    def service_id(self, core_allocation_id: str) -> str:
        """The service's id of the allocation the core calls ``core_allocation_id`` ("" if none)."""
        return self._by_core.get(core_allocation_id, "")

    def __contains__(self, allocation_id: object) -> bool:
        return allocation_id in self._by_id

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def values(self) -> Iterator[Running]:
        return iter(self._by_id.values())
