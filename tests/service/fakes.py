"""An in-test executor that keeps the executor protocol honestly, and a settable clock."""

from __future__ import annotations

import threading

from gpupool.service.executors.base import (
    AllocationExited,
    AllocationStarted,
    ExecutorEvent,
    Launch,
)


class Clock:
    """Milliseconds that move only when told."""

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


class RecordingExecutor:
    """Records launches; reports exits when told; idempotent by allocation id."""

    backend = "local"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.launches: list[Launch] = []
        self.terminated: list[str] = []
        self.live: dict[str, Launch] = {}
        self._seen: set[str] = set()
        self._events: list[ExecutorEvent] = []
        self._lock = threading.Lock()

    def launch(self, launch: Launch) -> None:
        with self._lock:
            if launch.allocation_id in self._seen:
                return
            self._seen.add(launch.allocation_id)
            self.launches.append(launch)
            self.live[launch.allocation_id] = launch
            self._events.append(AllocationStarted(launch.allocation_id, self.clock()))

    def terminate(self, allocation_id: str, grace_s: float) -> None:
        with self._lock:
            if self.live.pop(allocation_id, None) is not None:
                self.terminated.append(allocation_id)
                self._events.append(AllocationExited(allocation_id, self.clock(), None, 15, "terminated"))

    def finish(self, allocation_id: str, exit_code: int = 0) -> None:
        """The allocation's process exits on its own."""
        with self._lock:
            if self.live.pop(allocation_id, None) is None:
                raise KeyError(allocation_id)
            self._events.append(AllocationExited(allocation_id, self.clock(), exit_code))

    def poll(self) -> list[ExecutorEvent]:
        with self._lock:
            out, self._events = self._events, []
        return out

    def allocations(self) -> set[str]:
        with self._lock:
            return set(self.live)
