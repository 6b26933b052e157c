"""This machine's GPUs: NVML discovery, catalogue models, telemetry, and a local one-node fleet.

This module owns what ``gpupool serve`` on one machine needs to know about its accelerators:

- ``discover_gpus`` asks NVML (``nvidia-ml-py``) for the devices. A machine without the NVIDIA
  driver (NVML's library is missing) or without devices has no GPUs: an empty list, not an
  error, so the same service runs on a laptop with ``--simulated-gpus``.
- ``model_for`` maps an NVML device name ("NVIDIA H100 80GB HBM3") to a catalogue model
  ("H100"); an unknown name is a ``GpuModelError`` unless the operator names the model.
- ``LocalMachine`` is the discovered (or simulated) machine: node name -> devices. It builds the
  single-node ``Fleet`` (through the core's ``FleetBuilder`` and the shipped catalogue) and
  tells the local executor which device an accelerator id of a placement is.
- ``NvmlSampler`` reads utilisation and memory of a device for the executor's telemetry.

It must not schedule or start anything; ``local`` runs the processes.
"""

from __future__ import annotations

import importlib
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gpupool.core.accelerator import Catalogue
from gpupool.core.fleet import Fleet, FleetBuilder, FleetError
from gpupool.core.node_fractions import NodeFractions
from gpupool.fleetfile import load_catalogue

__all__ = [
    "GpuDevice",
    "GpuModelError",
    "GpuSample",
    "GpuSampler",
    "LocalMachine",
    "NvmlSampler",
    "discover_gpus",
    "discover_machine",
    "local_machine",
    "model_for",
    "simulated_fleet_machine",
    "simulated_machine",
    "visible_devices",
]

#: NVML device names -> catalogue models. Order matters: the first match wins, so "GB200" is
#: tried before "B200" and "H200" before "H100". Variants that the catalogue does not tell
#: apart (H100 PCIe/NVL, A100 40 GB) map to the nearest model; pass ``model=`` to override.
NAME_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), m)
    for p, m in (
        (r"\bGB200\b", "GB200"),
        (r"\bB200\b", "B200"),
        (r"\bH200\b", "H200"),
        (r"\bH100\b", "H100"),
        (r"\bA100\b", "A100"),
        (r"\bRTX PRO 6000\b", "RTX-PRO-6000"),
        (r"\bV100\b", "V100"),
        (r"\bP100\b", "P100"),
        (r"\bK80\b", "K80"),
    )
)


class GpuModelError(ValueError):
    """A device whose NVML name maps to no catalogue model (the message says what to do)."""


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One accelerator of this machine.

    ``visible_id`` is what ``CUDA_VISIBLE_DEVICES`` gets: the device UUID for a real GPU,
    because CUDA numbers devices fastest-first by default while NVML numbers them in PCI order,
    so an index could pin a job to the wrong GPU; for a simulated GPU it is just the number.
    """

    index: int
    visible_id: str
    name: str
    model: str
    memory_mib: int
    simulated: bool = False


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One telemetry reading of one device."""

    at_ms: int
    device: str  # visible_id
    utilization_pct: int
    memory_used_mib: int


class GpuSampler(Protocol):
    """Reads a device's utilisation and memory (NVML on a real machine)."""

    def sample(self, device: GpuDevice, at_ms: int) -> GpuSample | None: ...

    def close(self) -> None: ...


def model_for(name: str, catalogue: Catalogue | None = None) -> str:
    """The catalogue model of an NVML device name; ``GpuModelError`` if none matches."""
    cat = catalogue if catalogue is not None else load_catalogue()
    for pattern, model in NAME_RULES:
        if pattern.search(name) and model in cat:
            return model
    raise GpuModelError(
        f"GPU {name!r} matches no accelerator model in the catalogue "
        f"(known: {', '.join(cat.names())}); name one with --gpu-model"
    )


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or ``None`` where NVML cannot be used."""
    try:
        # Imported by name: nvidia-ml-py ships no type information, and ModuleType is Any-typed.
        pynvml = importlib.import_module("pynvml")
    except ImportError:  # nvidia-ml-py is a dependency, but a trimmed install may lack it
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        # NVMLError_LibraryNotFound (no driver), DriverNotLoaded, NoPermission...: all mean
        # "this process cannot see GPUs", which is what a GPU-less machine is.
        return None
    return pynvml


def _text(value: str | bytes) -> str:
    # Old nvidia-ml-py releases return bytes, newer ones str.
    return value.decode() if isinstance(value, bytes) else value


def discover_gpus(catalogue: Catalogue | None = None, model: str | None = None) -> list[GpuDevice]:
    """The NVIDIA GPUs NVML sees, in NVML order; ``[]`` without NVML or devices.

    ``model`` names the catalogue model for every device instead of mapping their names.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    if model is not None and model not in cat:
        raise GpuModelError(f"unknown accelerator model {model!r} (known: {', '.join(cat.names())})")
    nvml = _nvml()
    if nvml is None:
        return []
    try:
        out: list[GpuDevice] = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = _text(nvml.nvmlDeviceGetName(handle))
            out.append(
                GpuDevice(
                    index=i,
                    visible_id=_text(nvml.nvmlDeviceGetUUID(handle)),
                    name=name,
                    model=model if model is not None else model_for(name, cat),
                    memory_mib=int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // (1 << 20),
                )
            )
        return out
    finally:
        nvml.nvmlShutdown()


def _hostname() -> str:
    return socket.gethostname().split(".")[0] or "localhost"


@dataclass(frozen=True, slots=True)
class LocalMachine:
    """This machine as a fleet of nodes (one per GPU model; usually exactly one node).

    ``nodes`` maps a node name to its devices; accelerator id ``i`` of a placement on that node
    is ``nodes[name][i]``. ``stands_in_for``: a simulated machine on which every node of a
    (preset) fleet runs, each with its own pretend accelerators, so the live service can serve
    ``demo`` or ``korea-2025`` on a laptop.
    """

    nodes: tuple[tuple[str, tuple[GpuDevice, ...]], ...]
    simulated: bool = False
    stands_in_for: Fleet | None = None

    @property
    def gpus(self) -> int:
        if self.stands_in_for is not None:
            return self.stands_in_for.total_gpus
        return sum(len(devs) for _, devs in self.nodes)

    def devices(self, node: str) -> tuple[GpuDevice, ...] | None:
        """The devices of ``node`` (``None`` if this machine has no such node)."""
        for name, devs in self.nodes:
            if name == node:
                return devs
        fleet = self.stands_in_for
        if fleet is None or node not in fleet.node_by_name:
            return None
        # Made on demand: a national fleet has hundreds of thousands of accelerators.
        n = fleet.nodes[fleet.node_by_name[node]]
        return _pretend(n.model, n.gpus, fleet.catalogue)

    def fleet(self, catalogue: Catalogue | None = None, name: str = "local") -> Fleet:
        """A one-site, one-cluster fleet of this machine's nodes, bound to the local backend."""
        if not self.nodes:
            raise FleetError("this machine has no GPU that NVML can see; serve simulated GPUs instead")
        cat = catalogue if catalogue is not None else load_catalogue()
        b = FleetBuilder(name, cat, description=f"this machine ({'simulated' if self.simulated else 'NVML'})")
        b.add_site("local")
        cluster = b.add_cluster("local", "local", backend="local")
        rack = b.add_rack(b.add_block(cluster, "local"), "local")
        for node, devs in self.nodes:
            b.add_nodes(rack, 1, devs[0].model, len(devs), [node])
            if cat[devs[0].model].sharing:
                # a model that may be shared is, here: its jobs get the same device (plain
                # time-slicing: the scheduler's accounting is the only limit, ADR 0016)
                b.set_fractions([node], NodeFractions(shared=True))
        return b.build()


def _machine(devices: Iterable[GpuDevice], node_name: str | None, simulated: bool) -> LocalMachine:
    host = node_name or _hostname()
    by_model: dict[str, list[GpuDevice]] = {}
    for d in devices:
        by_model.setdefault(d.model, []).append(d)
    if len(by_model) <= 1:
        nodes = tuple((host, tuple(devs)) for devs in by_model.values())
    else:
        # A core node holds one model, so a mixed machine becomes one node per model.
        nodes = tuple((f"{host}-{m}", tuple(devs)) for m, devs in by_model.items())
    return LocalMachine(nodes=nodes, simulated=simulated)


def discover_machine(
    catalogue: Catalogue | None = None, model: str | None = None, node_name: str | None = None
) -> LocalMachine:
    """This machine as NVML sees it (no nodes where NVML finds no GPUs)."""
    return _machine(discover_gpus(catalogue, model), node_name, simulated=False)


def _pretend(model: str, gpus: int, catalogue: Catalogue) -> tuple[GpuDevice, ...]:
    memory_mib = catalogue[model].memory_gib * 1024
    return tuple(
        GpuDevice(i, str(i), f"simulated {model}", model, memory_mib, simulated=True) for i in range(gpus)
    )


def simulated_machine(
    gpus: int, model: str = "H100", node_name: str | None = None, catalogue: Catalogue | None = None
) -> LocalMachine:
    """A machine with ``gpus`` pretend accelerators of ``model``: ids are just numbers."""
    if gpus < 1:
        raise ValueError(f"simulated GPUs must be >= 1, got {gpus}")
    cat = catalogue if catalogue is not None else load_catalogue()
    if model not in cat:
        raise GpuModelError(f"unknown accelerator model {model!r} (known: {', '.join(cat.names())})")
    return _machine(_pretend(model, gpus, cat), node_name, simulated=True)


def local_machine(
    simulated_gpus: int = 0,
    model: str | None = None,
    node_name: str | None = None,
    catalogue: Catalogue | None = None,
) -> LocalMachine:
    """The machine ``gpupool serve`` runs on: ``simulated_gpus`` pretend ones, else NVML's.

    ``model`` names the catalogue model (default: mapped from the device names; ``H100`` for
    simulated GPUs). Its ``fleet()`` is the one-node local fleet; a machine where NVML finds
    no GPU has no fleet (``FleetError`` says to simulate instead).
    """
    if simulated_gpus:
        return simulated_machine(simulated_gpus, model or "H100", node_name, catalogue)
    return discover_machine(catalogue, model, node_name)


def simulated_fleet_machine(fleet: Fleet) -> LocalMachine:
    """This machine pretending to be every node of ``fleet`` (their accelerators are numbers)."""
    return LocalMachine(nodes=(), simulated=True, stands_in_for=fleet)


class NvmlSampler:
    """Telemetry from NVML; holds one NVML session open until ``close``."""

    def __init__(self) -> None:
        self._nvml = _nvml()
        self._handles: dict[str, Any] = {}

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def sample(self, device: GpuDevice, at_ms: int) -> GpuSample | None:
        nvml = self._nvml
        if nvml is None or device.simulated:
            return None
        try:
            handle = self._handles.get(device.visible_id)
            if handle is None:
                handle = nvml.nvmlDeviceGetHandleByUUID(device.visible_id)
                self._handles[device.visible_id] = handle
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        except nvml.NVMLError:
            return None  # a device that fell off the bus reads as "no sample", not a crash
        return GpuSample(at_ms, device.visible_id, int(util.gpu), int(mem.used) // (1 << 20))

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None
            self._handles.clear()


def visible_devices(devices: Sequence[GpuDevice]) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for ``devices`` (empty hides every GPU)."""
    return ",".join(d.visible_id for d in devices)
