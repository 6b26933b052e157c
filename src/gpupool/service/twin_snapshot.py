"""The twin's snapshot of the live pool: the files the simulator reads, from the database.

This module owns the snapshot document (``take``: what ``GET /v1/twin/snapshot`` answers),
writing it as a folder (``write_folder``) and reading a folder back (``Snapshot.read``):

- ``fleet.yaml``: the live fleet as a fleet file (every node by name, ``load_fleet`` reads it);
- ``tenants.yaml``: the tenancy the core holds now (guarantees include active allocations'
  shares) as a tenants file;
- ``state.json``: the restore point now (``gpupool.service.restore_point``: drained nodes,
  running jobs on their accelerators, pending jobs with the service they had, the usage
  intervals that decayed usage is made of) and the scheduler's settings;
- ``history.csv``: the jobs submitted in the last ``history_h`` hours as a native trace
  (submit times from the window's start; durations as they ran, else their walltime), the
  recent arrival rate and mix a what-if scales;
- ``events.jsonl``: with ``since``, the event log from the last restore point at or before
  that time (what ``gpupool twin replay`` checks).

Everything is read in one session; the snapshot changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.core.fleet import Fleet
from gpupool.core.scheduler import SchedulerConfig
from gpupool.core.tiresias import TiresiasConfig
from gpupool.fleetfile import load_fleet, load_tenants
from gpupool.fleetfile.export import fleet_document, tenants_document
from gpupool.service import store
from gpupool.service.db import JobRow, TenantRow, UserRow
from gpupool.service.job_status import JobStatus
from gpupool.service.replay import LogRow, log_rows
from gpupool.service.restore_point import RestorePoint, read_point
from gpupool.sim.workload import WorkloadJob

FORMAT = "gpupool-twin-snapshot/1"
HOUR_MS = 3_600_000
DEFAULT_HISTORY_H = 24.0
#: the scheduler settings a snapshot keeps (plain values; a throughput table is not kept)
_CONFIG_SKIP = ("throughputs", "tiresias")


def config_doc(config: SchedulerConfig) -> dict[str, Any]:
    out = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in _CONFIG_SKIP}
    out["tiresias"] = {
        "thresholds_gpu_ms": list(config.tiresias.thresholds_gpu_ms),
        "promote_knob": config.tiresias.promote_knob,
    }
    return out


def config_of(doc: dict[str, Any]) -> SchedulerConfig:
    names = {f.name for f in dataclasses.fields(SchedulerConfig)} - set(_CONFIG_SKIP)
    unknown = set(doc) - names - {"tiresias"}
    if unknown:
        raise ValueError(f"state.json: config: unknown field {sorted(unknown)[0]!r}")
    t = doc.get("tiresias") or {}
    default = TiresiasConfig()
    thresholds = tuple(int(x) for x in t.get("thresholds_gpu_ms", ())) or default.thresholds_gpu_ms
    tiresias = TiresiasConfig(thresholds, float(t.get("promote_knob", default.promote_knob)))
    return SchedulerConfig(**{k: v for k, v in doc.items() if k in names}, tiresias=tiresias)


def _history(s: Session, now: int, window_ms: int, config: SchedulerConfig) -> list[WorkloadJob]:
    """Jobs submitted in the window, as workload records (submit times from its start)."""
    start = now - window_ms
    paths = {i: p for i, p in s.execute(select(TenantRow.id, TenantRow.path))}
    users = {i: n for i, n in s.execute(select(UserRow.id, UserRow.name))}
    out = []
    for j in s.scalars(
        select(JobRow).where(JobRow.submit_ms >= start, JobRow.submit_ms <= now).order_by(JobRow.seq)
    ):
        spec = j.stored
        walltime_ms = spec.walltime_s * 1000
        ran = j.run_ms if j.state in (JobStatus.COMPLETED, JobStatus.FAILED) else 0
        duration = ran or walltime_ms or config.default_walltime_ms
        out.append(
            WorkloadJob(
                id=store.job_id(j.seq),
                submit_ms=j.submit_ms - start,
                duration_ms=max(1000, int(duration)),
                gpus=spec.gpus,
                tenant=paths.get(j.project_id, ""),
                user=users.get(j.user_id, ""),
                gpus_per_worker=spec.groups[0].gpus_per_worker if spec.groups else 0,
                models=spec.models,
                min_memory_gib=spec.min_memory_gib,
                stacks=spec.stacks,
                topology=spec.topology,
                workload_class=spec.workload_class,
                walltime_ms=walltime_ms,
                priority_class=j.priority_class,
                checkpoint_interval_ms=spec.checkpoint_interval_s * 1000,
                kind=spec.kind,
            )
        )
    return [w for w in out if w.tenant]


def take(
    s: Session,
    fleet: Fleet,
    config: SchedulerConfig,
    now: int,
    *,
    since_ms: int | None = None,
    history_h: float = DEFAULT_HISTORY_H,
) -> dict[str, Any]:
    """The snapshot document of the live pool at ``now``."""
    point = read_point(s, fleet, config, now)
    tenancy = point.tenancy(fleet)
    history = _history(s, now, int(history_h * HOUR_MS), config)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "taken_ms": now,
        "history_h": history_h,
        "config": config_doc(config),
        "fleet": fleet_document(fleet),
        "tenants": tenants_document(tenancy, description=f"the live tenancy at {now} ms"),
        "state": point.to_doc(),
        "history": [_job_doc(w) for w in history],
    }
    if since_ms is not None:
        doc["since_ms"] = since_ms
        doc["events"] = [list(r) for r in log_rows(s, since_ms=since_ms)]
    return doc


def _job_doc(w: WorkloadJob) -> dict[str, Any]:
    d = dataclasses.asdict(w)
    d.pop("source_line", None)
    return d


def _job_of(d: dict[str, Any]) -> WorkloadJob:
    d = dict(d)
    for k in ("models", "stacks"):
        d[k] = tuple(d.get(k, ()))
    return WorkloadJob(**d)


def write_folder(doc: dict[str, Any], out: Path) -> list[Path]:
    """Write a snapshot document as the twin's files; the files written."""
    if doc.get("format") != FORMAT:
        raise ValueError(f"not a gpupool twin snapshot (format {doc.get('format')!r}, expected {FORMAT!r})")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "fleet.yaml": yaml.safe_dump(doc["fleet"], allow_unicode=True, sort_keys=False),
        "tenants.yaml": yaml.safe_dump(doc["tenants"], allow_unicode=True, sort_keys=False),
        "state.json": json.dumps(
            {
                "format": FORMAT,
                "taken_ms": doc["taken_ms"],
                "history_h": doc["history_h"],
                "config": doc["config"],
                "state": doc["state"],
            },
            ensure_ascii=False,
        ),
    }
    written = []
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    # imported here: the trace package loads polars, which the API process must not need
    from gpupool.sim.trace.native import write_native

    write_native([_job_of(j) for j in doc["history"]], out / "history.csv")
    written.append(out / "history.csv")
    if "events" in doc:
        with open(out / "events.jsonl", "w", encoding="utf-8") as f:
            for row in doc["events"]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        written.append(out / "events.jsonl")
    return written


@dataclass(slots=True)
class Snapshot:
    """A snapshot folder read back."""

    folder: Path
    fleet: Fleet
    config: SchedulerConfig
    point: RestorePoint
    taken_ms: int
    history_h: float

    @classmethod
    def read(cls, folder: Path) -> Snapshot:
        """``ValueError`` (naming the file) for a folder that is not a snapshot."""
        state_file = folder / "state.json"
        try:
            meta = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{state_file}: not a readable snapshot state ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{state_file}: field 'format': expected {FORMAT!r}")
        fleet = load_fleet(str(folder / "fleet.yaml"))
        try:
            point = RestorePoint.from_doc(meta["state"])
            config = config_of(meta["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{state_file}: {e}") from None
        return cls(folder, fleet, config, point, int(meta["taken_ms"]), float(meta.get("history_h", 0)))

    def tenancy_file(self) -> str:
        return str(self.folder / "tenants.yaml")

    def tenancy(self) -> Any:
        return load_tenants(self.tenancy_file(), self.fleet)

    def events(self) -> list[LogRow]:
        path = self.folder / "events.jsonl"
        if not path.exists():
            raise ValueError(f"{path}: missing: take the snapshot with --since to include the event log")
        rows: list[LogRow] = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                c, t, k, ty, p = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{i}: not an event-log row ({e})") from None
            rows.append((c, int(t), str(k), str(ty), p))
        return rows
