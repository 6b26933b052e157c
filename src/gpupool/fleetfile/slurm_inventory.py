"""A Slurm cluster's inventory as a gpupool fleet file: slurm.conf (+ gres.conf) -> YAML.

This module owns reading a ``slurm.conf`` the way ``gpupool fleet import-slurm`` needs it:
``ClusterName``, ``NodeName`` lines (hostlist names such as ``gpu[01-16]``, ``NodeName=DEFAULT``,
``Gres=gpu:h100:8``), ``PartitionName`` lines, and ``gres.conf`` beside it for GPU types that
slurm.conf leaves out (``Gres=gpu:8``). It maps each GRES type to a catalogue model (``h100``
-> ``H100``; ``--model h100_80g=H100`` for the rest) and writes a fleet document with one
cluster, ``backend: slurm`` and the options that reach it (``slurm_conf``, the default
partition). Slurm knows no racks or InfiniBand blocks in slurm.conf: every node goes into one
block and one rack, to be refined by hand (``topology.conf`` is not read). Nodes without GPUs
are left out, since a gpupool node has accelerators.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpupool.core.accelerator import Catalogue
from gpupool.fleetfile.hostlist import expand_hostlist

__all__ = ["SlurmInventory", "SlurmInventoryError", "fleet_document", "read_slurm_conf"]


class SlurmInventoryError(ValueError):
    """A slurm.conf that cannot become a fleet; the message names the line or node."""


@dataclass(slots=True)
class SlurmNodeSpec:
    name: str
    gres: str = ""
    partitions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SlurmInventory:
    cluster: str
    conf: Path
    nodes: list[SlurmNodeSpec]
    partitions: dict[str, list[str]]  # name -> node names
    default_partition: str
    gres_types: dict[str, str]  # node -> GPU type from gres.conf


def _hostlist(text: str) -> list[str]:
    return list(expand_hostlist(text))


def _lines(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, {lower-case key: value}) per configuration line; continuations joined."""
    out: list[tuple[int, dict[str, str]]] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if not line:
            continue
        pairs: dict[str, str] = {}
        for token in re.findall(r'(\S+?=(?:"[^"]*"|\S+))', line):
            key, _, value = token.partition("=")
            pairs[key.lower()] = value.strip('"')
        out.append((start, pairs))
    return out


def read_slurm_conf(path: Path) -> SlurmInventory:
    """Nodes, GRES and partitions of a slurm.conf (and of gres.conf beside it)."""
    path = Path(path)
    try:
        lines = _lines(path)
    except OSError as e:
        raise SlurmInventoryError(f"cannot read {path}: {e.strerror or e}") from None
    cluster = "slurm"
    defaults: dict[str, str] = {}
    nodes: dict[str, SlurmNodeSpec] = {}
    partitions: dict[str, list[str]] = {}
    default_partition = ""
    for number, kv in lines:
        if "clustername" in kv:
            cluster = kv["clustername"]
        if "nodename" in kv:
            if kv["nodename"].upper() == "DEFAULT":
                defaults.update(kv)
                continue
            merged = {**defaults, **kv}
            for name in _hostlist(kv["nodename"]):
                nodes[name] = SlurmNodeSpec(name, merged.get("gres", ""))
        elif "partitionname" in kv and kv["partitionname"].upper() != "DEFAULT":
            pname = kv["partitionname"]
            members = kv.get("nodes", "")
            names = list(nodes) if members.upper() == "ALL" else _hostlist(members)
            unknown = [n for n in names if n not in nodes]
            if unknown:
                raise SlurmInventoryError(f"{path}:{number}: partition {pname} names unknown nodes {unknown}")
            partitions[pname] = names
            for n in names:
                nodes[n].partitions.append(pname)
            if kv.get("default", "").upper() == "YES" or not default_partition:
                default_partition = pname
    if not nodes:
        raise SlurmInventoryError(f"{path}: no NodeName lines")
    gres_types: dict[str, str] = {}
    gres_conf = path.parent / "gres.conf"
    if gres_conf.exists():
        for _, kv in _lines(gres_conf):
            if kv.get("name") == "gpu" and "type" in kv:
                for n in _hostlist(kv.get("nodename", "")) or list(nodes):
                    gres_types.setdefault(n, kv["type"])
    return SlurmInventory(
        cluster, path.resolve(), list(nodes.values()), partitions, default_partition, gres_types
    )


def _gpus(node: SlurmNodeSpec, gres_types: Mapping[str, str]) -> tuple[str, int] | None:
    """(GPU type, count) of a node's ``Gres=``, or None without GPUs."""
    # "gpu:h100:4(S:0-1)": the socket binding in parentheses may hold ":" and ","
    for item in filter(None, re.sub(r"\([^)]*\)", "", node.gres).split(",")):
        parts = item.split(":")
        if parts[0] != "gpu":
            continue
        count_text = parts[-1]
        typ = parts[1] if len(parts) == 3 else gres_types.get(node.name, "")
        try:
            return typ, int(count_text)
        except ValueError:
            raise SlurmInventoryError(
                f"node {node.name}: cannot read a GPU count in Gres={node.gres}"
            ) from None
    return None


def fleet_document(
    inv: SlurmInventory, catalogue: Catalogue, models: Mapping[str, str] | None = None, site: str = ""
) -> dict[str, Any]:
    """The fleet file (as a mapping) for ``inv``; ``models`` maps GRES types to catalogue models."""
    by_lower = {m.lower(): m for m in catalogue.names()}
    chosen = {k.lower(): v for k, v in (models or {}).items()}
    groups: dict[tuple[str, int], list[str]] = {}
    for node in inv.nodes:
        got = _gpus(node, inv.gres_types)
        if got is None:
            continue
        typ, count = got
        model = chosen.get(typ.lower()) or by_lower.get(typ.lower())
        if model is None:
            hint = f"--model {typ or 'TYPE'}=MODEL" if typ else "a Type= in gres.conf or --model"
            raise SlurmInventoryError(
                f"node {node.name}: GPU type {typ or '(none)'!r} is no catalogue model (known: "
                f"{', '.join(catalogue.names())}); give {hint}"
            )
        if model not in catalogue:
            raise SlurmInventoryError(f"--model {typ}={model}: {model!r} is not in the catalogue")
        groups.setdefault((model, count), []).append(node.name)
    if not groups:
        raise SlurmInventoryError(f"{inv.conf}: no node has GPUs (Gres=gpu:...)")
    node_groups = [
        {"model": m, "gpus": g, "name": names[0] if len(names) == 1 else "{" + ",".join(names) + "}"}
        for (m, g), names in groups.items()
    ]
    options: dict[str, str] = {"slurm_conf": str(inv.conf)}
    if inv.default_partition:
        options["partition"] = inv.default_partition
    return {
        "name": inv.cluster,
        "description": f"imported from {inv.conf} (partitions: {', '.join(inv.partitions) or 'none'})",
        "sites": [
            {
                "name": site or inv.cluster,
                "clusters": [
                    {
                        "name": inv.cluster,
                        "backend": "slurm",
                        "options": options,
                        "blocks": [{"name": "b00", "racks": [{"name": "r00", "nodes": node_groups}]}],
                    }
                ],
            }
        ],
    }


def fleet_yaml(document: Mapping[str, Any]) -> str:
    header = (
        "# gpupool fleet imported from slurm.conf: racks and blocks are not in slurm.conf; refine them.\n"
    )
    return header + yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=1000)
