"""Where an allocation's output goes: the file names of its stdout and stderr.

This module owns ``log_paths`` (and ``file_stem``, the allocation id made safe as a file
name). The executors write these files and the API's ``/logs`` route reads them; it lives
apart from both so that the API does not import an executor (the layer contracts in
``tests/architecture``).
"""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._#@+=-]")


def file_stem(allocation_id: str) -> str:
    """An allocation id as a file name stem that stays inside its directory."""
    # Allocation ids come from the core ("job#attempt") but job ids come from users: quote
    # anything that could leave the directory or clash with the state files' suffixes.
    stem = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", allocation_id)
    return stem if not stem.startswith(".") else "%2E" + stem[1:]


def log_paths(log_dir: Path, allocation_id: str) -> tuple[Path, Path]:
    """Where an allocation's stdout and stderr go (the service's ``/logs`` reads these)."""
    stem = file_stem(allocation_id)
    return log_dir / f"{stem}.out", log_dir / f"{stem}.err"
