"""The running service: database, fleet, tenancy seed, loop and executors, started together.

This module owns ``Runtime``: ``start`` makes the data directory private (0700, the SQLite
files 0600), migrates the database (``upgrade head``), seeds an empty one from the tenants file
and creates the first pool admin (its token is handed to the caller once, in
``new_admin_token``, and stored only as a hash: no file holds it), rebuilds the core,
reconciles the executors and starts the loop thread; ``stop`` stops the loop. It also owns the
wiring of job isolation (ADR 0005): the identity map that names each job's account and the
sandbox that hides the data directory from local jobs. The API reaches everything through one
``Runtime``.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from gpupool.core.accelerator import Catalogue
from gpupool.core.fleet import Fleet
from gpupool.core.policy import with_policy_defaults
from gpupool.core.scheduler import SchedulerConfig
from gpupool.core.tenancy import Tenancy
from gpupool.fleetfile import default_tenants_for, fleet_presets, load_fleet, load_tenants
from gpupool.service import auth
from gpupool.service.db import JobRow, TenantRow, UserRow, make_engine, migrate, session_factory
from gpupool.service.directory import Directory
from gpupool.service.dry_run import DryRunExecutor
from gpupool.service.executors.base import Executor
from gpupool.service.executors.gpus import LocalMachine
from gpupool.service.executors.sandbox import Sandbox
from gpupool.service.identity import IdentityError, IdentityMap, load_identity_map, project_account_name
from gpupool.service.local_fleet import machine_scenario
from gpupool.service.loop import Clock, Loop, wall_clock
from gpupool.service.metrics import ServiceMetrics
from gpupool.service.notify.worker import Notifier
from gpupool.service.refusals import RefusalLog
from gpupool.service.settings import ServiceSettings
from gpupool.service.tenant_tree import seed

log = logging.getLogger("gpupool.service")
ADMIN_NAME = "admin"


def load_scenario(settings: ServiceSettings) -> tuple[Fleet, Tenancy]:
    """The fleet and the tenants file named by the settings (tenants seed an empty database)."""
    fleet = load_fleet(settings.fleet)
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
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.run_loop = run_loop
        #: which Unix account runs each job (raises ``IdentityError`` for a bad accounts file)
        self.identity: IdentityMap = load_identity_map(settings.accounts)
        self._accounts: dict[tuple[int, int], str | None] = {}
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
        self.metrics = ServiceMetrics()
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
        self._executors = dict(executors) if executors is not None else None
        # the same per-policy defaults as the twin (las: rounds and a quantum)
        self.config = with_policy_defaults(
            SchedulerConfig(policy=settings.policy, backfill=settings.backfill)
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
        self.settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.settings.data_dir, 0o700)  # the database, job logs and executor state
        self.settings.log_dir.mkdir(exist_ok=True, mode=0o700)
        os.chmod(self.settings.log_dir, 0o700)
        migrate(self.engine)
        self._private_database_files()
        self._seed()
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
        )
        self._loop.reconcile()
        if self.run_loop:
            self._loop.start()
        self._notifier = Notifier.for_runtime(self)  # webhooks and e-mail (ADR 0011)

    def stop(self) -> None:
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
