"""Prometheus metrics of the live service.

This module owns ``ServiceMetrics``: one registry per service instance (so that tests may run
several side by side) holding the cycle duration, pending and running jobs, utilisation per
cluster and accelerator model, submissions and decisions, and requests refused (503, 429).
The loop and the API update it; ``/metrics`` renders it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gpupool.core.scheduler import Scheduler


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
            "gpupool_submissions_total", "Job submissions accepted by the API.", ["outcome"], registry=r
        )
        self.decisions = Counter("gpupool_decisions_total", "Decisions of the core.", ["type"], registry=r)
        self.refused = Counter(
            "gpupool_http_refused_total",
            "Requests refused for a fault or a limit: database_unavailable (503), rate_limit_token, "
            "rate_limit_address, rate_limit_auth (429).",
            ["reason"],
            registry=r,
        )

    def observe_core(self, sched: Scheduler) -> None:
        """Pending, running and utilisation from the core's state after a cycle."""
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
