"""Node failures, repairs, drains and maintenance windows in the digital twin.

This module owns what happens to the fleet's nodes during a simulation, as a stream of
``NodeEvent`` (a node goes down, is drained, or comes back up) the simulator feeds to the
production scheduler as ``NodeDown``/``NodeDrained``/``NodeUp``. Two sources:

* **drawn from rates** (``FailureRates``, ``NodeFailures``): each node alternates an up
  time drawn from an exponential law with mean MTBF and a repair time with mean MTTR. The
  draws of a node come from its own stream of a seeded generator (seed, node index), so a
  run is deterministic and adding a node does not change the failures of the others;
* **read from a failure log** (``read_failure_log``): a CSV file ``time_s,node,event``
  with ``event`` one of ``down``, ``drain``, ``up``; a drain followed by an up is a
  maintenance window (``maintenance_window`` writes one).

The default rates are published ones (``LLAMA3_*``): Meta's Llama 3 pre-training on
16,384 H100 GPUs saw 419 unexpected interruptions in 54 days, about 78 % of them attributed
to confirmed or suspected hardware faults (Llama Team, "The Llama 3 Herd of Models",
arXiv:2407.21783, 2024, section 3.3.4, Table 5). Counted per accelerator that is one
interruption every 50,677 GPU-hours, i.e. a mean time between failures of 6,335 h for an
8-GPU node. The paper gives no repair time: ``DEFAULT_MTTR_H`` is an assumption, stated
as such. Every model of the catalogue gets the same per-accelerator rate unless told
otherwise (the paper measured H100 only).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from gpupool.core.fleet import Fleet

#: Llama 3 pre-training (arXiv:2407.21783, section 3.3.4): unexpected interruptions ...
LLAMA3_INTERRUPTIONS: Final = 419
#: ... on this many H100 GPUs ...
LLAMA3_GPUS: Final = 16_384
#: ... over this many days; 78 % were confirmed or suspected hardware issues.
LLAMA3_DAYS: Final = 54
#: Unexpected interruptions per accelerator-hour in that run (1 per 50,677 GPU-hours).
LLAMA3_PER_GPU_HOUR: Final = LLAMA3_INTERRUPTIONS / (LLAMA3_GPUS * LLAMA3_DAYS * 24)
#: Mean time to repair a failed node, hours. An assumption (a day to diagnose, swap the
#: part or the node and return it to service): the Llama 3 paper reports no repair times.
DEFAULT_MTTR_H: Final = 24.0
MS_PER_HOUR: Final = 3_600_000
#: Default rate key: applies to every model without its own.
ANY_MODEL: Final = "*"


class NodeEventKind(StrEnum):
    """What happens to a node: it fails, is drained (work finishes, nothing new starts), or is back."""

    DOWN = "down"
    DRAIN = "drain"
    UP = "up"


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """At ``t_ms`` (ms after the simulation's first submission) ``node`` goes ``kind``."""

    t_ms: int
    node: str
    kind: NodeEventKind


class FailureLogError(ValueError):
    """A failure log line the twin cannot use: names the file, line and field."""

    def __init__(self, path: str, line: int, field_name: str, message: str) -> None:
        self.path, self.line, self.field, self.message = path, line, field_name, message
        super().__init__(f"{path}:{line}: field {field_name!r}: {message}")


@dataclass(frozen=True, slots=True)
class FailureRates:
    """Failure rates per accelerator-hour by model (``*`` for the rest), scaled by ``scale``,
    and the mean repair time in hours."""

    per_gpu_hour: Mapping[str, float] = field(default_factory=lambda: {ANY_MODEL: LLAMA3_PER_GPU_HOUR})
    mttr_h: float = DEFAULT_MTTR_H
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise ValueError(f"failure rate scale must be >= 0, got {self.scale}")
        if self.mttr_h <= 0:
            raise ValueError(f"mean time to repair must be > 0 hours, got {self.mttr_h}")
        for model, rate in self.per_gpu_hour.items():
            if rate < 0:
                raise ValueError(f"failure rate of {model!r} must be >= 0, got {rate}")

    def mtbf_h(self, model: str, gpus: int) -> float:
        """Mean time between failures of a node of ``gpus`` accelerators of ``model``, hours
        (infinite when its rate is 0)."""
        rate = self.per_gpu_hour.get(model, self.per_gpu_hour.get(ANY_MODEL, 0.0)) * self.scale * gpus
        return float("inf") if rate <= 0 else 1.0 / rate


class NodeFailures:
    """Draws each node's failures and repairs lazily, one at a time, deterministically.

    ``first()`` gives every node's first failure; ``after(event)`` the event that follows
    one it gave (the repair after a failure, the next failure after a repair). Lazy, so a
    simulation that drains for days after its last arrival draws no failures it never reaches.
    """

    def __init__(self, fleet: Fleet, rates: FailureRates, seed: int, start_ms: int = 0) -> None:
        self.fleet = fleet
        self.rates = rates
        self.start_ms = start_ms
        self._mtbf_ms = [rates.mtbf_h(n.model, n.gpus) * MS_PER_HOUR for n in fleet.nodes]
        self._mttr_ms = rates.mttr_h * MS_PER_HOUR
        # imported here: the CLI imports this module for its error type at start-up
        import numpy as np

        self._rng = [np.random.default_rng([seed, 3, n.index]) for n in fleet.nodes]

    def first(self) -> Iterator[NodeEvent]:
        for n in self.fleet.nodes:
            if self._mtbf_ms[n.index] != float("inf"):
                yield self._down(n.index, self.start_ms)

    def after(self, event: NodeEvent) -> NodeEvent | None:
        idx = self.fleet.node_by_name[event.node]
        if event.kind is NodeEventKind.DOWN:
            repair = max(1, round(float(self._rng[idx].exponential(self._mttr_ms))))
            return NodeEvent(event.t_ms + repair, event.node, NodeEventKind.UP)
        return self._down(idx, event.t_ms)

    def _down(self, idx: int, since: int) -> NodeEvent:
        up = max(1, round(float(self._rng[idx].exponential(self._mtbf_ms[idx]))))
        return NodeEvent(since + up, self.fleet.nodes[idx].name, NodeEventKind.DOWN)


LOG_COLUMNS: Final = ("time_s", "node", "event")


def read_failure_log(path: Path, fleet: Fleet) -> list[NodeEvent]:
    """The node events of a failure log, in time order (stable for equal times).

    CSV with the header ``time_s,node,event``: seconds after the simulation's first
    submission (a number >= 0), a node of ``fleet``, and ``down``, ``drain`` or ``up``.
    Any other line raises ``FailureLogError`` naming the file, line and field.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"failure log {name!r} does not exist") from None
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != LOG_COLUMNS:
        got = ",".join(header) if header else "an empty file"
        raise FailureLogError(name, 1, "header", f"expected {','.join(LOG_COLUMNS)}, got {got!r}")
    kinds = ", ".join(k.value for k in NodeEventKind)
    out: list[NodeEvent] = []
    for line, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(LOG_COLUMNS):
            raise FailureLogError(name, line, "line", f"expected 3 fields, got {len(row)}")
        t_text, node, kind_text = (c.strip() for c in row)
        try:
            t_s = float(t_text)
        except ValueError:
            raise FailureLogError(name, line, "time_s", f"{t_text!r} is not a number of seconds") from None
        if not t_s >= 0 or t_s == float("inf"):
            raise FailureLogError(name, line, "time_s", f"{t_text!r} must be a finite number >= 0")
        if node not in fleet.node_by_name:
            raise FailureLogError(name, line, "node", f"no node {node!r} in fleet {fleet.name!r}")
        try:
            kind = NodeEventKind(kind_text.lower())
        except ValueError:
            raise FailureLogError(name, line, "event", f"{kind_text!r} is not one of {kinds}") from None
        out.append(NodeEvent(round(t_s * 1000), node, kind))
    out.sort(key=lambda e: e.t_ms)
    return out


def maintenance_window(nodes: Sequence[str], start_s: float, hours: float) -> list[NodeEvent]:
    """Drain ``nodes`` at ``start_s`` and bring them back ``hours`` later."""
    begin = round(start_s * 1000)
    end = begin + round(hours * MS_PER_HOUR)
    return [NodeEvent(begin, n, NodeEventKind.DRAIN) for n in nodes] + [
        NodeEvent(end, n, NodeEventKind.UP) for n in nodes
    ]
