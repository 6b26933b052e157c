"""``DryRunExecutor``: the executor of ``GPUPOOL_EXECUTOR=none``, which runs nothing.

A dry-run pool makes and records every decision but starts no process: a launched allocation
is "running" until the core stops it (preemption, cancel), and nothing ever exits on its own.
The API load benchmark uses it, so that it measures the service and not process spawning.
It keeps the executor protocol: idempotent by allocation id, never blocks, and names what it
"runs" for reconcile.
"""

from __future__ import annotations

import threading

from gpupool.service.executors.base import ExecutorEvent, Launch


class DryRunExecutor:
    """Accepts launches and terminations, runs nothing, reports nothing."""

    backend = "none"

    def __init__(self) -> None:
        self._live: set[str] = set()
        self._lock = threading.Lock()

    def launch(self, launch: Launch) -> None:
        with self._lock:
            self._live.add(launch.allocation_id)

    def terminate(self, allocation_id: str, grace_s: float) -> None:
        with self._lock:
            self._live.discard(allocation_id)

    def poll(self) -> list[ExecutorEvent]:
        return []

    def allocations(self) -> set[str]:
        with self._lock:
            return set(self._live)
