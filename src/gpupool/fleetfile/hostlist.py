"""Slurm's hostlist notation: ``n[1-3,5],gpu07`` names nodes n1, n2, n3, n5 and gpu07.

This module owns ``expand_hostlist``. Both the fleet import from a ``slurm.conf``
(``gpupool.fleetfile.slurm_inventory``) and the Slurm executor's client read node lists in
this notation; it lives here, below both, so that reading a fleet file never imports the
service (the layer contracts in ``tests/architecture``).
"""

from __future__ import annotations

import re

_NODE_RANGE = re.compile(r"([^,\[]+)(?:\[([^\]]+)\])?")


def expand_hostlist(text: str) -> tuple[str, ...]:
    """``n[1-3,5],gpu07`` -> ``n1 n2 n3 n5 gpu07`` (Slurm's hostlist notation)."""
    out: list[str] = []
    for m in _NODE_RANGE.finditer(text.replace(" ", "")):
        prefix, body = m.group(1).lstrip(","), m.group(2)
        if not prefix:
            continue
        if body is None:
            out.append(prefix)
            continue
        for part in body.split(","):
            lo, _, hi = part.partition("-")
            if not hi:
                out.append(prefix + lo)
                continue
            width = len(lo) if lo.startswith("0") else 0
            out.extend(prefix + str(i).zfill(width) for i in range(int(lo), int(hi) + 1))
    return tuple(out)
