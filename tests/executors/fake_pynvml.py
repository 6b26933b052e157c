"""A stand-in for ``pynvml`` on a machine without NVIDIA's library: two H100s and an RTX 4090.

Only the calls gpupool makes exist. Tests put it in ``sys.modules["pynvml"]`` to drive the
NVML code paths (discovery, UUID handles, telemetry) that a GPU-less machine cannot reach;
``scripts/gpu_check.sh`` runs the same paths against the real library on a GPU machine.
"""

from __future__ import annotations

from types import SimpleNamespace

DEVICES = [
    ("NVIDIA H100 80GB HBM3", "GPU-aaaaaaaa-0000", 81559),
    ("NVIDIA H100 80GB HBM3", "GPU-bbbbbbbb-1111", 81559),
]
calls: list[str] = []
inits = 0


class NVMLError(Exception):
    pass


class NVMLError_NotFound(NVMLError):
    pass


def nvmlInit() -> None:
    global inits
    inits += 1
    calls.append("init")


def nvmlShutdown() -> None:
    global inits
    inits -= 1
    calls.append("shutdown")


def nvmlDeviceGetCount() -> int:
    return len(DEVICES)


def nvmlDeviceGetHandleByIndex(i: int) -> int:
    return i


def nvmlDeviceGetHandleByUUID(uuid: str) -> int:
    for i, (_, u, _) in enumerate(DEVICES):
        if u == uuid:
            return i
    raise NVMLError_NotFound(uuid)


def nvmlDeviceGetName(h: int) -> bytes:
    return DEVICES[h][0].encode()  # old releases answer bytes


def nvmlDeviceGetUUID(h: int) -> str:
    return DEVICES[h][1]


def nvmlDeviceGetMemoryInfo(h: int) -> SimpleNamespace:
    calls.append(f"memory {h}")
    return SimpleNamespace(total=DEVICES[h][2] << 20, used=(1000 + h) << 20, free=0)


def nvmlDeviceGetUtilizationRates(h: int) -> SimpleNamespace:
    calls.append(f"utilization {h}")
    return SimpleNamespace(gpu=50 + h, memory=10)
