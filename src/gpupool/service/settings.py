"""Service configuration: ``ServiceSettings``, read from ``GPUPOOL_*`` environment variables.

This module owns every knob of the live service and their defaults: where the data lives
(SQLite under ``data_dir`` unless ``GPUPOOL_DATABASE_URL`` names another database), which fleet
and tenants to serve, the executor, the cycle interval, request limits and walltime policy.
It reads no file and opens no connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gpupool.core.policies import get_policy

DAY_S = 86_400


class ServiceSettings(BaseSettings):
    """Settings of one service instance (environment prefix ``GPUPOOL_``)."""

    model_config = SettingsConfigDict(env_prefix="GPUPOOL_", extra="forbid")

    #: where the SQLite database, executor state and job logs live (made 0700; no job sees it)
    data_dir: Path = Path("gpupool-data")
    #: SQLAlchemy URL; empty means ``sqlite:///<data_dir>/gpupool.db``
    database_url: str = ""
    #: fleet file or preset, and tenants file or preset (empty: the fleet's own preset)
    fleet: str = "demo"
    #: a site's catalogue file over the shipped one (its own models, MIG profiles, sharing
    #: rules; ``gpupool.fleetfile.catalogue.extend_catalogue``); empty: the shipped one
    catalogue: str = ""
    tenants: str = ""
    #: scheduling policy (a name in the core's policy registry, ``gpupool.core.policies``) and backfill
    policy: str = "fairshare"
    backfill: Literal["none", "easy"] = "easy"
    #: round-based and aging policies (``gavel-*``, ``maxmin``, ``ftf``, ``las``): the round
    #: length in ms (0: the policy's own, 360 s for Gavel's rounds)
    round_ms: int = Field(default=0, ge=0, le=DAY_S * 1000)
    #: the restart a round weighs against stopping a running job, with the work lost since its
    #: checkpoint: a round stops or moves a job only when that gains more (core/round_leases.py)
    restart_overhead_s: float = Field(default=30.0, ge=0, le=DAY_S)
    #: what fair share and the core's budgets count: accelerator-hours, or effective (H100-
    #: equivalent) hours from the catalogue's throughput table, as the twin can (ADR 0018)
    usage: Literal["raw", "effective"] = "raw"
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
    #: YAML file mapping gpupool users and projects to the Unix accounts their jobs run as
    #: (``service/identity.py``; empty: per-project accounts when root, else the service's user)
    accounts: str = ""
    #: run local jobs without bubblewrap where it is missing (no namespaces, nothing hidden by
    #: mounts: only the account switch and the environment rules hold). Off: refuse to start.
    unsafe_no_sandbox: bool = False
    #: milliseconds a leader lease lasts without renewal: a leader stuck this long (paused,
    #: cut off) is replaced by a standby; a dead one is replaced at once (ADR 0006)
    leader_lease_ttl_ms: int = Field(default=10_000, ge=1000, le=600_000)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: sign-in of people through OpenID Connect (ADR 0008); empty issuer: off. The issuer's
    #: ``/.well-known/openid-configuration`` names its endpoints and keys.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    #: the button's label: "Sign in with <name>" (default: the issuer's host)
    oidc_provider_name: str = ""
    #: the ID token claim whose value is the gpupool user name (``email``, ``preferred_username``)
    oidc_claim: str = Field(default="email", pattern=r"^[A-Za-z0-9_:.-]{1,64}$")
    #: a person the claim names who is no gpupool user: ``refuse`` (default), or ``create``
    #: them as a plain user with no memberships (an admin then adds them to projects)
    oidc_unknown_users: Literal["refuse", "create"] = "refuse"
    #: lifetime of the session token a signed-in person gets
    oidc_session_s: int = Field(default=12 * 3600, ge=60, le=7 * DAY_S)
    oidc_scopes: str = "openid email profile"
    #: this service's address as browsers reach it (behind a proxy); the callback registered
    #: at the provider is ``<public_url>/v1/auth/oidc/callback``. Empty: the request's own
    public_url: str = ""
    # -- faults and limits (README "Faults and limits") ---------------------------------------
    #: SQLite: how long a statement waits for another process's write lock before the request
    #: answers 503 (``database is locked``); PostgreSQL: how long a new connection may take
    database_timeout_s: float = Field(default=10.0, gt=0, le=600)
    #: the ``Retry-After`` (seconds) of a 503 answered while the database is down or locked
    retry_after_s: int = Field(default=5, ge=1, le=3600)
    #: requests a second (and the burst) one token may make; 0: no limit per token
    rate_limit_token_per_s: float = Field(default=500.0, ge=0)
    rate_limit_token_burst: int = Field(default=1000, ge=1)
    #: requests a second (and the burst) one client address may make; 0: no limit per address
    rate_limit_address_per_s: float = Field(default=1000.0, ge=0)
    rate_limit_address_burst: int = Field(default=2000, ge=1)
    #: failed authentications (401) a second (and the burst) one address may make; past them
    #: that address gets 429 for any token not seen valid; 0: no limit
    rate_limit_auth_failures_per_s: float = Field(default=1.0, ge=0)
    rate_limit_auth_failures_burst: int = Field(default=20, ge=1)
    #: the most bytes of request line and headers; more is answered 431 and the connection closed
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 << 20)
    #: seconds a request's line, headers and body may take to arrive (slow clients, slowloris);
    #: past it: 408 and the connection closed
    request_read_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    #: seconds an idle keep-alive connection stays open
    keep_alive_timeout_s: int = Field(default=5, ge=1, le=3600)
    #: addresses of reverse proxies trusted to set ``X-Forwarded-For``/``-Proto`` (comma
    #: separated, ``*`` for any); empty: none, the peer's address is the client's
    forwarded_allow_ips: str = ""
    #: ``/metrics`` without a token; otherwise a pool admin's or viewer's token is required
    metrics_public: bool = False
    #: serve HTTPS with this certificate chain and private key (PEM files; both or neither)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("policy")
    @classmethod
    def _registered_policy(cls, name: str) -> str:
        get_policy(name)  # ValueError naming the registered policies
        return name

    @model_validator(mode="after")
    def _walltimes(self) -> ServiceSettings:
        if self.default_walltime_s > self.max_walltime_s:
            raise ValueError("default_walltime_s must not exceed max_walltime_s")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        return self

    @model_validator(mode="after")
    def _oidc(self) -> ServiceSettings:
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret):
            raise ValueError("oidc_issuer needs oidc_client_id and oidc_client_secret")
        issuer = urlsplit(self.oidc_issuer)
        local = issuer.hostname in ("127.0.0.1", "localhost", "::1")
        if self.oidc_issuer and not (issuer.scheme == "https" or (issuer.scheme == "http" and local)):
            raise ValueError("oidc_issuer must be an https:// URL (http only for 127.0.0.1 or localhost)")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def url(self) -> str:
        """The database URL in force."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gpupool.db').resolve()}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"
