"""MIG devices from NVML (through the NVML stand-in), and each backend's names of a fraction."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from gpupool.service.executors.fraction_devices import (
    cuda_visible_devices,
    k8s_resources,
    mig_devices,
    mps_env,
    slurm_gres,
)
from tests.executors import fake_pynvml


@pytest.fixture
def nvml() -> Iterator[ModuleType]:
    fake_pynvml.MIG_ENABLED.clear()
    yield fake_pynvml
    fake_pynvml.MIG_ENABLED.clear()


def test_no_mig_is_an_empty_list(nvml: ModuleType) -> None:
    assert mig_devices(nvml) == []


def test_mig_instances_are_listed_with_their_uuid_and_profile(nvml: ModuleType) -> None:
    fake_pynvml.MIG_ENABLED[1] = [(0, "3g.40gb"), (3, "1g.10gb")]
    got = mig_devices(nvml)
    assert [(d.parent_uuid, d.uuid, d.profile) for d in got] == [
        ("GPU-bbbbbbbb-1111", "MIG-bbbbbbbb-1111-0", "3g.40gb"),
        ("GPU-bbbbbbbb-1111", "MIG-bbbbbbbb-1111-3", "1g.10gb"),
    ]
    pinned = [d for d in got if d.profile == "1g.10gb"]
    assert cuda_visible_devices(pinned) == "MIG-bbbbbbbb-1111-3"


def test_backend_names_of_a_fraction() -> None:
    assert slurm_gres("1g.10gb", 2) == "gpu:1g.10gb:2"
    assert slurm_gres(gpu_fraction=0.25, shards_per_gpu=8) == "shard:2"
    assert slurm_gres(gpu_fraction=0.3, shards_per_gpu=8) == "shard:3"
    assert slurm_gres() == "gpu:1"
    assert k8s_resources("2g.20gb") == {"nvidia.com/mig-2g.20gb": "1"}
    assert k8s_resources() == {"nvidia.com/gpu": "1"}
    assert mps_env(0.25, 20480) == {
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=20480M",
    }
