"""The fraction options of ``gpupool submit``: ``--mig``, ``--gpu-fraction``, ``--gpu-memory``.

This module owns turning those options into the fields of a job request (``mig``,
``mig_count``, ``gpu_fraction``, ``gpu_memory_gib``); ValueError names the option that is
wrong. The server checks the rest (which models offer the profile, may be shared).
"""

from __future__ import annotations

import re
from typing import Any

from gpupool.core.mig import parse_mig_request

_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(gib|gb|g|mib|mb|m)?\s*$", re.IGNORECASE)


def parse_memory_gib(text: str) -> float:
    """``20GiB``, ``20G``, ``20`` -> 20.0; ``512MiB`` -> 0.5 (GB and GiB are taken alike,
    as ``nvidia-smi`` and the MIG profile names do)."""
    m = _MEMORY.match(text)
    if m is None:
        raise ValueError(f"--gpu-memory: {text!r} is not a size (e.g. 20GiB, 512MiB)")
    value = float(m.group(1))
    unit = (m.group(2) or "gib").lower()
    return value / 1024 if unit.startswith("m") else value


def fraction_request(mig: str | None, gpu_fraction: float | None, gpu_memory: str | None) -> dict[str, Any]:
    """The request fields for the options given (empty for none)."""
    out: dict[str, Any] = {}
    if mig is not None:
        try:
            count, profile = parse_mig_request(mig)
        except ValueError as e:
            raise ValueError(f"--mig: {e}") from None
        out.update(mig=profile, mig_count=count)
    if gpu_fraction is not None:
        if not 0 < gpu_fraction <= 1:
            raise ValueError(f"--gpu-fraction: must be in (0, 1], got {gpu_fraction:g}")
        out["gpu_fraction"] = gpu_fraction
    if gpu_memory is not None:
        out["gpu_memory_gib"] = parse_memory_gib(gpu_memory)
    return out
