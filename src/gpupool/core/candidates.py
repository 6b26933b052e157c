"""Candidate pools: where a job could ever run, and the candidate sets the queue is keyed by.

This module owns, for one fleet's capacity and tenancy (a pool state's ``cands``):

* per pool, the most accelerators one unit of each topology level holds (``unit_gpus``),
  which bounds the gang a pool can ever place within a node, rack, block or cluster;
* a job's candidate pools (``of``): the pools whose model, memory, software stack, node
  size, topology and clusters (the job's and its tenant's affinity) could ever hold it,
  best first, with the id of that candidate set, or why none can; memoised per request
  signature, since a national queue repeats a few hundred shapes;
* the pools a job's tenant path allows it (``within_limits``): a pool whose model a
  guarantee plus borrowing limit on the path caps below the job's size could never start
  it, however idle, so it is no candidate; with none left the job is refused, naming the
  limit ("24 H100 exceed academia/snu/vision's guarantee 0 + borrow limit 16 of any model");
* the ids of candidate sets (``set_id``), the first part of a sub-queue's key, with each
  set's pools (``sets``) and its accelerator models (``models``).

Part of the pure core, like the scheduler that drives it.
"""

from __future__ import annotations

from gpupool.core import fraction_spec
from gpupool.core.capacity import Capacity
from gpupool.core.fleet import Fleet, Level
from gpupool.core.job import JobSpec
from gpupool.core.tenancy import ANY_MODEL, Tenancy


class CandidatePools:
    """The candidate pools of one pool state's jobs, and its candidate sets."""

    def __init__(self, fleet: Fleet, tenancy: Tenancy, capacity: Capacity) -> None:
        self.fleet = fleet
        self.tenancy = tenancy
        self.capacity = capacity
        #: candidate set -> its id
        self.ids: dict[tuple[int, ...], int] = {}
        #: per candidate set id: its pools
        self.sets: list[tuple[int, ...]] = []
        #: per candidate set id: its accelerator models, each once, in candidate order
        self.models: list[tuple[str, ...]] = []
        #: request signature -> (candidate pools, why none, candidate set id or -1)
        self.cache: dict[tuple[object, ...], tuple[tuple[int, ...], str, int]] = {}
        self.unit_gpus = self.unit_capacities()
        #: (project, gpus, candidate pools) -> (the pools its limits allow, why none)
        self.limit_cache: dict[tuple[int, int, tuple[int, ...]], tuple[tuple[int, ...], str]] = {}

    def unit_capacities(self) -> list[dict[Level, int]]:
        """Per pool: the most accelerators one unit of each topology level holds."""
        out: list[dict[Level, int]] = []
        for p in self.capacity.pools:
            per_rack: dict[int, int] = {}
            per_block: dict[int, int] = {}
            for n in p.nodes:
                node = self.fleet.nodes[n]
                per_rack[node.rack] = per_rack.get(node.rack, 0) + node.gpus
                per_block[node.block] = per_block.get(node.block, 0) + node.gpus
            rack = max(per_rack.values())
            out.append(
                {
                    Level.NODE: p.gpus_per_node,
                    Level.NVLINK: rack if p.nvlink_racks else p.gpus_per_node,
                    Level.RACK: rack,
                    Level.BLOCK: max(per_block.values()),
                    Level.CLUSTER: p.total,
                }
            )
        return out

    def of(self, spec: JobSpec, project: int) -> tuple[tuple[int, ...], str, int]:
        """Pools that could ever hold this job, best first, and their set's id (``set_id``);
        or (), why none can, and -1."""
        affinity = self.tenancy.nodes[project].clusters
        sig = (
            spec.models,
            spec.min_memory_gib,
            spec.stacks,
            spec.topology,
            spec.gpus,
            spec.groups,
            spec.clusters,
            affinity,
            fraction_spec.signature(spec),
        )
        got = self.cache.get(sig)
        if got is not None:
            return got
        found, why = self.find(spec, project)
        res = (found, why, self.set_id(found) if found else -1)
        self.cache[sig] = res
        return res

    def find(self, spec: JobSpec, project: int) -> tuple[tuple[int, ...], str]:
        """``of`` without memo or set id: the pools, best first, or () and why none can.

        Reads only the fleet and tenancy, so a driver may ask it from another thread
        (``Scheduler.refusal``) while the cycle runs.
        """
        affinity = self.tenancy.nodes[project].clusters
        cat = self.fleet.catalogue
        for m in spec.models:
            if m not in cat:
                return (), f"unknown accelerator model {m!r}"
        allowed = set(spec.clusters) if spec.clusters else None
        if affinity:
            allowed = set(affinity) if allowed is None else allowed & set(affinity)
        why = []
        cands = []
        for p in self.capacity.pools:
            cname = self.fleet.clusters[p.cluster].name
            model = cat[p.model]
            if allowed is not None and cname not in allowed:
                continue
            if spec.models and p.model not in spec.models:
                continue
            if model.memory_gib < spec.min_memory_gib:
                why.append(f"{p.model} has {model.memory_gib} GiB < {spec.min_memory_gib} GiB")
                continue
            if spec.stacks and model.stack not in spec.stacks:
                why.append(f"{p.model} runs {model.stack}, not {'/'.join(spec.stacks)}")
                continue
            no_fraction = fraction_spec.model_allows(spec, model)
            if no_fraction:
                why.append(no_fraction)
                continue
            shape = spec.shape(p.gpus_per_node)
            if any(t.gpus_per_worker > p.gpus_per_node for t in shape):
                why.append(f"a worker needs more than the {p.gpus_per_node} {p.model} of one node")
                continue
            unit = self.unit_gpus[p.index][spec.topology]
            if spec.gpus > unit:
                why.append(
                    f"{spec.gpus} accelerators do not fit one {spec.topology.name.lower()} of {p.model} "
                    f"in {cname} (at most {unit})"
                )
                continue
            cands.append(p.index)
        if not cands:
            if not why:
                what = []
                if allowed is not None:
                    what.append(f"clusters {sorted(allowed)}")
                if spec.models:
                    what.append(f"models {list(spec.models)}")
                why.append("no accelerators match " + (" and ".join(what) or "the request"))
            return (), "unschedulable because " + "; ".join(dict.fromkeys(why))
        return tuple(cands), ""

    def within_limits(self, project: int, gpus: int, cands: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
        """The pools of ``cands`` where ``project``'s tenant path would ever let ``gpus`` run.

        The ledger's borrowing rule (``Ledger.borrow_limit_hit``) with nothing held: a tree
        node with a borrowing limit caps what its subtree holds of a model (or of any model,
        ``"*"``) at its guarantee plus that limit, so a job larger than the cap can never
        start there. Returns the pools left and, when none is, why (naming each limit).
        """
        key = (project, gpus, cands)
        got = self.limit_cache.get(key)
        if got is not None:
            return got
        nodes = self.tenancy.nodes
        limited = [i for i in self.tenancy.ancestors(project) if nodes[i].borrow_limit is not None]
        if not limited:
            res: tuple[tuple[int, ...], str] = (cands, "")
            self.limit_cache[key] = res
            return res
        kept: list[int] = []
        why: list[str] = []
        for pi in cands:
            model = self.capacity.pools[pi].model
            cap_why = ""
            for i in limited:
                lim = nodes[i].borrow_limit
                assert lim is not None
                for k in (model, ANY_MODEL):
                    if k in lim:
                        g = nodes[i].guaranteed.get(k, 0)
                        if gpus > g + lim[k]:
                            of = "" if k == model else " of any model"
                            cap_why = (
                                f"{gpus} {model} exceed {nodes[i].path}'s guarantee {g}"
                                f" + borrow limit {lim[k]}{of}"
                            )
                            break
                if cap_why:
                    break
            if cap_why:
                why.append(cap_why)
            else:
                kept.append(pi)
        res = (
            cands if len(kept) == len(cands) else tuple(kept),
            "" if kept else "never startable: " + "; ".join(dict.fromkeys(why)),
        )
        self.limit_cache[key] = res
        return res

    def set_id(self, cands: tuple[int, ...]) -> int:
        """The id of a candidate set (a new one the first time it is seen)."""
        cid = self.ids.get(cands)
        if cid is None:
            cid = len(self.sets)
            self.ids[cands] = cid
            self.sets.append(cands)
            self.models.append(tuple(dict.fromkeys(self.capacity.pools[p].model for p in cands)))
        return cid
