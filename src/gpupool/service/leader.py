"""The leader lease: exactly one loop schedules a pool; other processes wait as standbys.

This module owns ``LeaderLease`` (ADR 0006). The lease is the one ``leader_lease`` row: its
``epoch`` is the fencing token (it grows by one at every take-over), ``holder`` names the
``gpupool serve`` instance whose scheduler leads, ``expires_ms`` ends a lease its holder
stopped renewing. Beside the row, a *liveness lock* that the operating system or the database
drops the moment its holder dies: on SQLite ``flock`` on ``<data_dir>/leader.lock``; on
PostgreSQL a session advisory lock, on a connection the lease keeps open.

The rules:

- a contender takes the lease (epoch + 1) when it holds the liveness lock and the holder is
  gone (SQLite: the flock goes only with its process, so at once; PostgreSQL: the advisory
  lock also goes with a dropped connection, so once the holder missed its renewals for
  ``HOLDER_GONE_AFTER_MS``), or when the lease expired (its holder stopped renewing, e.g. a
  paused process that still holds the lock);
- the leader renews the row every ``RENEW_EVERY_S`` on its epoch; a renewal that matches no
  row means the lease was taken: the leader stops;
- every write of the leader's loop first runs ``fence`` in the same transaction: a
  conditional update of the row on the leader's epoch that raises ``LeaseLost`` when another
  process took the lease. On PostgreSQL the update's row lock orders it against the take-over
  (which commits first, or waits for the cycle to commit and sees its writes when it
  rebuilds); on SQLite the database's single writer does. So a paused old leader that wakes
  up writes no decision. On PostgreSQL the leader's transactions end when left idle for 5 s,
  so a leader paused while holding the row's lock cannot keep standbys out;
- the leader dispatches only while ``leading()``: by its own monotonic clock, less time has
  passed since its last successful renewal began than any contender waits before taking over
  (less a safety margin). A leader paused in the middle of dispatching sends nothing more
  when it wakes; the next leader sends what is left (launches are idempotent).

Safety rests on the epoch alone; the lock only makes failover fast. Time is the database's
clock on PostgreSQL (the contenders may run on several hosts) and this host's on SQLite.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from gpupool.service.db import LeaseRow, unavailable

log = logging.getLogger("gpupool.service.leader")

#: the pool a lease row is for (one pool per database)
POOL = "default"
#: a lease not renewed for this long may be taken without the liveness lock
DEFAULT_TTL_MS = 10_000
#: how often the leader renews (and a standby tries to take over)
RENEW_EVERY_S = 1.0
#: PostgreSQL: a standby holding the advisory lock takes over once the holder's last renewal
#: is this old (the lock also goes when a live holder's connection drops, not only at death)
HOLDER_GONE_AFTER_MS = 2_500
#: a leader stops dispatching this long before its lease could be taken (clock rates differ)
SAFETY_MARGIN_S = 0.5
#: PostgreSQL advisory lock keys ("gpupool" and "gpupool setup" as numbers)
_LEADER_KEY = 0x677075706F6F6C
_SETUP_KEY = 0x677075706F6F73

_LEASE = cast(Table, LeaseRow.__table__)
_PG_NOW = text("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
#: PostgreSQL ends a leader's transaction left idle this long (a paused leader holding the
#: lease row's lock would otherwise keep every standby from taking over)
_PG_IDLE = text("SET LOCAL idle_in_transaction_session_timeout = 5000")
#: ... and a contender waits at most this long for that lock (it tries again later)
_PG_LOCK_WAIT = text("SET LOCAL lock_timeout = 2000")
#: the fence: matches the row only while the epoch is ours (and locks it on PostgreSQL)
_FENCE = (
    update(_LEASE)
    .where(_LEASE.c.pool == bindparam("p_pool"), _LEASE.c.epoch == bindparam("p_epoch"))
    .values(epoch=_LEASE.c.epoch)
)


class LeaseLost(RuntimeError):
    """Another process took the lease: this one must not write or dispatch."""


class Role(StrEnum):
    """What a ``gpupool serve`` process is for its pool."""

    LEADER = "leader"  # its scheduler holds the lease and schedules
    STANDBY = "standby"  # it serves the API; its scheduler waits for the lease


@dataclass(frozen=True, slots=True)
class LeaseState:
    """The lease row as read, with the clock it was read at."""

    epoch: int
    holder: str
    expires_ms: int
    last_cycle_ms: int | None
    now_ms: int

    @property
    def fresh(self) -> bool:
        """A holder renewed it lately (it may schedule)."""
        return bool(self.holder) and self.expires_ms > self.now_ms

    def held_by(self, holder: str) -> bool:
        return self.fresh and self.holder == holder


def instance_name() -> str:
    """The name a ``gpupool serve`` process goes by in the lease: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def db_now_ms(conn: Connection) -> int:
    """Milliseconds since the epoch by the database's clock (PostgreSQL) or this host's."""
    if conn.dialect.name == "postgresql":
        return int(conn.execute(_PG_NOW).scalar_one())
    return int(time.time() * 1000)


def read_metrics(engine: Engine) -> list[dict[str, Any]] | None:
    """The loop metrics the leader last published (None without a leader)."""
    with engine.connect() as c:
        found: list[dict[str, Any]] | None = c.execute(
            select(_LEASE.c.metrics).where(_LEASE.c.pool == POOL)
        ).scalar()
    return found


def read_lease(engine: Engine) -> LeaseState | None:
    """The lease as it stands (None before the migration made its row)."""
    with engine.connect() as c:
        row = c.execute(
            select(_LEASE.c.epoch, _LEASE.c.holder, _LEASE.c.expires_ms, _LEASE.c.last_cycle_ms).where(
                _LEASE.c.pool == POOL
            )
        ).first()
        now = db_now_ms(c)
    if row is None:
        return None
    return LeaseState(int(row.epoch), str(row.holder), int(row.expires_ms), row.last_cycle_ms, now)


class LeaderLease:
    """One contender for the lease of the pool in ``engine``'s database."""

    def __init__(
        self,
        engine: Engine,
        holder: str,
        *,
        lock_path: Path | None = None,
        ttl_ms: int = DEFAULT_TTL_MS,
        reader: Engine | None = None,
    ) -> None:
        self.engine = engine
        #: where a standby reads the lease without taking SQLite's write lock
        self.reader = reader or engine
        self.holder = holder
        self.lock_path = lock_path
        self.ttl_ms = ttl_ms
        #: the fencing token while this contender leads; None otherwise
        self.epoch: int | None = None
        self._lock_fd: int | None = None
        self._lock_conn: Connection | None = None
        #: a flock goes only with its holder's process; an advisory lock also with a connection
        self._lock_proves_death = lock_path is not None
        #: how long after a renewal began no other contender can take the lease
        takeover_ms = ttl_ms if self._lock_proves_death else min(ttl_ms, HOLDER_GONE_AFTER_MS)
        self._window_s = takeover_ms / 1000 - SAFETY_MARGIN_S
        #: ``time.monotonic()`` until which this contender may act as the leader
        self._valid_until = 0.0

    @classmethod
    def for_database(
        cls,
        engine: Engine,
        data_dir: Path,
        holder: str,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        reader: Engine | None = None,
    ) -> LeaderLease:
        """The lease with the liveness lock for ``engine``'s kind of database."""
        sqlite = engine.dialect.name == "sqlite"
        lock = data_dir / "leader.lock" if sqlite else None
        return cls(engine, holder, lock_path=lock, ttl_ms=ttl_ms, reader=reader)

    # -- the liveness lock --------------------------------------------------------------------

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None or self._lock_conn is not None

    def _try_lock(self) -> bool:
        if self.locked:
            return True
        if self.lock_path is not None:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._lock_fd = fd
            return True
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEADER_KEY}).scalar())
            except Exception:
                conn.invalidate()
                conn.close()
                raise
            if not got:
                conn.close()
                return False
            self._lock_conn = conn
            return True
        return False  # another database: the lease row alone (failover after the TTL)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the file drops the flock
            self._lock_fd = None
        if self._lock_conn is not None:
            # closing the session drops its advisory locks; invalidate: never back to the pool
            with contextlib.suppress(Exception):
                self._lock_conn.invalidate()
            with contextlib.suppress(Exception):
                self._lock_conn.close()
            self._lock_conn = None

    # -- the lease row ------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lease if its holder is gone or it expired; True when this contender leads."""
        started = time.monotonic()
        locked = self._try_lock()
        if not locked:
            state = read_lease(self.reader)  # a read first: a standby's tries take no write lock
            if state is None or state.expires_ms > state.now_ms:
                return False
        with self.engine.begin() as c:
            if c.dialect.name == "postgresql":
                c.execute(_PG_IDLE)
                c.execute(_PG_LOCK_WAIT)
            now = db_now_ms(c)
            row = c.execute(
                select(_LEASE.c.epoch, _LEASE.c.expires_ms, _LEASE.c.renewed_ms)
                .where(_LEASE.c.pool == POOL)
                .with_for_update()
            ).first()
            if row is None:
                raise RuntimeError("no leader_lease row: the database is not migrated")
            holder_gone = locked and (self._lock_proves_death or now - row.renewed_ms > HOLDER_GONE_AFTER_MS)
            if not (holder_gone or row.expires_ms <= now):
                return False
            epoch = int(row.epoch) + 1
            taken = c.execute(
                update(_LEASE)
                .where(_LEASE.c.pool == POOL, _LEASE.c.epoch == row.epoch)
                .values(
                    epoch=epoch,
                    holder=self.holder,
                    acquired_ms=now,
                    renewed_ms=now,
                    expires_ms=now + self.ttl_ms,
                    last_cycle_ms=None,
                    metrics=None,
                )
            ).rowcount
            if taken != 1:  # pragma: no cover - the row is locked (PostgreSQL) or the writer is alone
                return False
        self.epoch = epoch
        self._valid_until = started + self._window_s
        log.info(
            "took the leader lease: epoch %d (%s)",
            epoch,
            "its holder is gone" if holder_gone else "lease expired",
        )
        return True

    def leading(self) -> bool:
        """Whether this contender may still act (dispatch) as the leader, by its own clock.

        False once no renewal succeeded for longer than any other contender waits before
        taking over: a leader paused in the middle of dispatching stops there when it wakes.
        """
        return self.epoch is not None and time.monotonic() < self._valid_until

    def renew(self, last_cycle_ms: int | None = None, metrics: list[dict[str, Any]] | None = None) -> bool:
        """Extend the lease (publishing the loop's metrics); False when another process took it."""
        if self.epoch is None:
            return False
        started = time.monotonic()
        if self._lock_conn is not None:
            try:  # a dropped connection dropped the advisory lock: take it again below
                self._lock_conn.execute(text("SELECT 1"))
            except Exception:
                self._unlock()
        if not self.locked:
            # taken on expiry: hold the lock too, so that no standby takes over from a live leader
            with contextlib.suppress(Exception):
                self._try_lock()
        with self.engine.begin() as c:
            if c.dialect.name == "postgresql":
                c.execute(_PG_IDLE)
            now = db_now_ms(c)
            kept = c.execute(
                update(_LEASE)
                .where(_LEASE.c.pool == POOL, _LEASE.c.epoch == self.epoch)
                .values(
                    renewed_ms=now, expires_ms=now + self.ttl_ms, last_cycle_ms=last_cycle_ms, metrics=metrics
                )
            ).rowcount
        if kept != 1:
            log.error("lost the leader lease (epoch %d): another process took it", self.epoch)
            self.epoch = None
            return False
        self._valid_until = started + self._window_s
        return True

    def fence(self, s: Session) -> None:
        """Raise ``LeaseLost`` unless this contender still leads; call first in a write transaction."""
        if self.epoch is None:
            raise LeaseLost("this process does not hold the leader lease")
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            conn.execute(_PG_IDLE)  # the row lock taken below cannot outlive a paused leader
        if conn.execute(_FENCE, {"p_pool": POOL, "p_epoch": self.epoch}).rowcount != 1:
            lost, self.epoch = self.epoch, None
            raise LeaseLost(f"the leader lease of epoch {lost} was taken by another process")

    def release(self) -> None:
        """Give the lease up (a graceful stop): a standby takes it at its next try."""
        if self.epoch is not None:
            try:
                with self.engine.begin() as c:
                    c.execute(
                        update(_LEASE)
                        .where(_LEASE.c.pool == POOL, _LEASE.c.epoch == self.epoch)
                        .values(expires_ms=0)
                    )
            except Exception as e:  # the database is away: the lease expires by itself
                log.warning("could not release the leader lease", exc_info=not unavailable(e))
            self.epoch = None
        self._unlock()


@contextlib.contextmanager
def setup_lock(engine: Engine, data_dir: Path) -> Iterator[None]:
    """Serialise start-up work (migrations, the first seed) between processes on one database."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _SETUP_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SETUP_KEY})
        return
    if engine.dialect.name != "sqlite":
        yield
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "setup.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
