"""Prometheus series per sector and per project, from the core's state after a cycle.

This module owns ``TenantMetrics``: for each project of the tenancy (labels ``sector`` and
``project``, the project's full path) its pending and running jobs, the accelerators its jobs
hold, the GPU-hours they have used (a counter: held accelerators integrated over the loop's
clock since this loop started; ``rate()`` and ``increase()`` read it across restarts) and how
long its oldest pending job has waited; the same per sector; and per sector a histogram of the
queueing delay of jobs at their first start.

Cardinality is bounded by the tenancy, not by jobs or users: one series per project and
metric (a project with no jobs reads 0, so that a dashboard's sums are whole), and a project
removed from the tenancy drops out at the next count. No job id, user or command is a label.

Cost: held accelerators and new starts are read every cycle (over projects and running jobs);
the pending and running counts walk every job, so they are refreshed at most every
``count_every_ms`` of the loop's clock (a scrape every 15 s or more reads at most one stale
count).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gpupool.core.job_state import PENDING, RUNNING
from gpupool.core.scheduler import Scheduler
from gpupool.core.tenancy import Tenancy

#: queueing delay buckets: a second to a week
WAIT_BUCKETS = (1, 10, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
MS_PER_HOUR = 3_600_000


class TenantMetrics(Collector):
    """Per-project and per-sector series; register it in the loop's registry."""

    def __init__(self, registry: CollectorRegistry, count_every_ms: int = 5_000) -> None:
        self.count_every_ms = count_every_ms
        #: project path -> sector, for every project of the tenancy last seen
        self._sector: dict[str, str] = {}
        self._held: dict[str, int] = {}
        self._gpu_hours: dict[str, float] = {}
        self._pending: dict[str, int] = {}
        self._running: dict[str, int] = {}
        self._oldest_ms: dict[str, int] = {}
        self._now = -1
        self._tenancy: Tenancy | None = None
        self._projects: list[tuple[int, str]] = []
        self._counted_at: int | None = None
        self._seen_running: set[int] = set()
        self.waits = Histogram(
            "gpupool_sector_wait_seconds",
            "Queueing delay of jobs at their first start (submission to start), per sector.",
            ["sector"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        registry.register(self)

    def observe(self, sched: Scheduler, now: int) -> None:
        """Read the core after a cycle at ``now`` (the loop's clock, ms)."""
        tenancy = sched.tenancy
        if self._now >= 0 and now > self._now:
            hours = (now - self._now) / MS_PER_HOUR
            for path, held in self._held.items():
                if held:
                    self._gpu_hours[path] = self._gpu_hours.get(path, 0.0) + held * hours
        self._now = now
        if tenancy is not self._tenancy:  # a rebuilt core may have another tenancy
            self._tenancy = tenancy
            self._projects = [(i, tenancy.nodes[i].path) for i in sorted(tenancy.projects_set)]
            self._sector = {path: tenancy.sector_of(i) for i, path in self._projects}
        held_now = sched.ledger.held_all
        self._held = {path: held_now[i] for i, path in self._projects}
        # a job seen running for the first time, never preempted: its first start
        running = sched.running
        for seq, j in running.items():
            if seq not in self._seen_running and j.preemptions == 0 and j.start_ms >= 0:
                self.waits.labels(tenancy.sector_of(j.project)).observe(
                    max(0, j.start_ms - j.spec.submit_ms) / 1000
                )
        self._seen_running = set(running)
        if self._counted_at is None or now - self._counted_at >= self.count_every_ms:
            self._count(sched)
            self._counted_at = now

    def _count(self, sched: Scheduler) -> None:
        nodes = sched.tenancy.nodes
        pending: dict[str, int] = {}
        running: dict[str, int] = {}
        oldest: dict[str, int] = {}
        for j in sched.jobs.values():
            path = nodes[j.project].path
            if j.status == PENDING:
                pending[path] = pending.get(path, 0) + 1
                submitted = j.spec.submit_ms
                if submitted < oldest.get(path, submitted + 1):
                    oldest[path] = submitted
            elif j.status == RUNNING:
                running[path] = running.get(path, 0) + 1
        self._pending, self._running, self._oldest_ms = pending, running, oldest

    def collect(self) -> Iterable[Metric]:
        labels = ["sector", "project"]
        fams: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "pending": GaugeMetricFamily(
                "gpupool_project_jobs_pending", "Jobs waiting, per project.", labels=labels
            ),
            "running": GaugeMetricFamily(
                "gpupool_project_jobs_running", "Jobs running, per project.", labels=labels
            ),
            "held": GaugeMetricFamily(
                "gpupool_project_accelerators_held",
                "Accelerators held by the project's running jobs.",
                labels=labels,
            ),
            "hours": CounterMetricFamily(
                "gpupool_project_gpu_hours",
                "GPU-hours used by the project's jobs since this scheduling loop started.",
                labels=labels,
            ),
            "oldest": GaugeMetricFamily(
                "gpupool_project_oldest_pending_seconds",
                "How long the project's oldest pending job has waited (0: none waits).",
                labels=labels,
            ),
        }
        sector_fams: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "pending": GaugeMetricFamily(
                "gpupool_sector_jobs_pending", "Jobs waiting, per sector.", labels=["sector"]
            ),
            "running": GaugeMetricFamily(
                "gpupool_sector_jobs_running", "Jobs running, per sector.", labels=["sector"]
            ),
            "held": GaugeMetricFamily(
                "gpupool_sector_accelerators_held",
                "Accelerators held by the sector's jobs.",
                labels=["sector"],
            ),
            "hours": CounterMetricFamily(
                "gpupool_sector_gpu_hours",
                "GPU-hours used by the sector's jobs since this scheduling loop started.",
                labels=["sector"],
            ),
        }
        by_sector: dict[str, dict[str, float]] = {}
        for path, sector in sorted(self._sector.items()):
            oldest = self._oldest_ms.get(path)
            values = {
                "pending": float(self._pending.get(path, 0)),
                "running": float(self._running.get(path, 0)),
                "held": float(self._held.get(path, 0)),
                "hours": self._gpu_hours.get(path, 0.0),
            }
            for key, value in values.items():
                fams[key].add_metric([sector, path], value)
                acc = by_sector.setdefault(sector, {})
                acc[key] = acc.get(key, 0.0) + value
            fams["oldest"].add_metric(
                [sector, path], 0.0 if oldest is None else max(0, self._now - oldest) / 1000
            )
        for sector, values in by_sector.items():
            for key, value in values.items():
                sector_fams[key].add_metric([sector], value)
        yield from fams.values()
        yield from sector_fams.values()
