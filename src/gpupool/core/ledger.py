"""The usage ledger: what each tenant holds now and has used, raw and decayed.

This module owns per-tenant-node accounting inside the core: accelerators held now (per
model, for guarantees and borrowing limits), GPU-milliseconds consumed in the budget period,
and exponentially decayed usage (for hierarchical fair share, as Slurm's
``PriorityDecayHalfLife``), in raw or effective GPU-ms as the scheduler passes them.
Usage of a project counts for every ancestor too.
All arithmetic is closed-form in ``now`` so that reading the ledger never mutates it.
"""

from __future__ import annotations

import math

from gpupool.core.tenancy import ANY_MODEL, Tenancy

LN2 = math.log(2.0)


class Ledger:
    """Per tenant node: held accelerators, period usage, decayed usage."""

    def __init__(self, tenancy: Tenancy, half_life_ms: int) -> None:
        n = len(tenancy.nodes)
        self.tenancy = tenancy
        self.half_life_ms = half_life_ms
        self.held: list[dict[str, int]] = [{} for _ in range(n)]
        self.held_all = [0] * n
        # period usage: acc + rate * (now - t)
        self._acc = [0.0] * n
        self._rate: list[float] = [0.0] * n
        self._t = [0] * n
        # decayed usage: value at time _dt
        self._dec = [0.0] * n
        self._dt = [0] * n

    def _advance(self, i: int, now: int) -> None:
        dt = now - self._t[i]
        if dt > 0:
            self._acc[i] += self._rate[i] * dt
            self._t[i] = now
        ddt = now - self._dt[i]
        if ddt > 0:
            self._dec[i] = self._decayed_at(i, now)
            self._dt[i] = now

    def _decayed_at(self, i: int, now: int) -> float:
        ddt = now - self._dt[i]
        if ddt <= 0:
            return self._dec[i]
        h = self.half_life_ms
        if h <= 0:
            return self._dec[i] + self._rate[i] * ddt
        f = math.exp(-LN2 * ddt / h)
        return self._dec[i] * f + self._rate[i] * h / LN2 * (1.0 - f)

    def change(self, project: int, model: str, gpus: int, now: int, rate: float | None = None) -> None:
        """A project starts (+gpus) or stops (-gpus) holding accelerators of ``model``.

        ``rate`` is what the holding adds to usage per ms (default ``gpus``: raw GPU-ms);
        effective accounting passes gpus x the job's throughput there, and the stop must
        pass the negation of what the start passed.
        """
        add = gpus if rate is None else rate
        for i in self.tenancy.ancestors(project):
            self._advance(i, now)
            self._rate[i] += add
            h = self.held[i]
            h[model] = h.get(model, 0) + gpus
            self.held_all[i] += gpus

    def used_gpu_ms(self, node: int, now: int) -> float:
        """GPU-milliseconds used in the current budget period."""
        return self._acc[node] + self._rate[node] * max(0, now - self._t[node])

    def decayed(self, node: int, now: int) -> float:
        return self._decayed_at(node, now)

    def held_of(self, node: int, model: str) -> int:
        return self.held_all[node] if model == ANY_MODEL else self.held[node].get(model, 0)

    def fair_key(self, project: int, now: int) -> tuple[float, ...]:
        """Decayed usage over weight along the path root..project (lower is served first).

        Comparing siblings by usage/weight is Slurm's fair tree: a subtree that used less
        than its share is served before any of its siblings' subtrees.
        """
        nodes = self.tenancy.nodes
        return tuple(self._decayed_at(i, now) / nodes[i].weight for i in self.tenancy.ancestors(project))

    def guarantee_holder(self, project: int, model: str) -> tuple[int, str] | None:
        """The lowest tree node on the project's path that guarantees ``model`` (or any model)."""
        nodes = self.tenancy.nodes
        for i in reversed(self.tenancy.ancestors(project)):
            g = nodes[i].guaranteed
            if model in g:
                return i, model
            if ANY_MODEL in g:
                return i, ANY_MODEL
        return None

    def within_guarantee(self, project: int, model: str, gpus: int) -> bool:
        """Would ``gpus`` more of ``model`` keep the project inside its guarantee?"""
        h = self.guarantee_holder(project, model)
        if h is None:
            return False
        node, key = h
        return self.held_of(node, key) + gpus <= self.tenancy.nodes[node].guaranteed[key]

    def borrowing(self, project: int, model: str) -> bool:
        """Does the project hold more of ``model`` than its guarantee (so it may be reclaimed)?"""
        h = self.guarantee_holder(project, model)
        if h is None:
            return True
        node, key = h
        return self.held_of(node, key) > self.tenancy.nodes[node].guaranteed[key]

    def borrow_limit_hit(self, project: int, model: str, gpus: int) -> str | None:
        """The path of the first tree node whose borrowing limit ``gpus`` more would break."""
        nodes = self.tenancy.nodes
        for i in self.tenancy.ancestors(project):
            lim = nodes[i].borrow_limit
            if lim is None:
                continue
            for key in (model, ANY_MODEL):
                if key in lim:
                    cap = nodes[i].guaranteed.get(key, 0) + lim[key]
                    if self.held_of(i, key) + gpus > cap:
                        return nodes[i].path
        return None

    def over_budget(self, project: int, now: int) -> str | None:
        """The path of the first tree node past its GPU-hour budget, if any."""
        nodes = self.tenancy.nodes
        for i in self.tenancy.ancestors(project):
            b = nodes[i].budget_gpu_hours
            if b is not None and self.used_gpu_ms(i, now) >= b * 3_600_000:
                return nodes[i].path
        return None
