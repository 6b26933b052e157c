"""How each backend names a fraction of an accelerator: MIG devices, GRES, resources, MPS.

This module owns the small pure functions the executors call for a job that holds a MIG
instance or a share of a GPU (no executor's worker loop lives here):

* ``mig_devices``: the MIG instances of this machine as NVML lists them (a parent GPU's
  ``nvmlDeviceGetMigDeviceHandleByIndex`` slots, each with its ``MIG-...`` UUID and profile),
  and ``cuda_visible_devices``, the ``CUDA_VISIBLE_DEVICES`` that pins a job to instances;
* ``slurm_gres``: the GRES of MIG slices on Slurm (``gpu:1g.10gb:2``: NVIDIA's
  ``AutoDetect=nvml`` names MIG GRES types by profile) or of a shared GPU
  (``shard:N``, Slurm's GPU sharding, N of ``shards_per_gpu``);
* ``k8s_resources``: the extended resources of the NVIDIA device plugin with the
  ``mixed`` MIG strategy (``nvidia.com/mig-1g.10gb``), or a time-sliced ``nvidia.com/gpu``
  replica;
* ``mps_env``: the MPS limits that enforce a share where MPS runs
  (``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``, ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``). Under plain
  time-slicing nothing enforces a share: the scheduler's accounting is the only limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_PROFILE = re.compile(r"MIG\s+([0-9]+g\.[0-9]+gb(?:\+me)?)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MigDevice:
    """One MIG instance: its parent GPU's UUID, its own ``MIG-...`` UUID, its profile."""

    parent_uuid: str
    uuid: str
    profile: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def mig_devices(nvml: Any) -> list[MigDevice]:
    """The MIG instances of every GPU whose MIG mode is on (``nvml``: the pynvml module,
    initialised); an empty list where no GPU has MIG enabled."""
    out: list[MigDevice] = []
    for i in range(nvml.nvmlDeviceGetCount()):
        gpu = nvml.nvmlDeviceGetHandleByIndex(i)
        try:
            current, _pending = nvml.nvmlDeviceGetMigMode(gpu)
        except nvml.NVMLError:
            continue  # not MIG-capable (NVML_ERROR_NOT_SUPPORTED)
        if not current:
            continue
        parent = _text(nvml.nvmlDeviceGetUUID(gpu))
        for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(gpu)):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, slot)
            except nvml.NVMLError:
                continue  # an empty slot: no instance there
            m = _PROFILE.search(_text(nvml.nvmlDeviceGetName(mig)))
            out.append(MigDevice(parent, _text(nvml.nvmlDeviceGetUUID(mig)), m.group(1) if m else ""))
    return out


def cuda_visible_devices(devices: list[MigDevice]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for these instances (CUDA takes MIG UUIDs there)."""
    return ",".join(d.uuid for d in devices)


def slurm_gres(mig: str = "", mig_count: int = 1, gpu_fraction: float = 0.0, shards_per_gpu: int = 0) -> str:
    """The ``--gres`` of a fraction: ``gpu:<profile>:<count>`` for MIG slices,
    ``shard:<n>`` for a share on a cluster configured with ``shards_per_gpu`` shards per GPU."""
    if mig:
        return f"gpu:{mig}:{mig_count}"
    if gpu_fraction > 0 and shards_per_gpu > 0:
        return f"shard:{max(1, math.ceil(gpu_fraction * shards_per_gpu - 1e-9))}"
    return "gpu:1"


def k8s_resources(mig: str = "", mig_count: int = 1) -> dict[str, str]:
    """Pod resource limits: MIG slices under the device plugin's ``mixed`` strategy, else one
    ``nvidia.com/gpu`` (a time-sliced replica where the plugin shares GPUs)."""
    if mig:
        return {f"nvidia.com/mig-{mig}": str(mig_count)}
    return {"nvidia.com/gpu": "1"}


def mps_env(gpu_fraction: float, memory_mib: int, device: int = 0) -> dict[str, str]:
    """The MPS client limits of a share: active-thread percentage and pinned memory."""
    out = {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(max(1, min(100, round(gpu_fraction * 100))))}
    if memory_mib > 0:
        out["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"{device}={memory_mib}M"
    return out
