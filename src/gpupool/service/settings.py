"""Service configuration: ``ServiceSettings``, read from ``GPUPOOL_*`` environment variables.

This module owns every knob of the live service and their defaults: where the data lives
(SQLite under ``data_dir`` unless ``GPUPOOL_DATABASE_URL`` names another database), which fleet
and tenants to serve, the executor, the cycle interval, request limits and walltime policy.
It reads no file and opens no connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY_S = 86_400


class ServiceSettings(BaseSettings):
    """Settings of one service instance (environment prefix ``GPUPOOL_``)."""

    model_config = SettingsConfigDict(env_prefix="GPUPOOL_", extra="forbid")

    #: where the SQLite database, the admin token and job logs live
    data_dir: Path = Path("gpupool-data")
    #: SQLAlchemy URL; empty means ``sqlite:///<data_dir>/gpupool.db``
    database_url: str = ""
    #: fleet file or preset, and tenants file or preset (empty: the fleet's own preset)
    fleet: str = "demo"
    tenants: str = ""
    #: scheduling policy and backfill of the core
    policy: str = "fairshare"
    backfill: Literal["none", "easy"] = "easy"
    #: ``local`` runs processes on this machine for every cluster; ``none`` launches nothing
    #: (decisions are still made and recorded: a dry-run pool)
    #: ``fleet`` gives each cluster the backend its fleet entry names (local, slurm, kubernetes)
    executor: Literal["local", "none", "fleet"] = "local"
    #: the local executor pretends each node has its accelerators (no GPU needed)
    simulated_gpus: bool = True
    #: which accelerators to serve: ``fleet`` (the fleet above), ``real`` (this machine's own
    #: GPUs as NVML sees them: the fleet is this machine), ``simulated`` (this machine with
    #: ``machine_gpus`` pretend accelerators); see ``gpupool.service.local_fleet``
    machine: Literal["fleet", "real", "simulated"] = "fleet"
    machine_gpus: int = Field(default=0, ge=0, le=4096)
    #: the catalogue model of this machine's GPUs (default: from NVML's names; H100 simulated)
    machine_model: str = ""
    #: a cycle runs at least this often, and sooner when something arrives
    cycle_interval_ms: int = Field(default=1000, ge=10, le=60_000)
    #: woken cycles start at least this long after the previous one began, so a burst of
    #: submissions is handled in a few batched cycles instead of one cycle per request
    cycle_min_gap_ms: int = Field(default=50, ge=0, le=10_000)
    #: SQLite's ``synchronous`` pragma. ``NORMAL`` (with WAL): a commit is durable against a
    #: killed or crashed *process*; a power loss or kernel crash may lose the last commits
    #: (the database stays consistent). ``FULL`` syncs the WAL at every commit: durable also
    #: against power loss, at a few milliseconds per commit on most disks.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    #: answer well-formed ``POST /v1/jobs`` before the framework's routing (same checks and
    #: the same code; anything unusual still goes through the route): see ``api/fast_submit``
    fast_submit: bool = True
    #: seconds a cached token, tenant or allocation lookup may be served without reading the
    #: database (changes made through this service invalidate at once; 0: no cache)
    directory_cache_s: float = Field(default=5.0, ge=0, le=3600)
    #: walltime given to jobs that name none, and the most a job may ask for
    default_walltime_s: int = Field(default=DAY_S, ge=60)
    max_walltime_s: int = Field(default=14 * DAY_S, ge=60)
    #: request bodies above this are refused with 413 before they are parsed
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    #: what to do with a job the database calls running that no executor knows after a
    #: restart: ``relaunch`` it on the same accelerators, or mark it ``fail``-ed
    reconcile: Literal["relaunch", "fail"] = "relaunch"
    #: seconds an executor gives a process between SIGTERM and SIGKILL
    terminate_grace_s: float = Field(default=10.0, ge=0)
    #: milliseconds a leader lease lasts without renewal: a leader stuck this long (paused,
    #: cut off) is replaced by a standby; a dead one is replaced at once (ADR 0006)
    leader_lease_ttl_ms: int = Field(default=10_000, ge=1000, le=600_000)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    @model_validator(mode="after")
    def _walltimes(self) -> ServiceSettings:
        if self.default_walltime_s > self.max_walltime_s:
            raise ValueError("default_walltime_s must not exceed max_walltime_s")
        return self

    @property
    def url(self) -> str:
        """The database URL in force."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gpupool.db').resolve()}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"
