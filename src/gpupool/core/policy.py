"""Scheduling policies: the public names of the registry in ``gpupool.core.policies``.

A policy is one file in ``gpupool.core.policies`` implementing the ``Policy`` protocol of
``gpupool.core.policies.base`` (its static order key, its running key where it preempts by
order, its defaults, whether its order ages with time, and which pass runs it) and
registering itself. This module re-exports what drivers use: ``POLICIES`` (every name, in
listing order), ``get_policy`` and ``with_policy_defaults``.

Part of the pure core.
"""

from __future__ import annotations

from gpupool.core.policies import GAVEL_ROUND_MS, POLICIES, Pass, Policy, get_policy, with_policy_defaults
from gpupool.core.policies.base import PREEMPTION_QUANTUM_MS

__all__ = [
    "GAVEL_ROUND_MS",
    "POLICIES",
    "PREEMPTION_QUANTUM_MS",
    "Pass",
    "Policy",
    "get_policy",
    "with_policy_defaults",
]
