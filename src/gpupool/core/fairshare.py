"""The fair-share order of sub-queues: the prefix that ranks one tenant's work against another's.

The pending queue is split into sub-queues per (candidate set, project, class), each sorted
by the policy's static key. Under a fair policy a cycle merges them by a *prefix* computed
per sub-queue: its class, whether its head job stays within a guarantee of its project,
and the project's decayed usage over each tree node's weight along its path. This module
owns, for one pool state (``gpupool.core.pool_state``):

* the prefixes of a cycle (``first_prefixes`` when it starts, ``prefix`` after each start,
  stop or queue change), memoised until the state changes (``Memo``);
* the usage part per project (``fair_key``), each tree node's decayed usage computed once
  per instant (usage decays with time only, and a change at ``now`` does not move the
  value at ``now``);
* the guarantee part per sub-queue (``within_now``), with the holders of a project's
  guarantees per candidate set looked up once (``guards``) and memoised until the head of
  the sub-queue or what those holders hold changes (the state's ``held_ver``, bumped by
  ``PoolState.held_changed``).

Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

from gpupool.core.pool_state import Memo, PoolState


class FairShareOrder:
    """The fair-share prefixes of one pool state's sub-queues, and what they memoise."""

    def __init__(self, state: PoolState) -> None:
        self.state = state
        #: the policy orders by fair share (else a prefix is the class alone)
        self.fair = state.policy.fair
        #: some tenant has a guarantee (else no head job is ever "within" one)
        self.guarantees = state.has_guarantees
        #: fair-share keys per project at ``at`` (constant within an instant: usage
        #: decays with time only, and a change at ``now`` does not move the value at ``now``)
        self.keys: dict[int, tuple[float, ...]] = {}
        self.decayed: dict[int, float] = {}
        self.at = -1
        self.guard_cache: dict[tuple[int, int], tuple[tuple[int, str, int], ...]] = {}
        #: per sub-queue: (head seq, its project's held_ver, within) of its last prefix
        self.within: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        #: sub-queue prefixes of this cycle, valid while the state's ``version`` holds
        self.prefixes: Memo[tuple[int, int, int], tuple[float, ...]] = Memo(state)

    def new_cycle(self) -> None:
        """A cycle starts: its prefixes and the usage it read are stale."""
        self.prefixes.clear()
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
        self.keys.clear()
        self.decayed.clear()
        self.at = now
        fair_keys, within_of, held_ver = self.keys, self.within, self.state.held_ver
        prefixes, guarantees = self.prefixes, self.guarantees
        for qkey, q in self.state.queues.items():
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
            prefix = prefixes[qkey] = (qkey[2], within, *fair)
            heap.append(((*prefix, *head), head[-1], qkey))

    def prefix(self, qkey: tuple[int, int, int], now: int) -> tuple[float, ...]:
        """The dynamic part of a sub-queue's order (fair share: class, guarantee, usage).

        Memoised within a cycle (``prefixes`` is cleared when a cycle starts) until the
        next start, stop or queue change. ``first_prefixes`` computes the first ones inline.
        """
        if not self.fair:
            return (qkey[2],)
        got = self.prefixes.get(qkey)
        if got is not None:
            return got
        project = qkey[1]
        within = 1
        if self.guarantees:
            head = self.state.queues[qkey][0][-1]
            got_w = self.within.get(qkey)
            if got_w is not None and got_w[0] == head and got_w[1] == self.state.held_ver[project]:
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
        return self.prefixes.put(qkey, (qkey[2], within, *fair))

    def within_now(self, qkey: tuple[int, int, int], head: int) -> int:
        """0 if the head job of a sub-queue (seq ``head``) stays within a guarantee, else 1.

        Ledger.within_guarantee for each model of the set, with the (static) holders of the
        project's guarantees looked up once; memoised (``within``) until the head of the
        sub-queue or what those holders hold changes (``held_ver``).
        """
        state = self.state
        project = qkey[1]
        gpus = state.by_seq[head].spec.gpus
        held_of = state.ledger.held_of
        within = 1
        for node, key, guaranteed in self.guards(project, qkey[0]):
            if held_of(node, key) + gpus <= guaranteed:
                within = 0
                break
        self.within[qkey] = (head, state.held_ver[project], within)
        return within

    def fair_key(self, project: int, now: int) -> tuple[float, ...]:
        """Ledger.fair_key, with each tree node's decayed usage computed once per instant."""
        tenancy, ledger = self.state.tenancy, self.state.ledger
        decayed = self.decayed
        parts = []
        for i in tenancy.ancestors(project):
            d = decayed.get(i)
            if d is None:
                d = decayed[i] = ledger.decayed(i, now)
            parts.append(d / tenancy.nodes[i].weight)
        fair = self.keys[project] = tuple(parts)
        return fair

    def guards(self, project: int, cid: int) -> tuple[tuple[int, str, int], ...]:
        """Per model of a candidate set (each once, in order) that the project has a guarantee
        for: the tree node holding it, its key (model or "*") and the amount."""
        got = self.guard_cache.get((project, cid))
        if got is None:
            state = self.state
            out = []
            for model in state.cands.models[cid]:
                h = state.ledger.guarantee_holder(project, model)
                if h is not None:
                    node, key = h
                    out.append((node, key, state.tenancy.nodes[node].guaranteed[key]))
            got = self.guard_cache[(project, cid)] = tuple(out)
        return got
