"""The pool state below the cycle: the data of one scheduler, its indexes and its primitives.

This module owns ``PoolState``: the jobs (by id and by submission sequence), the pending
sub-queues (per candidate set x project x class, each sorted by the policy's static key),
the running jobs (by pool and expected end, by node, in victim-search groups), the capacity
of the fleet (``Capacity``), the fair-share ledger, the wait index of the EASY bulk pass,
and the versions that memos are checked against. Every part of the cycle (candidates,
fair-share order, waiting and bulk pass, reservations, preemption, rounds, estimates,
invariants, restore) is given this state, and its peers, when it is made; none of them
sees the ``Scheduler``.

Its primitives are the only way the state changes: ``admit`` (may a job enter, and where
could it run), ``new_job``, ``enqueue``, ``dequeue``, ``start`` and ``hold`` (a job takes
accelerators), ``stop``, ``forget``, ``explain`` (say why a job waits, with the reason's
subject as data), and ``trial`` (capacity changes that are rolled back unless kept, in the
manner of KAI-Scheduler's ``Statement``). Submission and restore after a restart go
through the same ones.

The memo rule lives here too (``Memo``): every change a cycle's memos may read (a start, a
stop, a queue change, a reservation: what moves a tenant's usage, a sub-queue's head or a
pool's free count) goes through ``touch``, which bumps ``version`` and empties every memo
made on the state, so a memoised value is valid exactly while nothing has changed.

Part of the pure core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sortedcontainers import SortedList

from gpupool.core.advance_reservations import AdvanceReservations
from gpupool.core.candidates import CandidatePools
from gpupool.core.capacity import Capacity, Placement
from gpupool.core.decisions import Decision, Explain, Reason, Start
from gpupool.core.fleet import Fleet
from gpupool.core.fraction_placement import Placer
from gpupool.core.fraction_pool import FractionPlacement, PoolFractions
from gpupool.core.job import PRIORITY_CLASSES, JobError, JobSpec
from gpupool.core.job_state import PENDING, RUNNING, JobState, remaining
from gpupool.core.ledger import Ledger
from gpupool.core.policies.base import Policy
from gpupool.core.running_groups import RunningGroups
from gpupool.core.scheduler_config import SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.core.throughput import ThroughputTable
from gpupool.core.wait_index import WaitIndex

PREEMPTIBLE_RANK = PRIORITY_CLASSES["preemptible"]

K = TypeVar("K")
V = TypeVar("V")


class Refusal(ValueError):
    """A job may not enter the state: the reason code and what to tell its owner."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Memo(dict[K, V]):
    """Values computed from the pool state, valid until the state changes.

    The one place the rule is written: the state empties every memo made on it at each
    change a memo may read (``PoolState.touch``), so a value found is current. Reads are a
    plain ``dict.get`` (the fair-share order and the bulk pass read these ~3,000 times a
    cycle); ``put`` stores and returns a value.
    """

    __slots__ = ()

    def __init__(self, state: PoolState) -> None:
        super().__init__()
        state.memos.append(self)

    def put(self, key: K, value: V) -> V:
        self[key] = value
        return value


class Trial:
    """Capacity changes that are undone by ``rollback`` unless ``commit`` keeps them.

    A victim search frees the accelerators of candidate victims one by one until a
    placement fits; when none does, or the placement needs only some of them, the rest
    are taken back exactly as they were (KAI-Scheduler's ``Statement``, Kueue's undo).
    """

    __slots__ = ("_capacity", "_log")

    def __init__(self, capacity: Capacity) -> None:
        self._capacity = capacity
        self._log: list[tuple[bool, Placement]] = []

    def release(self, placement: Placement) -> None:
        """Free a running job's accelerators, for now (a fraction's GPU is the fraction
        layer's: a trial does not free it)."""
        if isinstance(placement, FractionPlacement):
            return
        self._capacity.undo(placement)
        self._log.append((True, placement))

    def retake(self, placement: Placement) -> None:
        """Take accelerators freed in this trial back (they stay with their job)."""
        if isinstance(placement, FractionPlacement):
            return
        for node, ids in placement:
            self._capacity.take(node, ids)
        self._log.append((False, placement))

    def take(self, plan: Sequence[tuple[int, int]]) -> Placement:
        """Allocate a planned placement, for now (undone by ``rollback``)."""
        placement = self._capacity.apply(plan)
        self._log.append((False, placement))
        return placement

    def rollback(self) -> None:
        """Undo every change of the trial, last first."""
        cap = self._capacity
        for released, placement in reversed(self._log):
            if released:
                for node, ids in placement:
                    cap.take(node, ids)
            else:
                cap.undo(placement)
        self._log.clear()

    def commit(self) -> None:
        """Keep the changes (the freed accelerators' jobs are stopped by the caller)."""
        self._log.clear()


class PoolState:
    """The jobs, queues, running sets and capacity of one scheduler, and their primitives."""

    def __init__(
        self,
        fleet: Fleet,
        tenancy: Tenancy,
        config: SchedulerConfig,
        policy: Policy,
        placer: Placer = Placer.FRAG_AWARE,
    ) -> None:
        self.fleet = fleet
        self.tenancy = tenancy
        self.config = config
        self.policy = policy
        self.capacity = Capacity(fleet)
        #: the GPUs cut into shares and MIG instances, and their grants (``fraction_pool``)
        self.fractions = PoolFractions(fleet, self.capacity, placer)
        self.ledger = Ledger(tenancy, config.decay_half_life_ms)
        #: throughput per (class, model): read by aware policies and "effective" usage
        self.throughputs = config.throughputs or ThroughputTable.from_catalogue(fleet.catalogue)
        self.throughputs.require_models(sorted({p.model for p in self.capacity.pools}))
        self.jobs: dict[str, JobState] = {}
        self.by_seq: dict[int, JobState] = {}
        self.running: dict[int, JobState] = {}
        self.seq = 0
        #: sub-queues of pending jobs: (candidate-set id, project, rank) -> sorted static keys
        self.queues: dict[tuple[int, int, int], SortedList] = {}
        self.pending = 0
        #: candidate pools of jobs and the candidate sets sub-queues are keyed by
        self.cands = CandidatePools(fleet, tenancy, self.capacity)
        # running jobs per pool by expected end, for EASY shadow times and victim search
        self.running_by_pool: list[SortedList] = [SortedList() for _ in self.capacity.pools]
        self.node_jobs: dict[int, set[int]] = {}
        #: running jobs grouped per pool by (project, class), for victim searches
        self.groups = RunningGroups(len(self.capacity.pools))
        #: pending jobs told why they wait, indexed for the bulk pass of an EASY cycle
        self.waits = WaitIndex(self.walltime, self.models_label)
        self.has_guarantees = any(n.guaranteed for n in tenancy.nodes)
        #: per project: does any tree node on its path have a GPU-hour budget
        self.budgeted = [
            any(tenancy.nodes[i].budget_gpu_hours is not None for i in tenancy.ancestors(k))
            for k in range(len(tenancy.nodes))
        ]
        self._resolved: dict[str, int | None] = {}
        #: "A/B" labels of the models of a set of pools (reason details and wait subjects)
        self._model_labels: dict[tuple[int, ...], str] = {}
        #: bumped by every change a memo may read (``touch``; see the module docstring)
        self.version = 0
        #: every ``Memo`` made on this state (``touch`` empties them)
        self.memos: list[Memo[Any, Any]] = []
        #: pools whose jobs or capacity changed since the last cycle (preemptive policies
        #: re-decide only there: elsewhere the wanted set cannot have changed)
        self.dirty: set[int] = set()
        #: advance reservations (workshops, maintenance) the passes plan around
        self.advance = AdvanceReservations(fleet, tenancy)
        #: per project: the projects whose guarantee holders are on its path (what its
        #: holding changes can move), and a counter bumped when that may have happened
        n_nodes = len(tenancy.nodes)
        guarded = [{i for i in tenancy.ancestors(k) if tenancy.nodes[i].guaranteed} for k in range(n_nodes)]
        self.affects = [
            tuple(k2 for k2 in tenancy.projects if guarded[k2] & set(tenancy.ancestors(k)))
            for k in range(n_nodes)
        ]
        self.held_ver = [0] * n_nodes
        #: pending jobs (seq) no one has told why they wait yet (reason ``QUEUED``):
        #: ``gpupool.core.wait_reasons`` tells them after each cycle
        self.untold: set[int] = set()
        #: while a run of submissions is applied (``batch``): the static keys they add per
        #: sub-queue, sorted into the queues at once by ``flush``
        self._batched: dict[tuple[int, int, int], list[tuple[float, ...]]] | None = None

    # -- reading -------------------------------------------------------------------------

    def walltime(self, j: JobState) -> int:
        """``job_state.walltime``, inline: the bulk pass and the wait index call this
        thousands of times a cycle."""
        s = j.spec
        if s.walltime_ms > 0:
            return s.walltime_ms
        if s.duration_hint_ms > 0:
            return s.duration_hint_ms
        return self.config.default_walltime_ms

    def remaining(self, j: JobState) -> int:
        """Estimated run time left: a walltime restarts whole, a duration hint does not."""
        return remaining(j, self.config.default_walltime_ms)

    def models_label(self, pools: Sequence[int]) -> str:
        key = tuple(pools)
        label = self._model_labels.get(key)
        if label is None:
            label = self._model_labels[key] = "/".join(sorted({self.capacity.pools[p].model for p in key}))
        return label

    def usage_rate(self, spec: JobSpec, model: str) -> float | None:
        """Usage per ms of a job on ``model``: None (raw: its accelerators) or effective."""
        if self.config.usage == "raw":
            return None
        return spec.gpus * self.throughputs.speed(spec.workload_class, model, spec.gpus)

    def static_key(self, j: JobState) -> tuple[float, ...]:
        """The policy's order of a pending job, fixed while it waits."""
        return self.policy.static_key(j, self.config)

    def pending_jobs(self) -> list[JobState]:
        """Pending jobs in policy order (static keys; fair-share prefixes not applied)."""
        out: list[JobState] = []
        for q in self.queues.values():
            out.extend(self.by_seq[e[-1]] for e in q)
        out.sort(key=lambda j: (j.rank if self.policy.by_rank else 0, j.skey))
        return out

    def resolve(self, project: str) -> int | None:
        """The tenancy's index of a project path (memoised), None if unknown."""
        if project in self._resolved:
            return self._resolved[project]
        got = self._resolved[project] = self.tenancy.resolve(project)
        return got

    # -- jobs entering and leaving -------------------------------------------------------

    def admit(self, spec: JobSpec) -> tuple[int, tuple[int, ...], int]:
        """May ``spec`` enter: its project's index, candidate pools and their set's id; else
        ``Refusal``."""
        try:
            spec.validate()
        except JobError as e:
            raise Refusal(Reason.INVALID, str(e)) from None
        if spec.id in self.jobs:
            raise Refusal(Reason.INVALID, f"job {spec.id!r} already exists")
        # the memo of ``resolve``, inline: this runs once per submission
        resolved = self._resolved
        project = resolved[spec.project] if spec.project in resolved else self.resolve(spec.project)
        if project is None:
            raise Refusal(Reason.UNKNOWN_PROJECT, f"unknown project {spec.project!r}")
        cands, why, cset = self.cands.of(spec, project)
        if not cands:
            raise Refusal(Reason.UNSCHEDULABLE, why)
        allowed, why = self.cands.within_limits(project, spec.gpus, cands)
        if allowed is not cands:
            if not allowed:
                raise Refusal(Reason.OVER_LIMIT, why)
            cands, cset = allowed, self.cands.set_id(allowed)
        return project, cands, cset

    def new_job(
        self, spec: JobSpec, project: int, cands: tuple[int, ...], rank: int, cset: int = -1
    ) -> JobState:
        """A job enters the state (neither queued nor running yet); ``cset``: the id of
        ``cands`` if known."""
        self.seq += 1
        j = JobState(spec, self.seq, project, cands, rank)
        j.cset = cset if cset >= 0 else self.cands.set_id(cands)
        self.jobs[spec.id] = j
        self.by_seq[j.seq] = j
        return j

    def forget(self, j: JobState) -> None:
        """A finished job leaves the state: a long simulation must not grow without bound."""
        self.jobs.pop(j.spec.id, None)
        self.by_seq.pop(j.seq, None)

    # -- the pending queue ---------------------------------------------------------------

    def enqueue(self, j: JobState) -> None:
        j.status = PENDING
        j.skey = self.policy.static_key(j, self.config)
        j.qkey = (j.cset, j.project, j.rank if self.policy.by_rank else 0)
        batched = self._batched
        if batched is not None:
            keys = batched.get(j.qkey)
            if keys is None:
                batched[j.qkey] = [j.skey]
            else:
                keys.append(j.skey)
        else:
            q = self.queues.get(j.qkey)
            if q is None:
                q = self.queues[j.qkey] = SortedList()
            q.add(j.skey)
        if j.wait_sig is not None:
            self.waits.add(j)
        if j.reason is Reason.QUEUED:
            self.untold.add(j.seq)
        self.pending += 1
        self.touch()

    def batch(self) -> None:
        """Submissions follow: hold their queue keys and sort them in at ``flush``.

        Only ``enqueue`` of new jobs may run until then (nothing that reads or removes from
        a sub-queue). One ``SortedList.update`` per sub-queue instead of a sorted insert per
        job: the full cycle of the cycle benchmark submits 100,000 jobs in one batch. The
        queues hold the same keys either way, so no order and no decision changes.
        """
        if self._batched is None:
            self._batched = {}

    def flush(self) -> None:
        """Sort the keys held since ``batch`` into their sub-queues."""
        batched, self._batched = self._batched, None
        if not batched:
            return
        queues = self.queues
        for qkey, keys in batched.items():
            q = queues.get(qkey)
            if q is None:
                queues[qkey] = SortedList(keys)
            elif len(keys) < 16:
                for k in keys:  # a few: inserts are cheaper than ``update``'s merge
                    q.add(k)
            else:
                q.update(keys)

    def dequeue(self, j: JobState) -> None:
        q = self.queues[j.qkey]
        q.remove(j.skey)
        if not q:
            del self.queues[j.qkey]
        if j.wait_sig is not None:
            self.waits.remove(j)
        self.untold.discard(j.seq)
        self.pending -= 1
        self.touch()

    def touch(self) -> None:
        """Something a memo may read changed: every primitive that changes the state calls
        this, and so does a cycle that makes or uses a reservation."""
        self.version += 1
        for memo in self.memos:
            if memo:
                memo.clear()

    # -- running -------------------------------------------------------------------------

    def start(
        self,
        j: JobState,
        pool: int,
        plan: Sequence[tuple[int, int]],
        now: int,
        out: list[Decision],
        taken: Placement | None = None,
    ) -> None:
        """Start a pending job on a planned placement in ``pool``: a ``Start`` decision.

        ``taken``: a placement already taken (a fraction's, ``PoolFractions.take``). A
        fractional job given a plan is cut on the plan's nodes where their rule allows
        (packing onto a shared or partitioned GPU first), else holds the planned GPU whole.
        """
        self.dequeue(j)
        if taken is None and (j.spec.mig or j.spec.gpu_fraction > 0 or j.spec.gpu_memory_gib > 0):
            taken = self.fractions.take(j.spec, j.spec.id, pool, [n for n, _ in plan])
        placement = taken if taken is not None else self.capacity.apply(plan)
        j.attempt += 1
        j.reason, j.detail, j.reserved_start = Reason.QUEUED, "", -1
        j.wait_sig = None
        self.hold(j, pool, placement, now)
        p = self.capacity.pools[pool]
        names = self.fleet.nodes
        out.append(
            Start(
                j.spec.id,
                j.allocation_id,
                self.fleet.clusters[p.cluster].name,
                p.model,
                tuple((names[n].name, ids) for n, ids in placement),
                resumed=j.preemptions > 0,
            )
        )

    def hold(self, j: JobState, pool: int, placement: Placement, at: int) -> None:
        """``j`` runs on ``placement`` (already taken from the capacity) since ``at``.

        The bookkeeping of a start, shared by ``start`` and the restore after a restart.
        """
        j.status = RUNNING
        j.allocation_id = f"{j.spec.id}#{j.attempt}"
        j.pool = pool
        j.placement = placement
        j.start_ms = at
        j.expected_end = at + self.remaining(j)
        self.running[j.seq] = j
        self.running_by_pool[pool].add((j.expected_end, j.seq))
        self.groups.add(j, pool)
        for node, _ in placement:
            self.node_jobs.setdefault(node, set()).add(j.seq)
        model = self.capacity.pools[pool].model
        self.ledger.change(j.project, model, j.gpus, at, self._charge(j, model))
        self.held_changed(j.project)
        self.touch()

    def _charge(self, j: JobState, model: str) -> float | None:
        """What ``j`` adds to usage per ms: ``usage_rate``, scaled by a fraction's share."""
        rate = self.usage_rate(j.spec, model)
        share = self.fractions.charged(j.spec.id) if isinstance(j.placement, FractionPlacement) else None
        if share is None:
            return rate
        return share if rate is None else rate * share / j.gpus

    def stop(self, j: JobState, now: int, released: bool = False) -> None:
        """Bookkeeping of a running job that stops (``released``: its accelerators already are)."""
        p = self.capacity.pools[j.pool]
        rate = self._charge(j, p.model)
        if isinstance(j.placement, FractionPlacement):
            self.fractions.release(j.spec.id)  # exactly its grant, whatever a trial did
        elif not released:
            self.capacity.undo(j.placement)
        for node, _ in j.placement:
            s = self.node_jobs.get(node)
            if s is not None:
                s.discard(j.seq)
        self.running_by_pool[j.pool].remove((j.expected_end, j.seq))
        self.groups.remove(j)
        self.dirty.add(j.pool)
        del self.running[j.seq]
        self.ledger.change(j.project, p.model, -j.gpus, now, None if rate is None else -rate)
        self.held_changed(j.project)
        self.touch()
        ran = now - j.start_ms
        j.run_ms += ran
        j.attained += ran * j.gpus
        j.placement = ()
        j.pool = -1

    def trial(self) -> Trial:
        """Capacity changes to try, rolled back unless committed."""
        return Trial(self.capacity)

    def held_changed(self, project: int) -> None:
        """What ``project``'s tree path holds changed: guarantee checks that read it are stale."""
        held_ver = self.held_ver
        for k in self.affects[project]:
            held_ver[k] += 1

    # -- explaining ----------------------------------------------------------------------

    def explain(
        self, j: JobState, reason: Reason, detail: str, out: list[Decision], subject: str | None = None
    ) -> None:
        """Tell why ``j`` waits (an ``Explain`` if that changed), and keep its wait signature.

        ``subject``: what the reason names, as data (``WaitIndex.signature``).
        """
        amended = j.reason is Reason.OVER_BUDGET and reason is not Reason.OVER_BUDGET
        if amended:
            detail = f"{detail} (over budget: runs as preemptible)"
        changed = j.reason != reason or j.detail != detail
        if changed or j.presumed:
            if changed:
                if j.reason is Reason.QUEUED:
                    self.untold.discard(j.seq)
                j.reason, j.detail = reason, detail
                out.append(Explain(j.spec.id, reason, detail))
            j.presumed = False
            sig = self.waits.signature(j, reason, subject, amended) if j.status == PENDING else None
            if sig != j.wait_sig:
                self.waits.change(j, sig)
