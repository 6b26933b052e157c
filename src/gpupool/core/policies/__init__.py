"""The scheduling policies, one file each, and the registry that lists them.

Each module here implements the ``Policy`` protocol of ``gpupool.core.policies.base`` and
registers one instance (``POLICY``); ``LISTING`` below orders them as the CLI, the API and
the tests list them (``POLICIES``). Adding a policy is one new file here, its import and
its line in ``LISTING``, and a test (README: "Writing a policy").

| name       | order                                              | cycle      |
|------------|----------------------------------------------------|------------|
| fifo       | submit time                                        | queue      |
| priority   | priority class, then submit time                   | queue      |
| fairshare  | class; within guarantee first; decayed usage/weight | queue (reclaims guarantees) |
| sjf        | oracle duration (experiments)                      | queue      |
| srtf       | oracle remaining time (experiments)                | wanted set |
| las        | least attained service, GPU x time                 | wanted set |
| tiresias   | discretised 2D-LAS queues, starvation promotion    | wanted set |
| predicted  | shortest predicted remaining GPU-time, learned online | wanted set |
| maxmin     | round-based max-min fair GPU-time (agnostic LAS)   | rounds     |
| ftf        | round-based finish-time fairness (agnostic)        | rounds     |
| gavel-las  | max-min of throughput normalised to an equal share | rounds     |
| gavel-fifo | arrival order, each job on its fastest free model  | rounds     |
| gavel-ftf  | finish-time fairness on effective throughput       | rounds     |
| gavel-makespan | the allocation that finishes all jobs soonest  | rounds     |

Part of the pure core.
"""

from __future__ import annotations

from gpupool.core.policies import (
    fairshare,
    fifo,
    ftf,
    gavel_fifo,
    gavel_ftf,
    gavel_las,
    gavel_makespan,
    las,
    maxmin,
    predicted,
    priority,
    sjf,
    srtf,
    tiresias,
)
from gpupool.core.policies.base import GAVEL_ROUND_MS, C, Pass, Policy, registered

__all__ = ["GAVEL_ROUND_MS", "LISTING", "POLICIES", "Pass", "Policy", "get_policy", "with_policy_defaults"]

#: every policy, in the order the CLI, the API and the tests list them
LISTING: tuple[Policy, ...] = (
    fifo.POLICY,
    priority.POLICY,
    fairshare.POLICY,
    sjf.POLICY,
    srtf.POLICY,
    las.POLICY,
    tiresias.POLICY,
    predicted.POLICY,
    maxmin.POLICY,
    ftf.POLICY,
    gavel_las.POLICY,
    gavel_fifo.POLICY,
    gavel_ftf.POLICY,
    gavel_makespan.POLICY,
)
#: every registered policy's name, in listing order
POLICIES: tuple[str, ...] = tuple(p.name for p in LISTING)
if set(POLICIES) != set(registered()):  # pragma: no cover - a file registered but not listed
    raise ImportError(f"policies registered but not listed: {sorted(set(registered()) - set(POLICIES))}")


def get_policy(name: str) -> Policy:
    """The policy called ``name``; ValueError naming the known ones otherwise."""
    got = registered().get(name)
    if got is None:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})")
    return got


def with_policy_defaults(cfg: C) -> C:
    """Fill in what the config's policy needs and the user left at zero (``Policy.defaults``)."""
    return get_policy(cfg.policy).defaults(cfg)
