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
    if h >= 1000:  # a MIG device handle (see the MIG calls at the end)
        parent, slot = divmod(h - 1000, 10)
        profile = dict(MIG_ENABLED[parent])[slot]
        return f"{DEVICES[parent][0]} MIG {profile}".encode()
    return DEVICES[h][0].encode()  # old releases answer bytes


def nvmlDeviceGetUUID(h: int) -> str:
    if h >= 1000:
        parent, slot = divmod(h - 1000, 10)
        return f"MIG-{DEVICES[parent][1][4:]}-{slot}"
    return DEVICES[h][1]


def nvmlDeviceGetMemoryInfo(h: int) -> SimpleNamespace:
    calls.append(f"memory {h}")
    return SimpleNamespace(total=DEVICES[h][2] << 20, used=(1000 + h) << 20, free=0)


def nvmlDeviceGetUtilizationRates(h: int) -> SimpleNamespace:
    calls.append(f"utilization {h}")
    return SimpleNamespace(gpu=50 + h, memory=10)


# MIG: tests set MIG_ENABLED to {device index: [(slot, profile), ...]}; NVML answers
# NotSupported for MIG mode on a device that is not listed, as on a GPU without MIG.
MIG_ENABLED: dict[int, list[tuple[int, str]]] = {}


class NVMLError_NotSupported(NVMLError):
    pass


def nvmlDeviceGetMigMode(h: int) -> tuple[int, int]:
    if h >= 1000:
        raise NVMLError_NotSupported("a MIG device has no MIG mode")
    if h not in MIG_ENABLED:
        raise NVMLError_NotSupported(DEVICES[h][0])
    return (1, 1)


def nvmlDeviceGetMaxMigDeviceCount(h: int) -> int:
    return 7


def nvmlDeviceGetMigDeviceHandleByIndex(h: int, slot: int) -> int:
    for s, _ in MIG_ENABLED.get(h, []):
        if s == slot:
            return 1000 + h * 10 + slot
    raise NVMLError_NotFound(f"no MIG device in slot {slot}")
