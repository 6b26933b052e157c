"""The fair-share order of sub-queues: the prefix that ranks one tenant's work against another's.

The pending queue is split into sub-queues per (candidate set, project, class), each sorted
by the policy's static key. Under a fair policy a cycle merges them by a *prefix* computed
per sub-queue: its class, whether its head job stays within a guarantee of its project,
and the project's decayed usage over each tree node's weight along its path. This module
owns, for one ``Scheduler``:

* the prefixes of a cycle (``first_prefixes`` when it starts, ``prefix`` after each start,
  stop or queue change), memoised while the scheduler's ``_version`` holds;
* the usage part per project (``fair_key``), each tree node's decayed usage computed once
  per instant (usage decays with time only, and a change at ``now`` does not move the
  value at ``now``);
* the guarantee part per sub-queue (``within_now``), with the holders of a project's
  guarantees per candidate set looked up once (``guards``) and memoised until the head of
  the sub-queue or what those holders hold changes (``held_changed``).

Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpupool.core.scheduler import Scheduler


class FairShareOrder:
    """The fair-share prefixes of one scheduler's sub-queues, and what they memoise."""

    def __init__(self, sched: Scheduler) -> None:
        self.s = sched
        tenancy = sched.tenancy
        #: the policy orders by fair share (else a prefix is the class alone)
        self.fair = sched.policy.fair
        #: some tenant has a guarantee (else no head job is ever "within" one)
        self.guarantees = sched._has_guarantees
        #: fair-share keys per project at ``at`` (constant within an instant: usage
        #: decays with time only, and a change at ``now`` does not move the value at ``now``)
        self.keys: dict[int, tuple[float, ...]] = {}
        self.decayed: dict[int, float] = {}
        self.at = -1
        self.guard_cache: dict[tuple[int, int], tuple[tuple[int, str, int], ...]] = {}
        #: per project: the projects whose guarantee holders are on its path (what its
        #: holding changes can move), and a counter bumped when that may have happened
        n_nodes = len(tenancy.nodes)
        guarded = [{i for i in tenancy.ancestors(k) if tenancy.nodes[i].guaranteed} for k in range(n_nodes)]
        self.affects = [
            tuple(k2 for k2 in tenancy.projects if guarded[k2] & set(tenancy.ancestors(k)))
            for k in range(n_nodes)
        ]
        self.held_ver = [0] * n_nodes
        #: per sub-queue: (head seq, its project's held_ver, within) of its last prefix
        self.within: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        #: sub-queue prefixes of this cycle, valid while the scheduler's ``_version``
        #: (bumped by every start, stop and queue change: what moves a tenant's usage or a
        #: sub-queue's head) holds
        self.prefixes: dict[tuple[int, int, int], tuple[int, tuple[float, ...]]] = {}

    def new_cycle(self) -> None:
        """A cycle starts: its prefixes and the usage it read are stale."""
        self.prefixes.clear()
        self.at = -1

    def usage_moved(self) -> None:
        """Usage changed from a past instant: the fair keys of ``at`` moved."""
        self.at = -1

    def first_prefixes(
        self,
        now: int,
        heap: list[tuple[tuple[float, ...], int, tuple[int, int, int]]],
        cursor: dict[tuple[int, int, int], int],
    ) -> None:
        """As a cycle starts: every sub-queue's prefix, its head pushed on ``heap`` (to be
        heapified) with it and its cursor set to 0.

        The prefixes are those ``prefix`` computes, inline: this loop runs over every
        sub-queue at every cycle.
        """
        s = self.s
        self.keys.clear()
        self.decayed.clear()
        self.at = now
        fair_keys, within_of, held_ver = self.keys, self.within, self.held_ver
        prefixes, version, guarantees = self.prefixes, s._version, self.guarantees
        for qkey, q in s._queues.items():
            cursor[qkey] = 0
            head = q[0]
            project = qkey[1]
            within = 1
            if guarantees:
                w = within_of.get(qkey)
                if w is not None and w[0] == head[-1] and w[1] == held_ver[project]:
                    within = w[2]
                else:
                    within = self.within_now(qkey, head[-1])
            fair = fair_keys.get(project)
            if fair is None:
                fair = self.fair_key(project, now)
            prefix = (qkey[2], within, *fair)
            prefixes[qkey] = (version, prefix)
            heap.append(((*prefix, *head), head[-1], qkey))

    def prefix(self, qkey: tuple[int, int, int], now: int) -> tuple[float, ...]:
        """The dynamic part of a sub-queue's order (fair share: class, guarantee, usage).

        Memoised within a cycle (``prefixes`` is cleared when a cycle starts) until the
        next start, stop or queue change. ``first_prefixes`` computes the first ones inline.
        """
        if not self.fair:
            return (qkey[2],)
        version = self.s._version
        got = self.prefixes.get(qkey)
        if got is not None and got[0] == version:
            return got[1]
        project = qkey[1]
        within = 1
        if self.guarantees:
            head = self.s._queues[qkey][0][-1]
            got_w = self.within.get(qkey)
            if got_w is not None and got_w[0] == head and got_w[1] == self.held_ver[project]:
                within = got_w[2]
            else:
                within = self.within_now(qkey, head)
        if self.at != now:
            self.keys.clear()
            self.decayed.clear()
            self.at = now
        fair = self.keys.get(project)
        if fair is None:
            fair = self.fair_key(project, now)
        prefix = (qkey[2], within, *fair)
        self.prefixes[qkey] = (version, prefix)
        return prefix

    def within_now(self, qkey: tuple[int, int, int], head: int) -> int:
        """0 if the head job of a sub-queue (seq ``head``) stays within a guarantee, else 1.

        Ledger.within_guarantee for each model of the set, with the (static) holders of the
        project's guarantees looked up once; memoised (``within``) until the head of the
        sub-queue or what those holders hold changes (``held_ver``).
        """
        s = self.s
        project = qkey[1]
        gpus = s._by_seq[head].spec.gpus
        held_of = s.ledger.held_of
        within = 1
        for node, key, guaranteed in self.guards(project, qkey[0]):
            if held_of(node, key) + gpus <= guaranteed:
                within = 0
                break
        self.within[qkey] = (head, self.held_ver[project], within)
        return within

    def fair_key(self, project: int, now: int) -> tuple[float, ...]:
        """Ledger.fair_key, with each tree node's decayed usage computed once per instant."""
        s = self.s
        decayed = self.decayed
        parts = []
        for i in s.tenancy.ancestors(project):
            d = decayed.get(i)
            if d is None:
                d = decayed[i] = s.ledger.decayed(i, now)
            parts.append(d / s.tenancy.nodes[i].weight)
        fair = self.keys[project] = tuple(parts)
        return fair

    def held_changed(self, project: int) -> None:
        """What ``project``'s tree path holds changed: prefixes that read it are stale."""
        for k in self.affects[project]:
            self.held_ver[k] += 1

    def guards(self, project: int, cid: int) -> tuple[tuple[int, str, int], ...]:
        """Per model of a candidate set (each once, in order) that the project has a guarantee
        for: the tree node holding it, its key (model or "*") and the amount."""
        got = self.guard_cache.get((project, cid))
        if got is None:
            s = self.s
            out = []
            for model in s._cands.models[cid]:
                h = s.ledger.guarantee_holder(project, model)
                if h is not None:
                    node, key = h
                    out.append((node, key, s.tenancy.nodes[node].guaranteed[key]))
            got = self.guard_cache[(project, cid)] = tuple(out)
        return got
