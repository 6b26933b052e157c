"""Free capacity of the fleet and gang placement on it.

This module owns the mutable occupancy of every node (which accelerators are free, which
nodes are down or drained) and the indexes that make a placement decision O(log n) rather
than O(nodes) (DESIGN.md section 5):

- a *pool* is the nodes of one accelerator model and one node size in one cluster;
- per pool, nodes are bucketed by their free count (a sorted list per count), so a best-fit
  single-node placement looks at no more than ``gpus_per_node`` buckets;
- per pool and per block the same buckets exist, so a gang confined to a block is placed
  without scanning the cluster;
- per pool, racks and blocks are ranked by how many *whole* free nodes they hold, so a
  multi-node gang finds the tightest rack or block that holds it with one bisection.

It knows nothing of jobs' priorities or tenants: the scheduler asks "place this gang in this
pool at this topology level" and applies or rolls back what it gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sortedcontainers import SortedList

from gpupool.core.fleet import Fleet, Level
from gpupool.core.job import TaskGroup

#: A placement: (node index, accelerator ids on that node) per piece of the gang.
Placement = tuple[tuple[int, tuple[int, ...]], ...]

#: Racks/blocks tried per placement before giving up on tighter topology (bounds the cost
#: of a search in a fragmented fleet; a miss falls back to the next looser level).
MAX_UNITS_TRIED = 32


@dataclass(slots=True)
class Pool:
    """Nodes of one model and size in one cluster, with their free-capacity indexes."""

    index: int
    cluster: int
    model: str
    gpus_per_node: int
    nodes: list[int]
    nvlink_racks: bool
    buckets: list[SortedList]
    block_buckets: dict[int, list[SortedList]]
    rack_nodes: dict[int, list[int]]
    rack_whole: dict[int, int]
    block_whole: dict[int, int]
    rack_rank: SortedList
    block_rank: SortedList
    free: int = 0
    schedulable: int = 0

    @property
    def total(self) -> int:
        return len(self.nodes) * self.gpus_per_node


class Capacity:
    """Occupancy of a fleet: free accelerators per node and the pool indexes above."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        n = len(fleet.nodes)
        self.node_gpus = [nd.gpus for nd in fleet.nodes]
        self.free = [nd.gpus for nd in fleet.nodes]
        self.mask = [(1 << nd.gpus) - 1 for nd in fleet.nodes]
        #: a node that is down or drained takes no new work (its running work may stay)
        self.schedulable = [True] * n
        self.node_pool = [0] * n
        self.node_block = [nd.block for nd in fleet.nodes]
        self.node_rack = [nd.rack for nd in fleet.nodes]
        pools: dict[tuple[int, str, int], Pool] = {}
        for nd in fleet.nodes:
            key = (nd.cluster, nd.model, nd.gpus)
            p = pools.get(key)
            if p is None:
                p = Pool(
                    len(pools),
                    nd.cluster,
                    nd.model,
                    nd.gpus,
                    [],
                    fleet.racks[nd.rack].nvlink,
                    [SortedList() for _ in range(nd.gpus + 1)],
                    {},
                    {},
                    {},
                    {},
                    SortedList(),
                    SortedList(),
                )
                pools[key] = p
            p.nodes.append(nd.index)
            self.node_pool[nd.index] = p.index
            p.buckets[nd.gpus].add(nd.index)
            bb = p.block_buckets.get(nd.block)
            if bb is None:
                bb = p.block_buckets[nd.block] = [SortedList() for _ in range(nd.gpus + 1)]
            bb[nd.gpus].add(nd.index)
            p.rack_nodes.setdefault(nd.rack, []).append(nd.index)
            p.rack_whole[nd.rack] = p.rack_whole.get(nd.rack, 0) + 1
            p.block_whole[nd.block] = p.block_whole.get(nd.block, 0) + 1
            p.free += nd.gpus
            p.schedulable += nd.gpus
        for p in pools.values():
            p.rack_rank.update((c, r) for r, c in p.rack_whole.items())
            p.block_rank.update((c, b) for b, c in p.block_whole.items())
        self.pools: list[Pool] = sorted(pools.values(), key=lambda q: q.index)
        self.pools_by_cluster_model: dict[tuple[int, str], list[int]] = {}
        for p in self.pools:
            self.pools_by_cluster_model.setdefault((p.cluster, p.model), []).append(p.index)

    # -- bookkeeping -------------------------------------------------------------------

    def _set_free(self, node: int, new_free: int) -> None:
        """Move a node between buckets and keep whole-node counts right."""
        old = self.free[node]
        if old == new_free:
            return
        p = self.pools[self.node_pool[node]]
        self.free[node] = new_free
        if not self.schedulable[node]:
            return
        g = p.gpus_per_node
        p.buckets[old].remove(node)
        p.buckets[new_free].add(node)
        bb = p.block_buckets[self.node_block[node]]
        bb[old].remove(node)
        bb[new_free].add(node)
        p.free += new_free - old
        if old == g or new_free == g:
            delta = 1 if new_free == g else -1
            self._bump_whole(p, node, delta)

    def _bump_whole(self, p: Pool, node: int, delta: int) -> None:
        r = self.node_rack[node]
        c = p.rack_whole[r]
        p.rack_rank.remove((c, r))
        p.rack_whole[r] = c + delta
        p.rack_rank.add((c + delta, r))
        b = self.node_block[node]
        c = p.block_whole[b]
        p.block_rank.remove((c, b))
        p.block_whole[b] = c + delta
        p.block_rank.add((c + delta, b))

    def allocate(self, node: int, count: int) -> tuple[int, ...]:
        """Take ``count`` free accelerators of ``node`` (lowest ids first); returns their ids."""
        m = self.mask[node]
        ids: list[int] = []
        while len(ids) < count:
            if m == 0:
                raise AssertionError(f"node {node} has fewer than {count} free accelerators")
            low = m & -m
            ids.append(low.bit_length() - 1)
            m ^= low
        self.mask[node] = m
        self._set_free(node, self.free[node] - count)
        return tuple(ids)

    def take(self, node: int, ids: Iterable[int]) -> None:
        """Take exactly these accelerators of ``node`` (to restore a trial release)."""
        m = self.mask[node]
        k = 0
        for i in ids:
            bit = 1 << i
            if not m & bit:
                raise AssertionError(f"accelerator {i} of node {node} is not free")
            m ^= bit
            k += 1
        self.mask[node] = m
        self._set_free(node, self.free[node] - k)

    def release(self, node: int, ids: Iterable[int]) -> None:
        """Give accelerators back to ``node``."""
        m = self.mask[node]
        k = 0
        for i in ids:
            bit = 1 << i
            if m & bit:
                raise AssertionError(f"accelerator {i} of node {node} released twice")
            m |= bit
            k += 1
        self.mask[node] = m
        self._set_free(node, self.free[node] + k)

    def apply(self, pieces: Sequence[tuple[int, int]]) -> Placement:
        """Allocate a planned placement ((node, count) pairs)."""
        return tuple((node, self.allocate(node, count)) for node, count in pieces)

    def undo(self, placement: Placement) -> None:
        for node, ids in placement:
            self.release(node, ids)

    def set_schedulable(self, node: int, schedulable: bool) -> None:
        """Drain / undrain (or down / up) a node: it leaves or rejoins the free indexes."""
        if self.schedulable[node] == schedulable:
            return
        p = self.pools[self.node_pool[node]]
        f = self.free[node]
        g = p.gpus_per_node
        bb = p.block_buckets[self.node_block[node]]
        if schedulable:
            self.schedulable[node] = True
            p.buckets[f].add(node)
            bb[f].add(node)
            p.free += f
            p.schedulable += g
            if f == g:
                self._bump_whole(p, node, +1)
        else:
            p.buckets[f].remove(node)
            bb[f].remove(node)
            p.free -= f
            p.schedulable -= g
            if f == g:
                self._bump_whole(p, node, -1)
            self.schedulable[node] = False

    # -- placement ---------------------------------------------------------------------

    def plan(
        self, pool_index: int, gpus: int, shape: Sequence[TaskGroup], level: Level
    ) -> list[tuple[int, int]] | None:
        """Plan a placement of a gang in one pool within one unit of ``level``; None if none.

        Tightest first: one node whenever the gang fits one, then the tightest rack, then
        block, then the whole cluster, best fit at each step (topology-aware consolidation
        even when the job would accept any placement). Nothing is allocated: the caller
        applies the plan.
        """
        p = self.pools[pool_index]
        if gpus > p.free:
            return None
        g = p.gpus_per_node
        if any(t.gpus_per_worker > g for t in shape):
            return None
        node_bound = level is Level.NODE or (level is Level.NVLINK and not p.nvlink_racks)
        if gpus <= g:
            node = _best_fit(p.buckets, gpus)
            if node is not None:
                return [(node, gpus)]
            if node_bound or (len(shape) == 1 and shape[0].workers == 1):
                return None
        elif node_bound:
            return None
        full, chunks = _demand(shape, g)
        got = self._plan_in_racks(p, full, chunks)
        if got is not None or level <= Level.RACK:
            return got
        got = self._plan_in_blocks(p, full, chunks)
        if got is not None or level is Level.BLOCK:
            return got
        return _plan_in_buckets(p.buckets, full, chunks, g)

    def _plan_in_racks(self, p: Pool, full: int, chunks: list[int]) -> list[tuple[int, int]] | None:
        g = p.gpus_per_node
        start = p.rack_rank.bisect_left((full, -1))
        for tried, (_, rack) in enumerate(p.rack_rank.islice(start)):
            if tried >= MAX_UNITS_TRIED:
                break
            nodes = [n for n in p.rack_nodes[rack] if self.schedulable[n]]
            wholes = [n for n in nodes if self.free[n] == g][:full]
            taken = set(wholes)
            rest = _place_chunks(chunks, [n for n in nodes if n not in taken], self.free)
            if rest is not None:
                return [(n, g) for n in wholes] + rest
        return None

    def _plan_in_blocks(self, p: Pool, full: int, chunks: list[int]) -> list[tuple[int, int]] | None:
        start = p.block_rank.bisect_left((full, -1))
        for tried, (_, block) in enumerate(p.block_rank.islice(start)):
            if tried >= MAX_UNITS_TRIED:
                break
            got = _plan_in_buckets(p.block_buckets[block], full, chunks, p.gpus_per_node)
            if got is not None:
                return got
        return None

    def validate(self) -> None:
        """Check the indexes agree with the per-node truth (for tests and the simulator)."""
        for p in self.pools:
            free = 0
            for n in p.nodes:
                f = self.free[n]
                if f != bin(self.mask[n]).count("1"):
                    raise AssertionError(f"node {n}: free count {f} disagrees with its mask")
                if not 0 <= f <= p.gpus_per_node:
                    raise AssertionError(f"node {n}: free count {f} out of range")
                if self.schedulable[n]:
                    free += f
                    if n not in p.buckets[f]:
                        raise AssertionError(f"node {n} missing from bucket {f}")
            if free != p.free:
                raise AssertionError(f"pool {p.index}: free {p.free} != sum of nodes {free}")
            for r, c in p.rack_whole.items():
                real = sum(
                    1 for n in p.rack_nodes[r] if self.schedulable[n] and self.free[n] == p.gpus_per_node
                )
                if real != c:
                    raise AssertionError(f"pool {p.index} rack {r}: whole count {c} != {real}")


def _best_fit(buckets: Sequence[SortedList], need: int) -> int | None:
    """The lowest-index node with the fewest free accelerators that still hold ``need``."""
    for k in range(need, len(buckets)):
        b = buckets[k]
        if b:
            return int(b[0])
    return None


def _demand(shape: Sequence[TaskGroup], g: int) -> tuple[int, list[int]]:
    """Whole nodes and remainder chunks (accelerators per chunk) a gang needs on g-nodes."""
    full = 0
    chunks: list[int] = []
    for t in shape:
        per_node = g // t.gpus_per_worker
        f, rem = divmod(t.workers, per_node)
        full += f
        if rem:
            chunks.append(rem * t.gpus_per_worker)
    chunks.sort(reverse=True)
    return full, chunks


def _place_chunks(chunks: list[int], nodes: list[int], free: list[int]) -> list[tuple[int, int]] | None:
    """Best-fit-decreasing of remainder chunks onto a small set of nodes."""
    left = {n: free[n] for n in nodes}
    out: list[tuple[int, int]] = []
    for c in chunks:
        best = -1
        for n in nodes:
            f = left[n]
            if f >= c and (best < 0 or f < left[best]):
                best = n
        if best < 0:
            return None
        left[best] -= c
        out.append((best, c))
    return _merge(out)


def _plan_in_buckets(
    buckets: Sequence[SortedList], full: int, chunks: list[int], g: int
) -> list[tuple[int, int]] | None:
    """Whole nodes (lowest index first) and best-fit remainders from a bucket index."""
    wholes = buckets[g]
    if len(wholes) < full:
        return None
    plan = [(int(n), g) for n in wholes.islice(0, full)]
    taken = {n for n, _ in plan}
    left: dict[int, int] = {}
    for c in chunks:
        best, best_free = -1, g + 1
        for n, f in left.items():
            if c <= f < best_free:
                best, best_free = n, f
        for k in range(c, min(best_free, g + 1)):
            for n in buckets[k]:
                if n not in taken and n not in left:
                    best, best_free = int(n), k
                    break
            if best_free == k:
                break
        if best < 0:
            return None
        left[best] = best_free - c
        plan.append((best, c))
    return _merge(plan)


def _merge(plan: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: dict[int, int] = {}
    for n, c in plan:
        merged[n] = merged.get(n, 0) + c
    return list(merged.items())
