"""The running service: database, fleet, tenancy seed, loop and executors, started together.

This module owns ``Runtime``: ``start`` makes the data directory private (0700, the SQLite
files 0600), migrates the database (``upgrade head``), seeds an empty one from the tenants file
and creates the first pool admin (its token is handed to the caller once, in
``new_admin_token``, and stored only as a hash: no file holds it), rebuilds the core,
reconciles the executors and starts the loop thread; ``stop`` stops the loop. It also owns the
wiring of job isolation (ADR 0005): the identity map that names each job's account and the
sandbox that hides the data directory from local jobs. The API reaches everything through one
``Runtime``.

Where the loop runs (ADR 0006): ``scheduler="inline"`` (the default, and what tests use) runs
it as a thread of this process, fenced by ``lease`` when one is given (the scheduler child of
``gpupool serve`` does that); ``scheduler="process"`` (``gpupool serve``) runs no loop here but
starts a scheduler child (``gpupool.service.scheduler_process``) that contends for the leader
lease. The API then reaches the loop only through the database: ``wake_loop`` and
``request_rebuild`` hide the difference, and ``role`` says whether this process leads.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from gpupool.core.accelerator import Catalogue
from gpupool.core.decisions import Reason
from gpupool.core.fleet import Fleet
from gpupool.core.job import JobSpec
from gpupool.core.policy import with_policy_defaults
from gpupool.core.scheduler import Scheduler, SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.fleetfile import default_tenants_for, fleet_presets, load_fleet, load_tenants, site_catalogue
from gpupool.service import auth
from gpupool.service.db import (
    InboxRow,
    JobRow,
    TenantRow,
    UserRow,
    make_engine,
    migrate,
    session_factory,
)
from gpupool.service.directory import Directory
from gpupool.service.dry_run import DryRunExecutor
from gpupool.service.executors.base import Executor
from gpupool.service.executors.gpus import GpuSample, LocalMachine
from gpupool.service.executors.sandbox import Sandbox
from gpupool.service.gpu_telemetry import read_telemetry
from gpupool.service.identity import IdentityError, IdentityMap, load_identity_map, project_account_name
from gpupool.service.leader import (
    LeaderLease,
    LeaseState,
    Role,
    instance_name,
    read_lease,
    read_metrics,
    setup_lock,
)
from gpupool.service.local_fleet import machine_scenario
from gpupool.service.loop import Clock, Loop, wall_clock
from gpupool.service.metrics import ServiceMetrics, Snapshot
from gpupool.service.notify.worker import Notifier
from gpupool.service.refusals import RefusalLog
from gpupool.service.scheduler_process import SchedulerProcess
from gpupool.service.settings import ServiceSettings
from gpupool.service.tenant_tree import active_allocations, build_tenancy, seed, tenant_rows

log = logging.getLogger("gpupool.service")
ADMIN_NAME = "admin"


def load_scenario(settings: ServiceSettings) -> tuple[Fleet, Tenancy]:
    """The fleet and the tenants file named by the settings (tenants seed an empty database)."""
    fleet = load_fleet(settings.fleet, site_catalogue(settings.catalogue))
    tenants = settings.tenants
    if not tenants:
        name = settings.fleet if settings.fleet in fleet_presets() else fleet.name
        tenants = default_tenants_for(name)
    return fleet, load_tenants(tenants, fleet)


class Runtime:
    """One service instance. Give ``executors`` (by cluster name, ``*`` for any) to override."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        executors: Mapping[str, Executor] | None = None,
        clock: Clock = wall_clock,
        fleet: Fleet | None = None,
        tenancy: Tenancy | None = None,
        run_loop: bool = True,
        scheduler: Literal["inline", "process"] = "inline",
        lease: LeaderLease | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.run_loop = run_loop
        #: which Unix account runs each job (raises ``IdentityError`` for a bad accounts file)
        self.identity: IdentityMap = load_identity_map(settings.accounts)
        self._accounts: dict[tuple[int, int], str | None] = {}
        self.scheduler = scheduler
        #: the leader lease an inline loop is fenced by (None: the loop is alone, as in tests)
        self.lease = lease
        #: this process's name in the leader lease (its scheduler child leads under it)
        self.instance = lease.holder if lease is not None else instance_name()
        self._scheduler_process: SchedulerProcess | None = None
        #: the scheduler that judges admissions where the loop runs elsewhere (``refusal``)
        self._admission: tuple[Scheduler | None, float] = (None, 0.0)
        self._admission_lock = threading.Lock()
        #: this machine, when it is what is served (``machine`` real or simulated)
        self.machine: LocalMachine | None = None
        if settings.machine != "fleet" and fleet is None:
            fleet, machine_tenancy, self.machine = machine_scenario(settings)
            tenancy = tenancy or machine_tenancy
        if fleet is None or tenancy is None:
            loaded_fleet, loaded_tenancy = load_scenario(settings)
            fleet = fleet or loaded_fleet
            tenancy = tenancy or loaded_tenancy
        self.fleet: Fleet = fleet
        self.tenancy_seed: Tenancy = tenancy
        self.catalogue: Catalogue = fleet.catalogue
        # the loop's metrics are the leader's where the loop runs in a scheduler process
        self.metrics = ServiceMetrics(loop=scheduler == "inline")
        sync = settings.sqlite_synchronous
        wait = settings.database_timeout_s
        self.engine = make_engine(settings.url, synchronous=sync, timeout_s=wait)
        self.factory: sessionmaker[Session] = session_factory(self.engine)
        #: sessions for requests that only read (SQLite: they never wait for the loop's writes)
        self.reader_engine = (
            make_engine(settings.url, writer=False, synchronous=sync, timeout_s=wait)
            if self.engine.dialect.name == "sqlite"
            else self.engine
        )
        self.reader: sessionmaker[Session] = session_factory(self.reader_engine)
        #: callers, tenants and allocations as requests read them, invalidated by our writes
        self.directory = Directory(self.reader, ttl_s=settings.directory_cache_s)
        self.directory.watch(self.engine, self.factory)
        #: the audit of 401 and 403 answers, coalesced per minute (refusals.py)
        self.refusals = RefusalLog(self.factory, clock)
        if scheduler == "process":
            self.metrics.mirror(self._leader_metrics)
        self._mirrored: tuple[float, Snapshot | None] = (-1.0, None)
        self._executors = dict(executors) if executors is not None else None
        # the same per-policy defaults as the twin (las: rounds and a quantum)
        self.config = with_policy_defaults(
            SchedulerConfig(
                policy=settings.policy,
                backfill=settings.backfill,
                round_ms=settings.round_ms,
                restart_overhead_ms=round(settings.restart_overhead_s * 1000),
                usage=settings.usage,
            )
        )
        self._loop: Loop | None = None
        #: the admin token when this start created it (``serve`` prints it once)
        self.new_admin_token: str | None = None
        self._notifier: Notifier | None = None

    @property
    def loop(self) -> Loop:
        if self._loop is None:
            raise RuntimeError("the service is not started")
        return self._loop

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:
            raise RuntimeError("the service is not started")
        return self._notifier

    def start(self) -> None:
        _private_dir(self.settings.data_dir)  # the database, job logs and executor state
        _private_dir(self.settings.log_dir)
        with setup_lock(self.engine, self.settings.data_dir):  # N processes may start at once
            migrate(self.engine)
            self._private_database_files()
            self._seed()
        if self.scheduler == "process":
            # the executors are built in the scheduler child, once it leads: refuse now, not
            # there, a service that would run local jobs without a sandbox (ADR 0005)
            if self._runs_local_jobs():
                self.sandbox().check()
            self._scheduler_process = SchedulerProcess(self.settings, self.instance)
            self._scheduler_process.start()
            return
        executors = self._executors if self._executors is not None else self._default_executors()
        self._open_log_path(executors)
        self._loop = Loop(
            self.factory,
            self.fleet,
            self.config,
            executors,
            log_dir=self.settings.log_dir,
            metrics=self.metrics,
            clock=self.clock,
            interval_ms=self.settings.cycle_interval_ms,
            min_gap_ms=self.settings.cycle_min_gap_ms,
            terminate_grace_s=self.settings.terminate_grace_s,
            reconcile=self.settings.reconcile,
            reader=self.reader,
            run_as=self.run_as,
            fence=self.lease.fence if self.lease is not None else None,
            leading=self.lease.leading if self.lease is not None else None,
            inbox_poll_ms=max(self.settings.cycle_min_gap_ms, 20) if self.lease is not None else 0,
        )
        self._loop.reconcile()
        if self.run_loop:
            self._loop.start()
        self._notifier = Notifier.for_runtime(self)  # webhooks and e-mail (ADR 0011)

    def stop(self) -> None:
        if self._scheduler_process is not None:
            self._scheduler_process.stop()
            self._scheduler_process = None
        if self._notifier is not None:
            self._notifier.stop()
        if self._loop is not None:
            self._loop.stop()
            for ex in self._loop.executors.values():
                close = getattr(ex, "close", None)
                if callable(close):
                    close()
        self.engine.dispose()
        self.reader_engine.dispose()

    # -- the loop as the API sees it -----------------------------------------------------------

    def wake_loop(self) -> None:
        """Something was written to the inbox: an inline loop cycles now (a scheduler process
        polls the inbox by itself)."""
        if self._loop is not None:
            self._loop.wake()

    def refusal(self, spec: JobSpec) -> tuple[Reason, str] | None:
        """Why the core would refuse ``spec`` at admission (it could never start), else None.

        Asked by the API before a job is written (issue 12). Where the loop runs in this
        process, its scheduler answers; where it runs in the scheduler process (``gpupool
        serve``), a scheduler of the same fleet and the tenancy read from the database does,
        rebuilt when this process changes the tenancy and at least every ``ADMISSION_TTL_S``
        (a change made through another process is seen that late; the leader's core rejects
        such a job a cycle later all the same).
        """
        if self._loop is not None:
            got = self._loop.scheduler.refusal(spec)
            # a project made since the loop's last rebuild is known to the database (the API
            # checked it) before the loop's core: only the limits' verdicts count here
            return None if got is not None and got[0] is Reason.UNKNOWN_PROJECT else got
        now_s = time.monotonic()
        with self._admission_lock:
            sched, made = self._admission
            if sched is None or now_s - made > ADMISSION_TTL_S:
                with self.reader() as s:
                    tenancy = build_tenancy(tenant_rows(s), active_allocations(s, self.clock()), self.fleet)
                sched = Scheduler(self.fleet, tenancy, self.config)
                self._admission = (sched, now_s)
            return sched.refusal(spec)

    def request_rebuild(self) -> None:
        """The tenancy changed: the loop rebuilds its core before deciding again."""
        with self._admission_lock:
            self._admission = (None, 0.0)
        if self._loop is not None and self.lease is None:
            self._loop.request_rebuild()
            return
        # the loop runs elsewhere (the scheduler process, another server): tell it in the inbox
        with self.factory.begin() as s:
            s.add(InboxRow(kind="rebuild", created_ms=self.clock()))

    def role(self) -> tuple[Role, LeaseState | None]:
        """Whether this process leads (its loop schedules the pool), and the lease as it stands."""
        if self.scheduler == "inline" and self.lease is None:
            return Role.LEADER, None  # one in-process loop, no lease (tests, benchmarks)
        state = read_lease(self.reader_engine)
        leads = state is not None and state.held_by(self.instance)
        return (Role.LEADER if leads else Role.STANDBY), state

    def _leader_metrics(self) -> Snapshot | None:
        """The leader's published loop metrics, read at most once a second."""
        at, snap = self._mirrored
        if time.monotonic() - at < 1.0:
            return snap
        try:
            snap = read_metrics(self.reader_engine)
        except Exception:  # the database is away: no loop metrics to show
            snap = None
        self._mirrored = (time.monotonic(), snap)
        return snap

    def executors(self) -> list[Executor]:
        """The executors of this process's loop (none where the loop runs in another process)."""
        if self._loop is None:
            return []
        return list({id(e): e for e in self._loop.executors.values()}.values())

    def telemetry(self, allocation_id: str) -> list[GpuSample]:
        """GPU samples of an allocation: from this process's executors, else as the leader published them."""
        if self.scheduler == "process":
            with self.reader() as s:
                return read_telemetry(s, allocation_id)
        out: list[GpuSample] = []
        for ex in self.executors():
            read = getattr(ex, "telemetry", None)
            if callable(read):
                out.extend(read(allocation_id))
        return out

    def _runs_local_jobs(self) -> bool:
        """Would ``_default_executors`` build a local executor?"""
        if self.settings.executor == "none":
            return False
        if self.machine is not None or self.settings.executor != "fleet":
            return True
        return any(c.backend == "local" for c in self.fleet.clusters)

    def _default_executors(self) -> dict[str, Executor]:
        if self.settings.executor == "none":
            return {"*": DryRunExecutor()}
        if self.machine is not None:
            # the machine the fleet was made of: the executor pins jobs to its very devices
            from gpupool.service.executors.local import LocalExecutor

            return {
                "*": LocalExecutor(
                    self.settings.data_dir / "executor", machine=self.machine, sandbox=self.sandbox()
                )
            }
        # executor=fleet: each cluster's own backend from the fleet file (executors/registry.py);
        # otherwise one local executor for every cluster, as before.
        from gpupool.service.executors.registry import build_executors

        return build_executors(
            self.fleet,
            state_dir=self.settings.data_dir / "executor",
            simulated_gpus=self.settings.simulated_gpus,
            per_cluster=self.settings.executor == "fleet",
            sandbox=self.sandbox(),
        )

    def sandbox(self) -> Sandbox:
        """How local jobs are confined: the data directory and the database's folder hidden."""
        hidden = [self.settings.data_dir]
        if self.engine.dialect.name == "sqlite" and self.engine.url.database:
            hidden.append(Path(self.engine.url.database).parent)
        return Sandbox.create(hidden, unsafe_no_sandbox=self.settings.unsafe_no_sandbox)

    def run_as(self, row: JobRow) -> str | None:
        """The Unix account a job runs as (``Launch.run_as``), from the identity map."""
        key = (row.user_id, row.project_id)
        if key not in self._accounts:
            with self.reader() as s:
                user = s.scalar(select(UserRow.name).where(UserRow.id == row.user_id)) or ""
                project = s.scalar(select(TenantRow.path).where(TenantRow.id == row.project_id)) or ""
            try:
                self._accounts[key] = self.identity.run_as(user, project)
            except IdentityError as e:
                # Fail closed: the executor refuses a job whose account does not exist.
                log.error("no account for %s's job in %s: %s", user, project, e)
                return project_account_name(project)
        return self._accounts[key]

    def _open_log_path(self, executors: Mapping[str, Executor]) -> None:
        """Let Slurm jobs reach their log directories: the data directory and ``logs/`` 0711.

        A Slurm job runs as its account outside any sandbox (slurmstepd opens its output as
        that account), so every directory above ``logs/<job>/`` must be searchable by it
        (``executors/job_account.py`` checks and refuses otherwise). 0711 is searchable, not
        listable or readable: what is inside stays closed by its own mode (the database 0600,
        ``executor/`` and ``whatif/`` 0700, each Slurm job's directory 0710 to its account's
        group). Without a Slurm cluster, or when the service is not root (its Slurm jobs then
        run as its own user), nothing needs to pass through and both stay 0700 (ADR 0005).
        """
        if os.geteuid() != 0 or not any(ex.backend == "slurm" for ex in executors.values()):
            return
        for path in (self.settings.data_dir, self.settings.log_dir):
            os.chmod(path, 0o711)

    def _private_database_files(self) -> None:
        """SQLite's files readable by the service only (its -wal and -shm take the file's mode)."""
        if self.engine.dialect.name != "sqlite" or not self.engine.url.database:
            return
        db = Path(self.engine.url.database)
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if path.exists():
                os.chmod(path, 0o600)

    def _seed(self) -> None:
        now = self.clock()
        with self.factory.begin() as s:
            if s.scalar(select(func.count()).select_from(TenantRow)) == 0:
                seed(s, self.tenancy_seed, now)
                log.info("seeded tenants %r into an empty database", self.tenancy_seed.name)
            admin = s.scalars(select(UserRow).where(UserRow.role == "pool-admin")).first()
            if admin is None:
                admin = UserRow(
                    name=ADMIN_NAME, display_name="Pool administrator", role="pool-admin", created_ms=now
                )
                s.add(admin)
                s.flush()
                _, plain = auth.issue(
                    s,
                    admin.id,
                    name="bootstrap",
                    scopes=auth.ALL_SCOPES,
                    expires_ms=now + auth.DEFAULT_TOKEN_TTL_MS,
                    now_ms=now,
                )
                self.new_admin_token = plain

    def mint_admin_token(self, name: str) -> str:
        """A new token for the first pool admin (for ``gpupool demo`` on an existing database,
        which must print a working token: the first one was shown once and is kept only as a hash)."""
        now = self.clock()
        with self.factory.begin() as s:
            admin = s.scalars(
                select(UserRow).where(UserRow.role == "pool-admin").order_by(UserRow.id)
            ).first()
            if admin is None:
                raise RuntimeError("no pool admin: start the service first")
            _, plain = auth.issue(
                s,
                admin.id,
                name=name,
                scopes=auth.ALL_SCOPES,
                expires_ms=now + auth.DEFAULT_TOKEN_TTL_MS,
                now_ms=now,
            )
        return plain

    def database_ok(self) -> bool:
        # a table, not ``SELECT 1``: SQLite answers that without reading the file at all
        try:
            with self.reader_engine.connect() as c:
                c.execute(text("SELECT count(*) FROM alembic_version"))
            return True
        except Exception:
            return False


#: how long an API process's admission scheduler serves before it reads the tenancy again
ADMISSION_TTL_S = 30.0


def _private_dir(path: Path) -> None:
    """Make ``path`` (if need be) and close it to other accounts: 0700, or 0711 where the leader
    opened it for Slurm jobs (searchable, not listable: ``Runtime._open_log_path``), which a
    second process starting beside a running leader must not take back."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.stat(path).st_mode & 0o066:  # readable or writable by group or others
        os.chmod(path, 0o700)


def tune_gc_for_serving() -> None:
    """Garbage-collect less often in a serving process (call once, after start-up).

    The core keeps every pending job as long-lived objects; with Python's default thresholds a
    burst of submissions triggers collections that walk them again and again (a third of the
    loop's CPU under load). Objects alive now (modules, the fleet, the rebuilt core) are
    frozen out of collection, and young collections run every 20,000 allocations, not 700.
    Not called by ``Runtime`` itself: tests run many runtimes in one process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
