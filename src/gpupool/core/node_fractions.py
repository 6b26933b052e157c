"""How an operator lets a node's accelerators be cut: whole, shared, MIG-partitioned.

This module owns ``NodeFractions``, the per-node rule the fleet file sets (``fractions:`` of
a node group): whether its GPUs may be shared by time-slicing/MPS, and whether they are
MIG-partitioned by a fixed layout the operator created or partitioned on demand by the
scheduler among the model's profiles (NVIDIA's "dynamic MIG", as KAI-Scheduler and Run:ai
do). A node without a rule is whole-GPU only, as before fractions existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gpupool.core.mig import MigInstance


class MigMode(Enum):
    """``NONE``: no MIG; ``FIXED``: every GPU carries ``layout``; ``DYNAMIC``: the scheduler
    creates instances on idle or partitioned GPUs as jobs need them."""

    NONE = "none"
    FIXED = "fixed"
    DYNAMIC = "dynamic"


@dataclass(frozen=True, slots=True)
class NodeFractions:
    """The fraction rule of one node (see the module docstring)."""

    shared: bool = False
    mig: MigMode = MigMode.NONE
    layout: tuple[MigInstance, ...] = ()


#: the rule of a node the fleet file says nothing about
WHOLE_ONLY = NodeFractions()
