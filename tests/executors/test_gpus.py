"""GPU discovery without NVML, device-name mapping, and the local one-node fleet."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from gpupool.core.fleet import FleetError
from gpupool.fleetfile import load_catalogue
from gpupool.service.executors import (
    GpuModelError,
    discover_gpus,
    discover_machine,
    local_machine,
    model_for,
    simulated_fleet_machine,
    simulated_machine,
)
from gpupool.service.executors.gpus import GpuDevice, LocalMachine, NvmlSampler, _machine, visible_devices
from tests.builders import fleet as build_fleet


def _nvml_works() -> bool:
    if importlib.util.find_spec("pynvml") is None:
        return False
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


NO_NVML = not _nvml_works()


@pytest.mark.skipif(not NO_NVML, reason="this machine has a working NVML")
def test_a_machine_without_nvml_has_no_gpus() -> None:
    # nvidia-ml-py is installed, but its library is not: NVMLError_LibraryNotFound is "no GPUs".
    assert importlib.util.find_spec("pynvml") is not None
    assert discover_gpus() == []
    machine = discover_machine(node_name="laptop")
    assert machine.nodes == () and machine.gpus == 0 and not machine.simulated
    with pytest.raises(FleetError, match="no GPU that NVML can see; serve simulated GPUs"):
        machine.fleet()
    assert local_machine(node_name="laptop") == machine
    assert local_machine(3, node_name="laptop").fleet().total_gpus == 3
    sampler = NvmlSampler()
    assert not sampler.available
    sampler.close()


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200"),
        ("NVIDIA B200", "B200"),
        ("NVIDIA GB200", "GB200"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX-PRO-6000"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("Tesla P100-PCIE-16GB", "P100"),
        ("Tesla K80", "K80"),
    ],
)
def test_nvml_names_map_to_catalogue_models(name: str, model: str) -> None:
    assert model_for(name) == model


def test_an_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(
        GpuModelError, match=r"'NVIDIA GeForce RTX 4090' matches no accelerator model.*--gpu-model"
    ):
        model_for("NVIDIA GeForce RTX 4090")
    with pytest.raises(GpuModelError, match="unknown accelerator model 'X1'"):
        discover_gpus(model="X1")


def test_a_simulated_machine_is_a_one_node_local_fleet() -> None:
    machine = simulated_machine(4, model="H200", node_name="ws")
    assert machine.simulated and machine.gpus == 4
    devs = machine.devices("ws")
    assert devs is not None and [d.visible_id for d in devs] == ["0", "1", "2", "3"]
    assert machine.devices("other") is None
    f = machine.fleet()
    assert [(n.name, n.model, n.gpus) for n in f.nodes] == [("ws", "H200", 4)]
    assert [(c.name, c.backend) for c in f.clusters] == [("local", "local")]
    assert f.total_gpus == 4 and f.catalogue is load_catalogue()
    with pytest.raises(ValueError, match=">= 1"):
        simulated_machine(0)


def test_a_machine_with_two_models_becomes_one_node_per_model() -> None:
    devs = [
        GpuDevice(0, "GPU-a", "NVIDIA H100 80GB HBM3", "H100", 81559),
        GpuDevice(1, "GPU-b", "NVIDIA H200", "H200", 143771),
        GpuDevice(2, "GPU-c", "NVIDIA H100 80GB HBM3", "H100", 81559),
    ]
    machine = _machine(devs, "srv", simulated=False)
    assert [(n, [d.visible_id for d in ds]) for n, ds in machine.nodes] == [
        ("srv-H100", ["GPU-a", "GPU-c"]),
        ("srv-H200", ["GPU-b"]),
    ]
    assert sorted((n.name, n.gpus) for n in machine.fleet().nodes) == [("srv-H100", 2), ("srv-H200", 1)]
    h100 = machine.devices("srv-H100")
    assert h100 is not None and visible_devices(h100) == "GPU-a,GPU-c"


def test_a_simulated_machine_can_stand_in_for_a_preset_fleet() -> None:
    f = build_fleet(racks=1, nodes_per_rack=3, gpus=8, model="GB200")
    machine = simulated_fleet_machine(f)
    assert machine.gpus == 24 and isinstance(machine, LocalMachine)
    devs = machine.devices(f.nodes[2].name)
    assert devs is not None and len(devs) == 8 and devs[0].model == "GB200" and devs[0].simulated
    assert machine.devices("not-a-node") is None


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    from tests.executors import fake_pynvml

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    fake_pynvml.calls.clear()
    saved = list(fake_pynvml.DEVICES)
    yield fake_pynvml
    fake_pynvml.DEVICES[:] = saved
    assert fake_pynvml.inits == 0, "every nvmlInit needs its nvmlShutdown"


def test_discovery_through_nvml(fake_nvml: ModuleType) -> None:
    devs = discover_gpus()
    assert [(d.index, d.visible_id, d.name, d.model, d.memory_mib) for d in devs] == [
        (0, "GPU-aaaaaaaa-0000", "NVIDIA H100 80GB HBM3", "H100", 81559),
        (1, "GPU-bbbbbbbb-1111", "NVIDIA H100 80GB HBM3", "H100", 81559),
    ]
    machine = discover_machine(node_name="gpu01")
    assert machine.fleet().summary()["models"] == {"H100": 2} and not machine.simulated
    fake_nvml.DEVICES.append(("NVIDIA GeForce RTX 4090", "GPU-cccc", 24564))
    with pytest.raises(GpuModelError, match="RTX 4090"):
        discover_gpus()
    assert [d.model for d in discover_gpus(model="RTX-PRO-6000")] == ["RTX-PRO-6000"] * 3


def test_telemetry_through_nvml_by_uuid(fake_nvml: ModuleType) -> None:
    sampler = NvmlSampler()
    assert sampler.available
    dev = discover_gpus()[1]
    s = sampler.sample(dev, 123)
    assert s is not None and (s.at_ms, s.device, s.utilization_pct, s.memory_used_mib) == (
        123,
        "GPU-bbbbbbbb-1111",
        51,
        1001,
    )
    gone = GpuDevice(5, "GPU-gone", "NVIDIA H100 80GB HBM3", "H100", 81559)
    assert sampler.sample(gone, 124) is None  # a device NVML no longer knows: no sample, no crash
    sampler.close()
    assert sampler.sample(dev, 125) is None
