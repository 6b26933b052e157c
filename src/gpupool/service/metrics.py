"""Prometheus metrics of the live service.

This module owns ``ServiceMetrics``: one registry per service instance (so that tests may run
several side by side) holding the cycle duration, pending and running jobs, utilisation per
cluster and accelerator model, the same per sector and project (``tenant_metrics``),
submissions and decisions, and requests refused (503, 429).
The loop and the API update it; ``/metrics`` renders it.

The loop's metrics live where the loop runs. Where it runs in another process (the scheduler
process of ``gpupool serve``, ADR 0006), the leader publishes them (``loop_snapshot``, with
each lease renewal) and an API process built with ``loop=False`` shows that snapshot in their
place (``mirror``), so ``/metrics`` and the dashboard's series read the pool's loop from any
process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gpupool.core.scheduler import Scheduler
from gpupool.service.tenant_metrics import TenantMetrics

#: a published snapshot: per metric family its name, type, help and samples (name, labels, value)
Snapshot = list[dict[str, Any]]


class _Mirror(Collector):
    """The leader's published loop metrics, as families of this registry."""

    def __init__(self, read: Callable[[], Snapshot | None]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        for fam in self.read() or []:
            m = Metric(str(fam["name"]), str(fam["help"]), str(fam["type"]))
            for name, labels, value in fam["samples"]:
                m.add_sample(str(name), {str(k): str(v) for k, v in dict(labels).items()}, float(value))
            yield m


class ServiceMetrics:
    def __init__(self, *, loop: bool = True) -> None:
        self.registry = CollectorRegistry()
        #: the loop's metrics: in ``registry`` when the loop runs here, else only published
        self.loop_registry = self.registry if loop else CollectorRegistry()
        r = self.loop_registry
        self.cycle_seconds = Histogram(
            "gpupool_cycle_duration_seconds",
            "Duration of one loop cycle (events in, decisions out, committed).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.cycles = Counter("gpupool_cycles_total", "Loop cycles run.", registry=r)
        self.cycle_errors = Counter(
            "gpupool_cycle_errors_total", "Cycles whose transaction failed (the core is rebuilt).", registry=r
        )
        self.pending = Gauge("gpupool_jobs_pending", "Jobs waiting in the core's queue.", registry=r)
        self.running = Gauge("gpupool_jobs_running", "Jobs holding accelerators.", registry=r)
        self.busy = Gauge(
            "gpupool_accelerators_busy",
            "Accelerators held by running jobs.",
            ["cluster", "model"],
            registry=r,
        )
        self.total = Gauge(
            "gpupool_accelerators_total", "Accelerators in the fleet.", ["cluster", "model"], registry=r
        )
        self.utilisation = Gauge(
            "gpupool_utilisation",
            "Fraction of accelerators held by running jobs.",
            ["cluster", "model"],
            registry=r,
        )
        self.submissions = Counter(
            "gpupool_submissions_total",
            "Job submissions accepted by the API.",
            ["outcome"],
            registry=self.registry,
        )
        self.decisions = Counter("gpupool_decisions_total", "Decisions of the core.", ["type"], registry=r)
        #: per sector and project (pending, running, held, GPU-hours, waits): tenant_metrics.py
        self.tenants = TenantMetrics(r)
        self.refused = Counter(
            "gpupool_http_refused_total",
            "Requests refused for a fault or a limit: database_unavailable (503), rate_limit_token, "
            "rate_limit_address, rate_limit_auth (429).",
            ["reason"],
            registry=self.registry,  # the API's own, counted in the process that answered
        )

    def observe_core(self, sched: Scheduler, now: int | None = None) -> None:
        """Pending, running and utilisation from the core's state after a cycle (at ``now``,
        the loop's clock: the per-sector and per-project series need it)."""
        if now is not None:
            self.tenants.observe(sched, now)
        self.pending.set(sched.pending_count)
        self.running.set(len(sched.running))
        busy: dict[tuple[str, str], list[int]] = {}
        for p in sched.capacity.pools:
            key = (sched.fleet.clusters[p.cluster].name, p.model)
            acc = busy.setdefault(key, [0, 0])
            acc[0] += p.total - p.free
            acc[1] += p.total
        for (cluster, model), (held, total) in busy.items():
            self.busy.labels(cluster, model).set(held)
            self.total.labels(cluster, model).set(total)
            self.utilisation.labels(cluster, model).set(held / total if total else 0.0)

    def loop_snapshot(self) -> Snapshot:
        """The loop's metrics as JSON-able families, for API processes to mirror."""
        out: Snapshot = []
        for fam in self.loop_registry.collect():
            if fam.name == "gpupool_submissions":
                continue  # the API's own, counted where requests are answered
            samples = [[smp.name, dict(smp.labels), smp.value] for smp in fam.samples]
            out.append({"name": fam.name, "type": fam.type, "help": fam.documentation, "samples": samples})
        return out

    def mirror(self, read: Callable[[], Snapshot | None]) -> None:
        """Show the snapshot ``read`` returns (the leader's) in place of a loop of our own."""
        self.registry.register(_Mirror(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
