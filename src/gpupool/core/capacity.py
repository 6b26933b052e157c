"""Free capacity of the fleet and gang placement on it.

This module owns the mutable occupancy of every node (which accelerators are free, which
nodes are down or drained) and the indexes that make a placement decision O(log n) rather
than O(nodes) (national scale: ``docs/adr/0004-national-scale-fairness-and-throughput.md``):

- a *pool* is the nodes of one accelerator model and one node size in one cluster;
- per pool, nodes are bucketed by their free count (a set per count), so a best-fit
  single-node placement looks at no more than ``gpus_per_node`` buckets;
- per pool and per block the same buckets exist, so a gang confined to a block is placed
  without scanning the cluster;
- per pool, racks and blocks are ranked by how many *whole* free nodes they hold, so a
  multi-node gang finds the tightest rack or block that holds it without a scan.

Each of those sets is a bitset (a Python int) over the positions of its members in a
fixed, index-ordered list: moving a node between buckets is two XORs, the lowest member
is one bit trick, and iteration runs in index order (the order placement depends on).

It knows nothing of jobs' priorities or tenants: the scheduler asks "place this gang in this
pool at this topology level" and applies or rolls back what it gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from gpupool.core.fleet import Fleet, Level
from gpupool.core.job import TaskGroup

#: A placement: (node index, accelerator ids on that node) per piece of the gang.
Placement = tuple[tuple[int, tuple[int, ...]], ...]

#: Racks/blocks tried per placement before giving up on tighter topology (bounds the cost
#: of a search in a fragmented fleet; a miss falls back to the next looser level).
MAX_UNITS_TRIED = 32


@dataclass(slots=True)
class Pool:
    """Nodes of one model and size in one cluster, with their free-capacity indexes.

    Bitsets: ``buckets[k]`` has bit i set when ``nodes[i]`` is schedulable with k free;
    ``block_buckets[b][k]`` the same over ``block_nodes[b]`` (block b = ``blocks[b]``);
    ``rack_by_count[c]`` has bit r set when rack ``racks[r]`` holds c whole free nodes
    (``rack_whole[r]``), and likewise for blocks. Lists are in fleet index order.
    """

    index: int
    cluster: int
    model: str
    gpus_per_node: int
    nodes: list[int]
    nvlink_racks: bool
    buckets: list[int]
    racks: list[int]
    rack_nodes: list[list[int]]
    rack_whole: list[int]
    rack_by_count: list[int]
    blocks: list[int]
    block_nodes: list[list[int]]
    block_buckets: list[list[int]]
    block_whole: list[int]
    block_by_count: list[int]
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
        #: per node: its bit in its pool's buckets, its block's and its rack's positions in
        #: the pool, and its bit in its block's buckets
        self._bit = [0] * n
        self._block_pos = [0] * n
        self._block_bit = [0] * n
        self._rack_pos = [0] * n
        members: dict[tuple[int, str, int], list[int]] = {}
        for nd in sorted(fleet.nodes, key=lambda x: x.index):
            members.setdefault((nd.cluster, nd.model, nd.gpus), []).append(nd.index)
        self.pools: list[Pool] = []
        for (cluster, model, g), nodes in members.items():
            racks = sorted({self.node_rack[i] for i in nodes})
            blocks = sorted({self.node_block[i] for i in nodes})
            rpos = {r: k for k, r in enumerate(racks)}
            bpos = {b: k for k, b in enumerate(blocks)}
            rack_nodes: list[list[int]] = [[] for _ in racks]
            block_nodes: list[list[int]] = [[] for _ in blocks]
            for i in nodes:
                rack_nodes[rpos[self.node_rack[i]]].append(i)
                block_nodes[bpos[self.node_block[i]]].append(i)
            rack_whole = [len(x) for x in rack_nodes]
            block_whole = [len(x) for x in block_nodes]
            rack_by_count = [0] * (max(rack_whole) + 1)
            for r, c in enumerate(rack_whole):
                rack_by_count[c] |= 1 << r
            block_by_count = [0] * (max(block_whole) + 1)
            for b, c in enumerate(block_whole):
                block_by_count[c] |= 1 << b
            buckets = [0] * (g + 1)
            buckets[g] = (1 << len(nodes)) - 1
            block_buckets = []
            for members_b in block_nodes:
                bb = [0] * (g + 1)
                bb[g] = (1 << len(members_b)) - 1
                block_buckets.append(bb)
            first = fleet.nodes[nodes[0]]
            p = Pool(
                len(self.pools),
                cluster,
                model,
                g,
                nodes,
                fleet.racks[first.rack].nvlink,
                buckets,
                racks,
                rack_nodes,
                rack_whole,
                rack_by_count,
                blocks,
                block_nodes,
                block_buckets,
                block_whole,
                block_by_count,
                free=g * len(nodes),
                schedulable=g * len(nodes),
            )
            self.pools.append(p)
            for k, i in enumerate(nodes):
                self.node_pool[i] = p.index
                self._bit[i] = 1 << k
                self._rack_pos[i] = rpos[self.node_rack[i]]
            for b, members_b in enumerate(block_nodes):
                for k, i in enumerate(members_b):
                    self._block_pos[i] = b
                    self._block_bit[i] = 1 << k
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
        bit = self._bit[node]
        b = p.buckets
        b[old] ^= bit
        b[new_free] ^= bit
        bit = self._block_bit[node]
        b = p.block_buckets[self._block_pos[node]]
        b[old] ^= bit
        b[new_free] ^= bit
        p.free += new_free - old
        g = p.gpus_per_node
        if old == g or new_free == g:
            self._bump_whole(p, node, 1 if new_free == g else -1)

    def _bump_whole(self, p: Pool, node: int, delta: int) -> None:
        r = self._rack_pos[node]
        c = p.rack_whole[r]
        bit = 1 << r
        p.rack_by_count[c] ^= bit
        p.rack_by_count[c + delta] ^= bit
        p.rack_whole[r] = c + delta
        b = self._block_pos[node]
        c = p.block_whole[b]
        bit = 1 << b
        p.block_by_count[c] ^= bit
        p.block_by_count[c + delta] ^= bit
        p.block_whole[b] = c + delta

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
        bb = p.block_buckets[self._block_pos[node]]
        # the node is in no bucket while unschedulable, in bucket f while schedulable
        p.buckets[f] ^= self._bit[node]
        bb[f] ^= self._block_bit[node]
        if schedulable:
            self.schedulable[node] = True
            p.free += f
            p.schedulable += g
            if f == g:
                self._bump_whole(p, node, +1)
        else:
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
            node = _best_fit(p.buckets, p.nodes, gpus)
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
        return _plan_in_buckets(p.buckets, p.nodes, full, chunks, g)

    def _plan_in_racks(self, p: Pool, full: int, chunks: list[int]) -> list[tuple[int, int]] | None:
        g = p.gpus_per_node
        tried = 0
        for c in range(full, len(p.rack_by_count)):
            for r in _bits(p.rack_by_count[c]):
                if tried >= MAX_UNITS_TRIED:
                    return None
                tried += 1
                nodes = [n for n in p.rack_nodes[r] if self.schedulable[n]]
                wholes = [n for n in nodes if self.free[n] == g][:full]
                taken = set(wholes)
                rest = _place_chunks(chunks, [n for n in nodes if n not in taken], self.free)
                if rest is not None:
                    return [(n, g) for n in wholes] + rest
        return None

    def _plan_in_blocks(self, p: Pool, full: int, chunks: list[int]) -> list[tuple[int, int]] | None:
        tried = 0
        for c in range(full, len(p.block_by_count)):
            for b in _bits(p.block_by_count[c]):
                if tried >= MAX_UNITS_TRIED:
                    return None
                tried += 1
                got = _plan_in_buckets(p.block_buckets[b], p.block_nodes[b], full, chunks, p.gpus_per_node)
                if got is not None:
                    return got
        return None

    def validate(self) -> None:
        """Check the indexes agree with the per-node truth (for tests and the simulator)."""
        for p in self.pools:
            free = 0
            g = p.gpus_per_node
            for n in p.nodes:
                f = self.free[n]
                if f != bin(self.mask[n]).count("1"):
                    raise AssertionError(f"node {n}: free count {f} disagrees with its mask")
                if not 0 <= f <= g:
                    raise AssertionError(f"node {n}: free count {f} out of range")
                bb = p.block_buckets[self._block_pos[n]]
                for k in range(g + 1):
                    inside = bool(p.buckets[k] & self._bit[n])
                    if inside != (self.schedulable[n] and k == f):
                        raise AssertionError(f"node {n} {'in' if inside else 'missing from'} bucket {k}")
                    if bool(bb[k] & self._block_bit[n]) != inside:
                        raise AssertionError(f"node {n}: block bucket {k} disagrees with its pool's")
                if self.schedulable[n]:
                    free += f
            if free != p.free:
                raise AssertionError(f"pool {p.index}: free {p.free} != sum of nodes {free}")
            for units, whole, by_count, what in (
                (p.rack_nodes, p.rack_whole, p.rack_by_count, "rack"),
                (p.block_nodes, p.block_whole, p.block_by_count, "block"),
            ):
                for r, c in enumerate(whole):
                    real = sum(1 for n in units[r] if self.schedulable[n] and self.free[n] == g)
                    if real != c:
                        raise AssertionError(f"pool {p.index} {what} {r}: whole count {c} != {real}")
                    for k, x in enumerate(by_count):
                        if bool(x >> r & 1) != (k == c):
                            raise AssertionError(f"pool {p.index} {what} {r}: ranked at {k}, holds {c}")


def _bits(x: int) -> Iterator[int]:
    """Positions of the set bits of ``x``, lowest first."""
    if not x:
        return
    if x & (x - 1) == 0:
        yield x.bit_length() - 1
        return
    s = bin(x)[:1:-1]  # least significant bit first
    i = s.find("1")
    while i >= 0:
        yield i
        i = s.find("1", i + 1)


def _best_fit(buckets: list[int], nodes: list[int], need: int) -> int | None:
    """The lowest-index node with the fewest free accelerators that still hold ``need``."""
    for k in range(need, len(buckets)):
        b = buckets[k]
        if b:
            return nodes[(b & -b).bit_length() - 1]
    return None


def _demand(shape: Sequence[TaskGroup], g: int) -> tuple[int, list[int]]:
    """Whole nodes and remainder chunks (accelerators per chunk) a gang needs on g-nodes."""
    full = 0
    chunks: list[int] = []
    for t in shape:
        per_node = g // t.gpus_per_worker
        f, rem = divmod(t.workers, per_node)
        # a node's worth of this group's workers fills the node only when they use all of
        # its accelerators; otherwise it is a chunk (a 5-GPU worker on an 8-GPU node must not
        # take the whole node: the gang would hold more than it asked)
        if per_node * t.gpus_per_worker == g:
            full += f
        else:
            chunks.extend([per_node * t.gpus_per_worker] * f)
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
    buckets: list[int], nodes: list[int], full: int, chunks: list[int], g: int
) -> list[tuple[int, int]] | None:
    """Whole nodes (lowest index first) and best-fit remainders from a bucket index over ``nodes``."""
    wholes = buckets[g]
    if full and wholes.bit_count() < full:
        return None
    plan: list[tuple[int, int]] = []
    if full:
        for i in _bits(wholes):
            plan.append((nodes[i], g))
            if len(plan) == full:
                break
    taken = {n for n, _ in plan}
    left: dict[int, int] = {}
    for c in chunks:
        best, best_free = -1, g + 1
        for n, f in left.items():
            if c <= f < best_free:
                best, best_free = n, f
        for k in range(c, min(best_free, g + 1)):
            for i in _bits(buckets[k]):
                n = nodes[i]
                if n not in taken and n not in left:
                    best, best_free = n, k
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
