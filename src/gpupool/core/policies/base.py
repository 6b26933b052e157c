"""The policy protocol: what one scheduling policy decides, and the registry it joins.

This module owns ``Policy`` (the base every policy file implements), ``Pass`` (the three
cycles a policy may run) and the registry (``register``, ``registered``). A policy is one
file in ``gpupool.core.policies`` that subclasses ``Policy``, says:

* ``cycle``: which pass runs it: the queue pass with strict order or EASY backfill
  (``Pass.QUEUE``, ``gpupool.core.queue_pass``), the wanted set recomputed over running and
  pending jobs every cycle (``Pass.WANTED_SET``, ``gpupool.core.wanted_set_pass``), or
  Gavel's rounds over an allocation matrix (``Pass.ROUNDS``, ``gpupool.core.heterogeneity``);
* ``static_key``: the order of a pending job, fixed while it waits (the sub-queues stay
  sorted without re-sorting); it ends in the job's submission sequence number;
* ``running_key``: the order of a running job at ``now`` (wanted-set policies only);
* ``by_rank`` / ``fair``: order by priority class first / sub-queues by fair share;
* ``ages``: the order changes with time alone (every ``Tick`` re-decides every pool);
  ``promotes``: Tiresias' starvation rule runs at every ``Tick``;
* ``objective`` / ``aware``: the allocation a round-based policy computes, and whether it
  reads the throughput table;
* ``defaults``: what it needs in the config that the user left at zero;
* ``bind`` / ``finished``: a policy that learns from finished jobs gives each scheduler its
  own object (``bind``) and is told of every finish (``finished``);

and registers one instance with ``register``. Nothing else in the core names a policy.

Part of the pure core.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

from gpupool.core.job_state import JobState
from gpupool.core.tiresias import TiresiasConfig


class Pass(StrEnum):
    """The cycle a policy runs."""

    #: pending jobs in order; strict, or EASY backfill behind reservations
    QUEUE = "queue"
    #: the wanted set over running and pending jobs by key; what falls out is preempted
    WANTED_SET = "wanted-set"
    #: Gavel's round-based time sharing of an allocation matrix
    ROUNDS = "rounds"


class PolicyConfig(Protocol):
    """What a policy reads of a ``SchedulerConfig`` (which imports the registry)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    policy: str
    round_ms: int
    min_runtime_ms: int
    default_walltime_ms: int
    tiresias: TiresiasConfig


C = TypeVar("C", bound=PolicyConfig)


class Policy:
    """One scheduling policy. Subclass it in a file of its own and ``register`` an instance."""

    #: the name users give (``--policy``, ``SchedulerConfig.policy``)
    name: ClassVar[str] = ""
    #: one line: the order it keeps (the README's table and ``gpupool policies``)
    order: ClassVar[str] = ""
    cycle: ClassVar[Pass] = Pass.QUEUE
    by_rank: ClassVar[bool] = False
    fair: ClassVar[bool] = False
    ages: ClassVar[bool] = False
    promotes: ClassVar[bool] = False
    #: round-based allocation objective ("las", "fifo", "ftf", "makespan"); "" = none
    objective: ClassVar[str] = ""
    aware: ClassVar[bool] = False

    @property
    def preemptive(self) -> bool:
        """Does it preempt by its order (the wanted set, or a lease ending with the round)?"""
        return self.cycle is not Pass.QUEUE

    def static_key(self, j: JobState, config: PolicyConfig) -> tuple[float, ...]:
        """The order of a pending job (default: submission time, then sequence)."""
        return (j.spec.submit_ms, j.seq)

    def running_key(self, j: JobState, end: int, now: int, config: PolicyConfig) -> tuple[float, ...]:
        """The order of a running job at ``now`` (``end``: its expected end)."""
        raise NotImplementedError(f"{self.name} does not order running jobs")

    def defaults(self, config: C) -> C:
        """``config`` with what this policy needs filled in where the user left zero."""
        return config

    def bind(self) -> Policy:
        """The policy object one scheduler uses: a policy that learns returns a fresh one."""
        return self

    def finished(self, j: JobState, now: int) -> None:
        """A job finished (``JobFinished``, after its last attempt was added to ``run_ms``)."""

    def __repr__(self) -> str:
        return f"<policy {self.name}>"


#: The default quantum of ``las`` and ``tiresias`` (a job runs this long before the policy
#: may preempt it): two checkpoints of the common 10-minute cadence plus the largest restart
#: overhead (1 min), so a preempted attempt, resumed or not, keeps its second checkpoint.
#: A quantum of exactly one interval (600 s, the old ``las`` default) preempted resumed jobs
#: just before their first checkpoint: they kept nothing and ITP cluster 02 never finished;
#: 1,200 s lost 18 % of GPU-hours there, 1,260 s 2 % (``benchmarks/itp_policies.py``).
PREEMPTION_QUANTUM_MS = 1_260_000


def with_round(config: C, round_ms: int, **more: int) -> C:
    """``config`` with ``round_ms`` (and any of ``more``) set where it is zero."""
    changes = {"round_ms": config.round_ms or round_ms}
    changes.update({k: getattr(config, k) or v for k, v in more.items()})
    return replace(config, **changes)


_REGISTRY: dict[str, Policy] = {}

P = TypeVar("P", bound=Policy)


def register(policy: P) -> P:
    """Add a policy to the registry (once per name); returns it."""
    if not policy.name or policy.name in _REGISTRY:
        raise ValueError(f"policy name {policy.name!r} is empty or taken")
    if policy.cycle is Pass.ROUNDS and not policy.objective:
        raise ValueError(f"round-based policy {policy.name!r} needs an objective")
    _REGISTRY[policy.name] = policy
    return policy


def registered() -> dict[str, Policy]:
    """The registry: every policy by name, in the order they registered."""
    return dict(_REGISTRY)


#: Gavel's round: 360 s (Narayanan et al., OSDI'20, section 7).
GAVEL_ROUND_MS = 360_000


class RoundBased(Policy):
    """A round-based policy (Gavel's mechanism): it re-decides once a round, 6 minutes."""

    cycle = Pass.ROUNDS

    def defaults(self, config: C) -> C:
        return with_round(config, GAVEL_ROUND_MS)
