"""Executors: enact the loop's decisions on execution engines and report back as events.

``base`` holds the protocol and event types (ADR 0002), ``worker`` the background loop and
back-off every executor runs on (ADR 0013), ``local`` the process executor for a one-machine
fleet (``podman`` its container jobs), ``gpus`` NVML discovery, telemetry and the local fleet.
"""

from gpupool.service.executors.base import (
    AllocationExited,
    AllocationFailed,
    AllocationStarted,
    Executor,
    ExecutorEvent,
    ExitCause,
    Launch,
)
from gpupool.service.executors.gpus import (
    GpuDevice,
    GpuModelError,
    GpuSample,
    LocalMachine,
    discover_gpus,
    discover_machine,
    local_machine,
    model_for,
    simulated_fleet_machine,
    simulated_machine,
)
from gpupool.service.executors.local import LocalExecutor, log_paths

__all__ = [
    "AllocationExited",
    "AllocationFailed",
    "AllocationStarted",
    "Executor",
    "ExecutorEvent",
    "ExitCause",
    "GpuDevice",
    "GpuModelError",
    "GpuSample",
    "Launch",
    "LocalExecutor",
    "LocalMachine",
    "discover_gpus",
    "discover_machine",
    "local_machine",
    "log_paths",
    "model_for",
    "simulated_fleet_machine",
    "simulated_machine",
]
