"""The trace files shipped in ``gpupool/data/traces`` (described in its README.md).

This module owns finding them by name; reading them is the format readers' job.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_trace(name: str) -> Path:
    """Path of a trace file shipped in ``gpupool/data/traces``, e.g. ``"philly/philly_jobs.csv"``.

    Raises ``FileNotFoundError`` if there is no such file.
    """
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts or any(p == ".." for p in parts):
        raise FileNotFoundError(f"not a shipped trace name: {name!r}")
    resource = resources.files("gpupool").joinpath("data", "traces", *parts)
    # The package is installed as plain files (setuptools package-data), so the resource is
    # a real path; a zipped install would need importlib.resources.as_file instead.
    if not isinstance(resource, Path) or not resource.is_file():
        raise FileNotFoundError(f"no shipped trace {name!r} (looked for {resource})")
    return resource
