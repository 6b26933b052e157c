"""Job arrays: one submission of many like tasks, queued a window at a time.

This module owns ``TaskState`` and ``JobArrays``, the scheduler's record of each array
(``gpupool.core.array_spec``: the task indices and the ``%N`` limit): one byte of state
per task.

Tasks are cheap because most of them are not jobs yet: an array enters the pending queue a
window at a time (its ``%N`` limit less what runs, or ``WINDOW`` tasks without one), since
its tasks are alike (same size, pools and order key but for their index) and a task that
cannot start now means the ones after it cannot either. A task becomes a job (id
``ARRAY_INDEX``, e.g. ``j7_3``) when it enters the window; when tasks start or end the
window is topped up (and, after starts, the cycle runs again so the next ones may start at
once). A 10,000-task array costs the cycle what ``WINDOW`` jobs cost.

As a dependency target (``gpupool.core.dependencies``) an array has started when any task
has, succeeded when every task completed, failed when all ended and one did not complete;
a task is a target of its own.

Part of the pure core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from gpupool.core.array_spec import task_id
from gpupool.core.dependencies import Milestone
from gpupool.core.job import JobSpec

#: tasks of an array without a limit kept in the pending queue at once
WINDOW = 64


class TaskState(IntEnum):
    """One task's state in its array (a byte each)."""

    WAITING = 0  # not queued yet (outside the window)
    QUEUED = 1  # a pending job in the window
    STARTED = 2  # running, or requeued after it ran
    SUCCEEDED = 3
    FAILED = 4  # failed, timed out or was rejected
    CANCELLED = 5


_ENDED = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


@dataclass(slots=True)
class JobArray:
    """One array: its template spec, admission, and each task's state by position."""

    spec: JobSpec
    admitted: tuple[int, tuple[int, ...], int]
    states: bytearray
    #: next position not yet queued (tasks before it are queued, running or ended)
    cursor: int = 0
    queued: int = 0
    running: int = 0
    ended: int = 0
    failed: int = 0
    started_any: bool = False

    @property
    def indices(self) -> tuple[int, ...]:
        assert self.spec.array is not None
        return self.spec.array.indices

    def milestone(self) -> Milestone | None:
        if self.ended == len(self.states):
            return Milestone.FAILED if self.failed else Milestone.SUCCEEDED
        return Milestone.STARTED if self.started_any else None

    def room(self) -> int:
        """Tasks that may join the queue now."""
        assert self.spec.array is not None
        limit = self.spec.array.limit
        want = (limit - self.running - self.queued) if limit else (WINDOW - self.queued)
        return max(0, want)


class JobArrays:
    """The arrays a scheduler holds, and which array each queued or running task is of."""

    __slots__ = ("arrays", "tasks")

    def __init__(self) -> None:
        self.arrays: dict[str, JobArray] = {}
        #: task id -> [array, position, running] for tasks that are jobs now
        self.tasks: dict[str, list[object]] = {}

    def add(self, spec: JobSpec, admitted: tuple[int, tuple[int, ...], int]) -> JobArray:
        assert spec.array is not None
        a = JobArray(spec, admitted, bytearray(len(spec.array.indices)))
        self.arrays[spec.id] = a
        return a

    def restore(
        self,
        spec: JobSpec,
        admitted: tuple[int, tuple[int, ...], int],
        ended: Mapping[int, bool],
        running: Iterable[int],
    ) -> JobArray:
        """An array as it was before a restart: tasks ended (index -> completed) and running
        (already restored as jobs); the rest wait to be queued."""
        a = self.add(spec, admitted)
        pos_of = {i: p for p, i in enumerate(a.indices)}
        for i, ok in ended.items():
            if i in pos_of:
                self._end(a, pos_of[i], TaskState.SUCCEEDED if ok else TaskState.FAILED)
        for i in running:
            p = pos_of[i]
            a.states[p] = TaskState.STARTED
            a.running += 1
            a.started_any = True
            self.tasks[task_id(spec.id, i)] = [a, p, True]
        return a

    def next_tasks(self, a: JobArray) -> list[JobSpec]:
        """The tasks that join the queue now (marked queued), in index order."""
        out: list[JobSpec] = []
        room = a.room()
        states, idx = a.states, a.indices
        while room > 0 and a.cursor < len(states):
            pos = a.cursor
            a.cursor += 1
            if states[pos] != TaskState.WAITING:
                continue  # cancelled before it was queued
            states[pos] = TaskState.QUEUED
            a.queued += 1
            room -= 1
            tid = task_id(a.spec.id, idx[pos])
            self.tasks[tid] = [a, pos, False]
            out.append(dataclasses.replace(a.spec, id=tid, array=None, dependencies=()))
        return out

    def started(self, tid: str) -> tuple[JobArray, bool] | None:
        """A task started: its array, and whether it is the array's first start."""
        got = self.tasks.get(tid)
        if got is None or got[2]:
            return None
        a, pos = got[0], got[1]
        assert isinstance(a, JobArray) and isinstance(pos, int)
        got[2] = True
        a.states[pos] = TaskState.STARTED
        a.queued -= 1
        a.running += 1
        first = not a.started_any
        a.started_any = True
        return a, first

    def requeued(self, tid: str) -> None:
        """A running task was preempted: it waits in the queue again (it has started)."""
        got = self.tasks.get(tid)
        if got is not None and got[2]:
            a = got[0]
            assert isinstance(a, JobArray)
            got[2] = False
            a.running -= 1
            a.queued += 1

    def ended(self, tid: str, state: TaskState) -> JobArray | None:
        """A queued or running task ended (``state``); its array, or None if not a task."""
        got = self.tasks.pop(tid, None)
        if got is None:
            return None
        a, pos, running = got
        assert isinstance(a, JobArray) and isinstance(pos, int)
        if running:
            a.running -= 1
        else:
            a.queued -= 1
        self._end(a, pos, state)
        return a

    def cancel_waiting(self, a: JobArray, pos: int | None = None) -> None:
        """Cancel one task not queued yet (or all of them: ``pos`` None)."""
        positions = range(a.cursor, len(a.states)) if pos is None else (pos,)
        for p in positions:
            if a.states[p] == TaskState.WAITING:
                self._end(a, p, TaskState.CANCELLED)

    def _end(self, a: JobArray, pos: int, state: TaskState) -> None:
        a.states[pos] = state
        a.ended += 1
        if state is not TaskState.SUCCEEDED:
            a.failed += 1

    def find(self, job_id: str) -> tuple[JobArray, int] | None:
        """The array and position of a task id ``ARRAY_INDEX`` of a held array, else None."""
        array_id, sep, index = job_id.rpartition("_")
        a = self.arrays.get(array_id) if sep and index.isdigit() else None
        if a is None:
            return None
        i = int(index)
        idx = a.indices
        lo, hi = 0, len(idx)
        while lo < hi:  # bisect: indices ascend
            mid = (lo + hi) // 2
            if idx[mid] < i:
                lo = mid + 1
            else:
                hi = mid
        return (a, lo) if lo < len(idx) and idx[lo] == i else None

    @staticmethod
    def task_milestone(a: JobArray, pos: int) -> Milestone | None:
        """The milestone of the task at ``pos`` of ``a``."""
        st = a.states[pos]
        if st in _ENDED:
            return Milestone.SUCCEEDED if st == TaskState.SUCCEEDED else Milestone.FAILED
        return Milestone.STARTED if st == TaskState.STARTED else None

    def done(self, a: JobArray) -> bool:
        return a.ended == len(a.states)

    def forget(self, a: JobArray) -> None:
        self.arrays.pop(a.spec.id, None)
