"""Advance reservations: accelerators set aside for a time window (a workshop, maintenance).

This module owns ``AdvanceReservation`` (an id, a window ``[start_ms, end_ms)``, whole nodes
named or chosen by cluster + model + count, and the tenants entitled to them or none for
maintenance) and ``AdvanceReservations``, the set the scheduler plans around:

* ``add`` resolves a reservation to nodes: named nodes as given; a count as the fewest whole
  nodes of that model in that cluster that hold it, taken from the highest index down (best
  fit places from the lowest index, so ordinary work lands elsewhere first) and never a node
  that an overlapping reservation already holds; a reservation that cannot get its nodes is
  refused (``ReservationConflict``), so two overlapping ones never share an accelerator;
* ``fence`` takes out of the free indexes, for the time one job is tried, the reserved nodes
  that job may not use: a job not entitled to a reservation may not run on its nodes during
  any part of its window, so it may start there only if its walltime ends before the window
  opens (or after the window ended); an entitled job (its project at or under one of the
  tenant paths) may use them while the window is open;
* ``delay`` moves an expected start (EASY's shadow time, ``estimate_starts``) past the
  windows that would keep a job off enough of a pool, so neither promises a start on
  reserved capacity.

Reservations are whole nodes, like Slurm's ``scontrol create reservation nodecnt=``; a
running job is never stopped for one (a job that started before the window, ending before
it, or an entitled job that runs past the end, keeps its nodes).

Part of the pure core: time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from sortedcontainers import SortedList

from gpupool.core.capacity import Capacity
from gpupool.core.fleet import Fleet
from gpupool.core.job_state import JobState
from gpupool.core.tenancy import Tenancy


class _Planned(Protocol):
    """What ``delay_estimates`` reads of a pool state (``gpupool.core.pool_state``)."""

    capacity: Capacity
    jobs: dict[str, JobState]
    by_seq: dict[int, JobState]
    running_by_pool: list[SortedList]

    def walltime(self, j: JobState) -> int: ...


class ReservationConflict(ValueError):
    """A reservation that cannot get its accelerators; the message names the field.
    ``overlap``: it would fit the fleet but overlapping reservations hold what it needs."""

    def __init__(self, field: str, message: str, overlap: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.overlap = overlap


@dataclass(frozen=True, slots=True)
class AdvanceReservation:
    """Accelerators set aside for ``[start_ms, end_ms)``.

    Either ``nodes`` (names) or ``cluster`` + ``model`` + ``count`` (accelerators, rounded up
    to whole nodes). ``tenants``: tenant paths whose jobs (and their sub-tenants') may use
    them; empty is maintenance, for nobody.
    """

    id: str
    start_ms: int
    end_ms: int
    tenants: tuple[str, ...] = ()
    cluster: str = ""
    model: str = ""
    count: int = 0
    nodes: tuple[str, ...] = ()

    @property
    def maintenance(self) -> bool:
        return not self.tenants

    def overlaps(self, start: int, end: int) -> bool:
        return start < self.end_ms and self.start_ms < end

    def purpose(self) -> str:
        return "maintenance" if self.maintenance else f"reservation {self.id}"


@dataclass(slots=True)
class _Held:
    """A reservation with the nodes it got (fleet indexes) and its entitled tenant indexes."""

    r: AdvanceReservation
    nodes: tuple[int, ...]
    tenants: frozenset[int]


class AdvanceReservations:
    """The advance reservations a scheduler plans around, by id."""

    def __init__(self, fleet: Fleet, tenancy: Tenancy) -> None:
        self.fleet = fleet
        self.tenancy = tenancy
        self._held: dict[str, _Held] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def __contains__(self, rid: str) -> bool:
        return rid in self._held

    def all(self) -> list[AdvanceReservation]:
        return [h.r for h in self._held.values()]

    def nodes_of(self, rid: str) -> list[str]:
        """The names of the nodes a reservation holds."""
        return [self.fleet.nodes[i].name for i in self._held[rid].nodes]

    # -- changes -------------------------------------------------------------------------

    def add(self, r: AdvanceReservation) -> None:
        """Hold ``r``; ``ReservationConflict`` (naming the field) if it cannot be held."""
        if r.id in self._held:
            raise ReservationConflict("id", f"reservation {r.id!r} already exists")
        if r.end_ms <= r.start_ms:
            raise ReservationConflict("end", "the window must end after it starts")
        tenants: set[int] = set()
        for path in r.tenants:
            t = self.tenancy.by_path.get(path)
            if t is None:
                raise ReservationConflict("tenants", f"unknown tenant {path!r}")
            tenants.add(t)
        taken = {n for h in self._held.values() if h.r.overlaps(r.start_ms, r.end_ms) for n in h.nodes}
        self._held[r.id] = _Held(r, self._resolve(r, taken), frozenset(tenants))

    def remove(self, rid: str) -> bool:
        return self._held.pop(rid, None) is not None

    def expire(self, now: int) -> None:
        """Forget reservations whose window has ended (they constrain nothing any more)."""
        for rid in [rid for rid, h in self._held.items() if h.r.end_ms <= now]:
            del self._held[rid]

    def _resolve(self, r: AdvanceReservation, taken: set[int]) -> tuple[int, ...]:
        fleet = self.fleet
        if r.nodes:
            out: list[int] = []
            for name in r.nodes:
                idx = fleet.node_by_name.get(name)
                if idx is None:
                    raise ReservationConflict("nodes", f"unknown node {name!r}")
                if idx in taken:
                    why = f"node {name} is held by an overlapping reservation"
                    raise ReservationConflict("nodes", why, overlap=True)
                out.append(idx)
            return tuple(sorted(set(out)))
        cluster = next((c.index for c in fleet.clusters if c.name == r.cluster), None)
        if cluster is None:
            raise ReservationConflict("cluster", f"unknown cluster {r.cluster!r}")
        if r.count <= 0:
            raise ReservationConflict("count", "count must be at least 1")
        nodes = [n for n in fleet.nodes if n.cluster == cluster and n.model == r.model]
        if not nodes:
            raise ReservationConflict("model", f"no {r.model!r} accelerators in cluster {r.cluster}")
        total = sum(n.gpus for n in nodes)
        if r.count > total:
            raise ReservationConflict(
                "count", f"count {r.count} exceeds the {total} {r.model} of {r.cluster}"
            )
        got: list[int] = []
        held = 0
        for n in reversed(nodes):
            if held >= r.count:
                break
            if n.index not in taken:
                got.append(n.index)
                held += n.gpus
        if held < r.count:
            raise ReservationConflict(
                "count",
                f"only {held} {r.model} of {r.cluster} are not reserved by an overlapping reservation",
                overlap=True,
            )
        return tuple(sorted(got))

    # -- planning ------------------------------------------------------------------------

    def _entitled(self, h: _Held, project: int) -> bool:
        return bool(h.tenants) and any(a in h.tenants for a in self.tenancy.ancestors(project))

    def _blocks(self, h: _Held, project: int, start: int, wall: int) -> bool:
        """Whether reservation ``h`` keeps a job of ``project`` running ``[start, start+wall)``
        off its nodes: the run overlaps the window and the job may not use it then."""
        r = h.r
        if not r.overlaps(start, start + max(wall, 1)):
            return False
        return not (r.start_ms <= start and self._entitled(h, project))

    def blocking(self, project: int, start: int, wall: int) -> list[AdvanceReservation]:
        """The reservations that keep such a job off their nodes, soonest first."""
        got = [h.r for h in self._held.values() if self._blocks(h, project, start, wall)]
        return sorted(got, key=lambda r: (r.start_ms, r.id))

    @contextmanager
    def fence(
        self, capacity: Capacity, project: int, now: int, wall: int
    ) -> Iterator[list[AdvanceReservation]]:
        """While the block runs, the nodes a job of ``project`` starting at ``now`` for
        ``wall`` ms may not use are out of the free indexes; yields the reservations that
        took any out (none: nothing changed)."""
        blocking = [h for h in self._held.values() if self._blocks(h, project, now, wall)]
        off = sorted({n for h in blocking for n in h.nodes if capacity.schedulable[n]})
        for n in off:
            capacity.set_schedulable(n, False)
        try:
            yield sorted((h.r for h in blocking), key=lambda r: (r.start_ms, r.id))
        finally:
            for n in off:
                capacity.set_schedulable(n, True)

    def delay(self, capacity: Capacity, pool: int, project: int, need: int, start: int, wall: int) -> int:
        """The first time from ``start`` at which no window keeps a job of ``project``
        (``need`` accelerators for ``wall`` ms) off so much of ``pool`` that it cannot fit."""
        p = capacity.pools[pool]
        in_pool = set(p.nodes)
        g = p.gpus_per_node
        for _ in range(len(self._held) + 1):
            reserved = 0
            last_end = start
            for h in self._held.values():
                if self._blocks(h, project, start, wall):
                    k = sum(1 for n in h.nodes if n in in_pool and capacity.schedulable[n])
                    if k:
                        reserved += k * g
                        last_end = max(last_end, h.r.end_ms)
            if p.schedulable - reserved >= need:
                return start
            start = last_end
        return start

    def shadow(
        self, state: _Planned, pool: int, project: int, need: int, now: int, wall: int
    ) -> tuple[float, int]:
        """EASY's shadow time with reservations (``gpupool.core.reservations.shadow_time``):
        the first time from ``now`` at which ``need`` accelerators of ``pool`` are free on
        nodes that no window keeps a job of ``project`` running ``wall`` ms off, counting
        what running jobs free there by their walltimes (in the same order as
        ``shadow_time``, so a reservation that blocks nothing changes nothing); and the spare.
        Tried at now, at each running job's end and at each window's end (when the nodes a
        window held come back); inf if none holds the job."""
        cap = state.capacity
        p = cap.pools[pool]
        held = list(self._held.values())

        def off_at(t: int) -> set[int]:
            return {n for h in held if self._blocks(h, project, t, wall) for n in h.nodes}

        def gpus_of(j: JobState, off: set[int]) -> int:
            if not off:
                return j.gpus
            return sum(len(ids) for n, ids in j.placement if n not in off and cap.schedulable[n])

        def free_at(off: set[int], ended: list[JobState]) -> int:
            if not off:
                return p.free + sum(j.gpus for j in ended)
            base = sum(cap.free[n] for n in p.nodes if cap.schedulable[n] and n not in off)
            return base + sum(gpus_of(j, off) for j in ended)

        off = off_at(now)
        free = free_at(off, [])
        if free >= need:
            return float(now), free - need
        reopen = sorted(h.r.end_ms for h in held if h.r.end_ms > now)
        ended: list[JobState] = []
        steps: list[tuple[int, JobState | None]] = []
        ri = 0
        for end, seq in state.running_by_pool[pool]:
            while ri < len(reopen) and reopen[ri] < end:
                steps.append((reopen[ri], None))
                ri += 1
            steps.append((end, state.by_seq[seq]))
        steps.extend((t, None) for t in reopen[ri:])
        for end, j in steps:
            t = max(end, now)
            if j is not None:
                ended.append(j)
            now_off = off_at(t)
            if now_off != off or j is None:
                off = now_off
                free = free_at(off, ended)
            else:
                free += gpus_of(j, off)
            if free >= need:
                return float(t), free - need
        return float("inf"), 0

    def note(self, blocking: Sequence[AdvanceReservation]) -> str:
        """The wait reason of a job held off reserved accelerators."""
        r = blocking[0]
        # in ms, as the core's other reasons ("expected start at T ms"): the core reads no clock
        return f"waiting: accelerators reserved for {r.purpose()} from {r.start_ms} ms"

    def apply(self, change: AdvanceReservation | str) -> None:
        """A reservation created (``add``) or, given its id, deleted (``remove``)."""
        if isinstance(change, str):
            self.remove(change)
        else:
            self.add(change)

    def delay_estimates(self, state: _Planned, starts: dict[str, int | None]) -> dict[str, int | None]:
        """Estimated starts moved past the windows that keep each job off its pools: the
        soonest, over the job's candidate pools, at which the job fits beside them."""
        cap = state.capacity
        for jid, s in starts.items():
            j = state.jobs.get(jid)
            if s is None or j is None:
                continue
            wall = state.walltime(j)
            starts[jid] = min(self.delay(cap, pi, j.project, j.gpus, s, wall) for pi in j.candidates)
        return starts

    def boundary_between(self, since: int, now: int) -> bool:
        """Whether a window opened or closed in ``(since, now]``: the driver runs a cycle then
        (the core decides only at events; a window's edge changes what may start)."""
        return any(since < t <= now for h in self._held.values() for t in (h.r.start_ms, h.r.end_ms))
