"""Tables and engines: the SQLAlchemy 2 models of the service and how to connect.

This module owns the table definitions (mapped classes), ``make_engine`` (SQLite with WAL
and immediate write transactions, or PostgreSQL by URL) and ``migrate`` (Alembic ``upgrade
head``; the schema is created only by migrations, never by ``create_all``). Queries live in
``gpupool.service.store``.

All times are integer milliseconds since the epoch (``BigInteger``: PostgreSQL's ``integer``
ends in 2038); accelerator-milliseconds are floats.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from gpupool.service.job_spec import StoredJobSpec
from gpupool.service.job_status import JobStatus

Ms = BigInteger


class JobStatusText(TypeDecorator[JobStatus]):
    """``jobs.state`` and ``job_tasks.state``: the ``JobStatus`` value as text in the database,
    the enum in Python."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: JobStatus | str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> JobStatus | None:
        return None if value is None else JobStatus(value)


class Base(DeclarativeBase):
    pass


class TenantRow(Base):
    """A node of the tenant tree (sector, organisation or project)."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    guaranteed: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    borrow_limit: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    clusters: Mapped[list[str]] = mapped_column(JSON, default=list)
    over_budget: Mapped[str] = mapped_column(String(16), default="preemptible")
    #: priority classes its members may use; null: its parent's (the default set at the top)
    allowed_classes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: container registries its jobs' images may come from; null: its parent's (all at the top)
    allowed_registries: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_ms: Mapped[int] = mapped_column(Ms)


class UserRow(Base):
    """A person or robot; ``role`` is ``pool-admin``, ``viewer`` or ``user``."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_ms: Mapped[int] = mapped_column(Ms)


class MembershipRow(Base):
    """A user in a tenant: ``member`` of a project, or ``admin`` of a project or organisation."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "tenant_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    role: Mapped[str] = mapped_column(String(16), default="member")


class TokenRow(Base):
    """An API token: only the SHA-256 of the secret is kept.

    ``scopes`` is a space-separated subset of ``read submit admin`` (what the token may do, on
    top of what its user may do); ``expires_ms`` null means it never expires (tokens made
    before expiry existed); ``last_used_ms`` is written at most once a minute per token.
    """

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(Ms)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    scopes: Mapped[str] = mapped_column(String(64), default="read submit admin")
    expires_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    last_used_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)


class AllocationRow(Base):
    """A grant to a project: GPU-hours of an accelerator class for a period, plus a guarantee."""

    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    model: Mapped[str] = mapped_column(String(32))
    gpu_hours: Mapped[float] = mapped_column(Float)
    period_start_ms: Mapped[int] = mapped_column(Ms)
    period_end_ms: Mapped[int] = mapped_column(Ms)
    guaranteed: Mapped[int] = mapped_column(Integer, default=0)
    over_budget: Mapped[str] = mapped_column(String(16), default="preemptible")
    state: Mapped[str] = mapped_column(String(16), default="requested")
    note: Mapped[str] = mapped_column(String(1024), default="")
    created_ms: Mapped[int] = mapped_column(Ms)
    #: what ``gpu_hours`` counts: ``gpu_hours`` (accelerator-hours) or ``effective`` (H100-
    #: equivalent hours: each hour weighed by its model's throughput; ADR 0018)
    unit: Mapped[str] = mapped_column(String(16), default="gpu_hours", server_default="gpu_hours")


class JobRow(Base):
    """A job as submitted and as the loop last decided it (``seq`` is its submission order)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_jobs_state_seq", "state", "seq"),
        Index("ix_jobs_project_seq", "project_id", "seq"),
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    #: the request as validated (``JobSpec`` fields plus command, env, cwd)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[JobStatus] = mapped_column(JobStatusText(), default=JobStatus.PENDING)
    priority_class: Mapped[str] = mapped_column(String(16))
    over_budget: Mapped[bool] = mapped_column(Boolean, default=False)
    submit_ms: Mapped[int] = mapped_column(Ms)
    start_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    end_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    allocation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cluster: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(32), nullable=True)
    placement: Mapped[list[list[Any]] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(String(32), default="queued")
    detail: Mapped[str] = mapped_column(String(1024), default="")
    run_ms: Mapped[int] = mapped_column(Ms, default=0)
    attained: Mapped[float] = mapped_column(Float, default=0.0)
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    estimated_start_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: a pending job's 1-based place in the order of the pool it waits for (``queue_pool``,
    #: "H100 in c0"), as of the estimate written with it; null while not pending
    queue_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queue_pool: Mapped[str | None] = mapped_column(String(128), nullable=True)

    @functools.cached_property
    def stored(self) -> StoredJobSpec:
        """The typed form of ``spec`` (read once per loaded row: a job's spec never changes)."""
        return StoredJobSpec.from_json(self.spec)


class UsageRow(Base):
    """One allocation's hold of accelerators: open (``end_ms`` null) while it runs."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_project_start", "project_id", "start_ms"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_seq: Mapped[int] = mapped_column(ForeignKey("jobs.seq"))
    allocation_id: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    model: Mapped[str] = mapped_column(String(32))
    workload_class: Mapped[str] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(Integer)
    start_ms: Mapped[int] = mapped_column(Ms)
    end_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)


class InboxRow(Base):
    """An event accepted by the API and not yet handled by the loop."""

    __tablename__ = "inbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # submit, cancel, drain, undrain, down, rebuild
    job_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_ms: Mapped[int] = mapped_column(Ms)


class EventLogRow(Base):
    """Every event the core handled and every decision it made, in order.

    ``cycle`` numbers the loop cycle (one ``Scheduler.handle`` call) a row belongs to, so the
    log can be replayed call by call (``gpupool.service.replay``); null in rows written before
    it existed.
    """

    __tablename__ = "event_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    at_ms: Mapped[int] = mapped_column(Ms)
    kind: Mapped[str] = mapped_column(String(16))  # event, decision, restore
    type: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutboxRow(Base):
    """An instruction for an executor, written with the decision and sent after the commit."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # launch, terminate
    allocation_id: Mapped[str] = mapped_column(String(64))
    job_seq: Mapped[int] = mapped_column(Integer)
    cluster: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_ms: Mapped[int] = mapped_column(Ms)
    dispatched_ms: Mapped[int | None] = mapped_column(Ms, nullable=True, index=True)


class NodeStateRow(Base):
    """A node that is not simply up: ``drained`` or ``down`` (absent means up)."""

    __tablename__ = "node_states"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(1024), default="")
    changed_ms: Mapped[int] = mapped_column(Ms)


class AuditRow(Base):
    """An administrative change: who did what to which object."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at_ms: Mapped[int] = mapped_column(Ms)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class LeaseRow(Base):
    """The leader lease of a pool: who schedules it, under which fencing token (ADR 0006).

    ``epoch`` grows by one at every take-over; the leader's writes check it in their own
    transaction (``gpupool.service.leader``), so a leader that lost the lease writes nothing.
    """

    __tablename__ = "leader_lease"
    pool: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_ms: Mapped[int] = mapped_column(Ms)
    renewed_ms: Mapped[int] = mapped_column(Ms)
    expires_ms: Mapped[int] = mapped_column(Ms)
    last_cycle_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    #: the leader's loop metrics (``ServiceMetrics.loop_snapshot``), for the API processes
    metrics: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class TelemetryRow(Base):
    """The GPU samples of one allocation, as the leader's executor took them (ADR 0006).

    ``samples`` holds ``[at_ms, device, utilization_pct, memory_used_mib]`` lists; written by
    the scheduler process, read by the API processes (the job detail page).
    """

    __tablename__ = "gpu_telemetry"
    allocation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    samples: Mapped[list[list[Any]]] = mapped_column(JSON)
    updated_ms: Mapped[int] = mapped_column(Ms, index=True)


#: One lock per SQLite database file, shared by every writer engine of this process on it.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
#: How long a writer waits for the lock: SQLite's own busy timeout, which it replaces.
WRITE_LOCK_TIMEOUT_S = 30.0


class _LockedConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions hold the process's lock on the file.

    SQLite lets one writer in at a time; the others, told "busy", sleep and retry with a
    back-off that grows to 100 ms a try. Under a burst of submissions (16 requests in
    flight plus the loop) that back-off, not the work, made the tail: p99 over 100 ms and
    stalls near a second. Queued on a lock instead, the next writer starts the moment the
    previous one commits. Writers in other processes still meet SQLite's busy timeout.
    """

    write_lock: threading.Lock | None = None
    write_lock_timeout_s = WRITE_LOCK_TIMEOUT_S
    holding = False

    def begin_write(self) -> None:
        lock = self.write_lock
        if lock is None:
            return
        if not lock.acquire(timeout=self.write_lock_timeout_s):
            raise sqlite3.OperationalError("database is locked (waited for another writer of this process)")
        self.holding = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.end_write()
            raise

    def end_write(self) -> None:
        if self.holding:
            self.holding = False
            assert self.write_lock is not None
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_write()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_write()


def sqlite_write_lock(path: str) -> threading.Lock:
    """The lock the writers of this process take on the SQLite file at ``path``."""
    if not path or path == ":memory:":
        return threading.Lock()  # each connection to it is a database of its own
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(str(Path(path).resolve()), threading.Lock())


def make_engine(
    url: str, *, writer: bool = True, synchronous: str = "NORMAL", timeout_s: float = WRITE_LOCK_TIMEOUT_S
) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and, for writers, immediate locks.

    ``timeout_s`` bounds every wait on the database (``ServiceSettings.database_timeout_s``):
    on SQLite the busy timeout and this process's writer queue, on PostgreSQL a new
    connection and a connection from the pool. Past it the statement fails (the API answers
    503, see ``api/outage``) instead of holding the request.

    ``synchronous`` is SQLite's pragma (``NORMAL`` or ``FULL``; see ``ServiceSettings``):
    with WAL, ``NORMAL`` keeps every commit across a killed process but not across a power
    loss, ``FULL`` across both.

    A SQLite writer's transactions take the write lock when they begin (``BEGIN IMMEDIATE``):
    a deferred transaction that reads and then writes may find its snapshot stale and fail
    at once instead of waiting. Readers (``writer=False``) begin deferred and, with WAL, never
    wait for a writer; requests that only read use them. A writer's transaction first takes
    this process's lock on the database file (``_LockedConnection``), so writers of one
    process queue on it rather than on SQLite's sleep-and-retry.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith("sqlite"):
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_timeout=timeout_s,
            connect_args={"connect_timeout": max(1, round(timeout_s))},
        )
    sync = synchronous.upper()
    if sync not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    lock = sqlite_write_lock(path) if writer else None
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": timeout_s, "factory": _LockedConnection}
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below open transactions, not the driver (which would
        # start them lazily and let two writers deadlock on the read-to-write upgrade).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")  # WAL + NORMAL survives a killed process
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={round(timeout_s * 1000)}")
        cur.close()
        dbapi_conn.write_lock = lock
        dbapi_conn.write_lock_timeout_s = timeout_s

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if writer:
            conn.connection.dbapi_connection.begin_write()
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


#: what SQLite says when the file is locked by another writer or cannot be reached (its other
#: OperationalErrors, e.g. a missing table, are bugs, not outages)
_SQLITE_OUTAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
    "attempt to write a readonly database",
)


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is down, locked or unreachable (a fault that passes).

    PostgreSQL: any ``OperationalError`` or ``InterfaceError`` (refused or lost connections,
    a server shutting down, a statement cancelled) and a connection the pool found dead; no
    free connection in the pool within the timeout. SQLite: a lock held past the busy timeout
    or a file it cannot open. Errors of the statement itself (``DataError``,
    ``IntegrityError``, ``ProgrammingError``) are not outages.
    """
    if isinstance(exc, BaseExceptionGroup):
        return any(unavailable(e) for e in exc.exceptions)
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(m in text for m in _SQLITE_OUTAGES)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def migrations_dir() -> Path:
    return Path(str(resources.files("gpupool.service") / "migrations"))


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (``alembic upgrade head``)."""
    command.upgrade(alembic_config(engine), "head")


# -- the national programme: calls, applications, reviews, awards, outputs (ADR 0010) -----------


class CallRow(Base):
    """A call for applications: what it offers (GPU-hours and guarantee per model), to whom, when."""

    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title_ko: Mapped[str] = mapped_column(String(255))
    title_en: Mapped[str] = mapped_column(String(255))
    #: sector paths whose projects may apply
    eligible_sectors: Mapped[list[str]] = mapped_column(JSON)
    #: GPU-hours offered per accelerator model (or ``*``)
    gpu_hours: Mapped[dict[str, float]] = mapped_column(JSON)
    #: accelerators that awards may guarantee, per model (all awards together)
    guaranteed: Mapped[dict[str, int]] = mapped_column(JSON)
    period_start_ms: Mapped[int] = mapped_column(Ms)
    period_end_ms: Mapped[int] = mapped_column(Ms)
    opens_ms: Mapped[int] = mapped_column(Ms)
    closes_ms: Mapped[int] = mapped_column(Ms)
    #: ``[{"key", "name", "weight"}]``
    criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: draft, open, closed, decided
    state: Mapped[str] = mapped_column(String(16), default="draft")
    created_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(Ms)
    #: the unit of its GPU-hours and of the allocations its awards become (ADR 0018)
    unit: Mapped[str] = mapped_column(String(16), default="gpu_hours", server_default="gpu_hours")


class CallReviewerRow(Base):
    """A reviewer of a call (assigned by a pool admin)."""

    __tablename__ = "call_reviewers"
    __table_args__ = (UniqueConstraint("call_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class ApplicationRow(Base):
    """A project's application to a call (or a renewal/extension of one of its allocations)."""

    __tablename__ = "applications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    renews_allocation_id: Mapped[int | None] = mapped_column(ForeignKey("allocations.id"), nullable=True)
    title: Mapped[str] = mapped_column(String(255))
    #: GPU-hours asked per model key of the call
    gpu_hours: Mapped[dict[str, float]] = mapped_column(JSON)
    #: accelerators asked to be guaranteed per model key of the call
    guaranteed: Mapped[dict[str, int]] = mapped_column(JSON)
    period_start_ms: Mapped[int] = mapped_column(Ms)
    period_end_ms: Mapped[int] = mapped_column(Ms)
    justification: Mapped[str] = mapped_column(Text)
    expected_outputs: Mapped[str] = mapped_column(Text)
    #: draft, submitted, under_review, awarded, partly_awarded, declined, withdrawn
    state: Mapped[str] = mapped_column(String(16), default="draft")
    created_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(Ms)
    submitted_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    decided_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)


class ReviewRow(Base):
    """One reviewer's scores (per criterion key) and comment on one application."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("application_id", "reviewer_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text)
    at_ms: Mapped[int] = mapped_column(Ms)


class AwardRow(Base):
    """What an application was granted, and the allocations that grant became."""

    __tablename__ = "awards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    gpu_hours: Mapped[dict[str, float]] = mapped_column(JSON)
    guaranteed: Mapped[dict[str, int]] = mapped_column(JSON)
    allocation_ids: Mapped[list[int]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(String(1024), default="")
    decided_by: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(Ms)


class OutputRow(Base):
    """A result a project reports against an award: a paper, a model, a product, with a link."""

    __tablename__ = "award_outputs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("awards.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(512))
    url: Mapped[str] = mapped_column(String(2048))
    reported_by: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(Ms)


# -- notifications: subscriptions, events, deliveries and their attempts (ADR 0011) ------------


class SubscriptionRow(Base):
    """Where to tell whom about which events: a webhook URL or an e-mail address.

    ``secret`` signs each webhook body (HMAC-SHA256, ``X-Gpupool-Signature``); it is shown once
    when the subscription is made and kept in the clear because signing needs it.
    """

    __tablename__ = "notification_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: webhook or email
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(2048))
    #: event kinds (``gpupool.service.notify.events.EventKind`` values)
    events: Mapped[list[str]] = mapped_column(JSON)
    #: only events about this tenant or below it; null: every tenant (pool admins only)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(Ms)


class NotificationEventRow(Base):
    """Something worth telling, once: ``key`` names it so that it is recorded only once."""

    __tablename__ = "notification_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    #: the project (or other tenant) the event is about; null: none
    tenant_path: Mapped[str | None] = mapped_column(String(255), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at_ms: Mapped[int] = mapped_column(Ms)


class DeliveryRow(Base):
    """One event to one subscription: pending until delivered or out of attempts."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        Index("ix_notification_deliveries_state_next", "state", "next_attempt_ms"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("notification_events.id"))
    #: no foreign key: deleting a subscription keeps its record of deliveries
    subscription_id: Mapped[int] = mapped_column(Integer, index=True)
    #: pending, delivered, failed (no attempts left), dropped (subscription deleted)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ms: Mapped[int] = mapped_column(Ms)
    last_error: Mapped[str] = mapped_column(String(1024), default="")
    created_ms: Mapped[int] = mapped_column(Ms)
    delivered_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)


class DeliveryAttemptRow(Base):
    """One try at a delivery: when, how it went (HTTP status or SMTP reply), the error."""

    __tablename__ = "notification_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("notification_deliveries.id"), index=True)
    at_ms: Mapped[int] = mapped_column(Ms)
    ok: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(1024), default="")
    duration_ms: Mapped[int] = mapped_column(Integer)


class NotificationCursorRow(Base):
    """How far the notifier has read a log (``audit``, ``event_log``): the high-water mark."""

    __tablename__ = "notification_cursors"
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(Ms)


class JobTaskRow(Base):
    """One task of a job array that the loop has decided about (started, ended, cancelled).

    The array is one ``JobRow`` (its ``spec`` holds ``array``); a task without a row has not
    started yet (ADR 0019). ``state`` as a job's: running, pending (requeued), completed,
    failed, cancelled, rejected.
    """

    __tablename__ = "job_tasks"
    array_seq: Mapped[int] = mapped_column(ForeignKey("jobs.seq"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[JobStatus] = mapped_column(JobStatusText(), default=JobStatus.PENDING)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    allocation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cluster: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(32), nullable=True)
    placement: Mapped[list[list[Any]] | None] = mapped_column(JSON, nullable=True)
    start_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    end_ms: Mapped[int | None] = mapped_column(Ms, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(32), default="queued")
    detail: Mapped[str] = mapped_column(String(1024), default="")


class ReservationRow(Base):
    """An advance reservation (``gpupool.core.advance_reservations``, ADR 0020): accelerators
    of ``cluster``/``model``/``count`` or ``nodes`` for ``[start_ms, end_ms)``, for the tenant
    paths in ``tenants`` or, when empty, for maintenance. Its core id is ``r<id>``."""

    __tablename__ = "reservations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    start_ms: Mapped[int] = mapped_column(Ms)
    end_ms: Mapped[int] = mapped_column(Ms, index=True)
    cluster: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(32), default="")
    count: Mapped[int] = mapped_column(Integer, default=0)
    nodes: Mapped[list[str]] = mapped_column(JSON, default=list)
    tenants: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(1024), default="")
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_ms: Mapped[int] = mapped_column(Ms)
