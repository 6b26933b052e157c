"""What pending jobs were told they wait for, as data, and their index per sub-queue.

This module owns, for one pool state:

* the wait signature of a pending job (``signature``): the reason it was told, in a form a
  cycle can check without trying the job (``JobState.wait_sig``): (its pools, None) for
  "waiting for accelerators", (its pools, id of the reservation's job) for "would delay
  job ...". It is derived from the reason's code and its *subject*, carried as data next
  to the message (the models a job waits for, the job whose reservation it would delay),
  never parsed back from the message text;
* the index of those jobs per sub-queue (``add``, ``remove``, ``change``): their static
  keys, and per signature their sizes and walltimes, which the bulk pass of an EASY cycle
  reads (``gpupool.core.waiting``).

Part of the pure core.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from gpupool.core.decisions import Reason
from gpupool.core.job_state import JobState

#: how a reason names the job whose reservation a job would delay
DELAY = "would delay job "
#: the subject of a "would delay" wait whose message was amended (over budget): a wait
#: signature that names no job, so no cycle ever finds it blocked as it was told
UNNAMED = ""

WaitSig = tuple[tuple[int, ...], str | None]


@dataclass(slots=True, eq=False)
class SigJobs:
    """The jobs of one sub-queue with one ``wait_sig``: how many ask for each accelerator
    count, how many have each walltime, and the shortest walltime (``min_wall``).

    The bulk pass reads only the shortest walltime, so the walltimes are counted and kept
    in a heap with lazy deletion (a value leaves the heap when it reaches the top with no
    job left): a reason that names another reservation's job moves a job between signatures
    a few hundred times a cycle, and a heap push is far cheaper than a sorted insert.
    """

    gpus: dict[int, int] = field(default_factory=dict)
    walls: dict[int, int] = field(default_factory=dict)
    heap: list[int] = field(default_factory=list)
    n: int = 0

    def add_wall(self, wall: int) -> None:
        c = self.walls.get(wall, 0)
        self.walls[wall] = c + 1
        if c == 0:
            heapq.heappush(self.heap, wall)
        self.n += 1

    def remove_wall(self, wall: int) -> None:
        c = self.walls[wall]
        if c == 1:
            del self.walls[wall]
            if len(self.heap) > 2 * len(self.walls) + 16:
                # too many values left behind: rebuild from the live ones
                self.heap = list(self.walls)
                heapq.heapify(self.heap)
        else:
            self.walls[wall] = c - 1
        self.n -= 1

    def min_wall(self) -> int:
        """The shortest walltime among the jobs (at least one job)."""
        heap, walls = self.heap, self.walls
        while heap[0] not in walls:
            heapq.heappop(heap)
        return heap[0]


@dataclass(slots=True, eq=False)
class QueueWaits:
    """The pending jobs of one sub-queue with a ``wait_sig``, for the bulk pass of a cycle:
    their static keys, and their sizes and walltimes per signature."""

    keys: SortedList = field(default_factory=SortedList)
    sigs: dict[WaitSig, SigJobs] = field(default_factory=dict)


class WaitIndex:
    """The pending jobs of one pool state that were told why they wait, per sub-queue."""

    def __init__(self, walltime: Callable[[JobState], int], models_label: Callable[[tuple[int, ...]], str]):
        self._walltime = walltime
        self._models_label = models_label
        #: per sub-queue: its jobs with a ``wait_sig`` (what the bulk pass of a cycle reads)
        self.index: dict[tuple[int, int, int], QueueWaits] = {}

    def signature(self, j: JobState, reason: Reason, subject: str | None, amended: bool) -> WaitSig | None:
        """The signature of a reason a cycle may give again with nothing to say (or None).

        For a pending job (the caller checks). ``subject``: for ``RESOURCES`` the models
        label of the pools the job was told it waits for, for ``RESERVATION`` the id of the
        job holding the reservation. ``amended``: the message carried an over-budget note.
        """
        # the pools a cycle tries for ``j`` when none is blocked (() when not known)
        pools = j.candidates if len(j.spec.stacks) <= 1 else j.usable
        if not pools or subject is None:
            return None
        if reason is Reason.RESOURCES:
            # told it waits for exactly the models of these pools, with nothing appended
            return (pools, None) if not amended and subject == self._models_label(pools) else None
        if reason is Reason.RESERVATION:
            return (pools, UNNAMED if amended else subject)
        return None

    def add(self, j: JobState) -> None:
        """Index a pending job with a ``wait_sig`` in its sub-queue (for the bulk pass)."""
        assert j.wait_sig is not None
        w = self.index.get(j.qkey)
        if w is None:
            w = self.index[j.qkey] = QueueWaits()
        w.keys.add(j.skey)
        self._sig_add(w, j)

    def remove(self, j: JobState) -> None:
        """Take a pending job with a ``wait_sig`` out of its sub-queue's index."""
        assert j.wait_sig is not None
        w = self.index[j.qkey]
        if len(w.keys) == 1:
            del self.index[j.qkey]
            return
        w.keys.remove(j.skey)
        self._sig_remove(w, j)

    def change(self, j: JobState, sig: WaitSig | None) -> None:
        """Set a pending job's ``wait_sig`` and keep the index in step.

        A job that stays indexed under another signature keeps its key in place: only its
        size and walltime move. That is the usual change (a reason that names another
        reservation's job), a few hundred times a cycle at national scale.
        """
        if j.wait_sig is None or sig is None:
            if j.wait_sig is not None:
                self.remove(j)
            j.wait_sig = sig
            if sig is not None:
                self.add(j)
            return
        w = self.index[j.qkey]
        self._sig_remove(w, j)
        j.wait_sig = sig
        self._sig_add(w, j)

    def _sig_add(self, w: QueueWaits, j: JobState) -> None:
        assert j.wait_sig is not None
        sj = w.sigs.get(j.wait_sig)
        if sj is None:
            sj = w.sigs[j.wait_sig] = SigJobs()
        sj.gpus[j.spec.gpus] = sj.gpus.get(j.spec.gpus, 0) + 1
        sj.add_wall(self._walltime(j))

    def _sig_remove(self, w: QueueWaits, j: JobState) -> None:
        assert j.wait_sig is not None
        sj = w.sigs[j.wait_sig]
        if sj.n == 1:
            del w.sigs[j.wait_sig]
            return
        g = j.spec.gpus
        if sj.gpus[g] == 1:
            del sj.gpus[g]
        else:
            sj.gpus[g] -= 1
        sj.remove_wall(self._walltime(j))
