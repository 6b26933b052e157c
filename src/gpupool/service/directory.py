"""Caches of what almost every request reads and rarely changes: callers, projects, allocations.

This module owns ``Directory``: the ``Caller`` behind a token hash, the project tree (path and
kind by id, projects by leaf name) and the allocation rows, each read once and then served from
memory. Profiling the submission path showed these lookups (a join per request to
authenticate, a ``LIKE`` scan to resolve a project's short name, the allocations query of the
budget check) costing more than the write that accepts the job.

Invalidation: the writer engine reports every INSERT, UPDATE or DELETE on ``tokens``,
``users``, ``memberships``, ``tenants`` or ``allocations`` (``before_execute``, which sees ORM
flushes and bulk statements alike), and the caches are dropped *after* that transaction
commits (the session's ``after_commit``). A reader stores what it read only if no
invalidation happened since it began, so a read that raced a commit is never kept. So a
revoked token, a removed membership or a new tenant is in force for the next request of this
process. Changes made by another process (a second service on the same PostgreSQL) are seen
after at most ``ttl_s`` seconds; ``ttl_s = 0`` turns caching off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import UpdateBase

from gpupool.service import auth
from gpupool.service.auth import Caller
from gpupool.service.db import AllocationRow, TenantRow, UserRow

#: tables whose changes may change a caller, a project's name or a budget
WATCHED = frozenset({"tokens", "users", "memberships", "tenants", "allocations"})
#: at most this many tokens are remembered (a flood of unknown tokens must not grow memory)
MAX_TOKENS = 10_000


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant as requests need it (a detached copy: safe to share between threads)."""

    id: int
    path: str
    kind: str


@dataclass(frozen=True, slots=True)
class Allocation:
    """An allocation row as the budget check needs it (detached)."""

    id: int
    project_id: int
    model: str
    gpu_hours: float
    period_start_ms: int
    period_end_ms: int
    over_budget: str
    state: str

    def active_at(self, now: int) -> bool:
        return self.state == "active" and self.period_start_ms <= now < self.period_end_ms


@dataclass(frozen=True, slots=True)
class _Snapshot:
    tenants: dict[str, Tenant]  # by path
    by_leaf: dict[str, tuple[Tenant, ...]]  # projects by their last path component
    allocations: dict[int, tuple[Allocation, ...]]  # by project id
    users: dict[int, str]  # user names by id


class Directory:
    """Token, tenant and allocation caches over one database, invalidated by its writes."""

    def __init__(
        self,
        reader: sessionmaker[Session],
        ttl_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._generation = 0
        self._callers: dict[str, tuple[Caller | None, float]] = {}
        self._snapshot: tuple[_Snapshot, float] | None = None
        self._dirty = threading.local()

    # -- invalidation -----------------------------------------------------------------------

    def watch(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        """Invalidate on every committed change of a watched table written through ``factory``."""

        @event.listens_for(engine, "before_execute")
        def _seen(conn: Any, clause: Any, *_: Any) -> None:
            # A session and its connection stay in one thread: a thread-local flag links the
            # statement to the commit that follows it.
            if isinstance(clause, UpdateBase) and getattr(clause.table, "name", "") in WATCHED:
                self._dirty.flag = True

        @event.listens_for(factory, "after_commit")
        def _committed(_: Session) -> None:
            if getattr(self._dirty, "flag", False):
                self._dirty.flag = False
                self.invalidate()

        @event.listens_for(factory, "after_rollback")
        def _rolled_back(_: Session) -> None:
            self._dirty.flag = False

    def invalidate(self) -> None:
        """Forget everything cached (the next request reads the database again)."""
        with self._lock:
            self._generation += 1
            self._callers.clear()
            self._snapshot = None

    def _fresh(self, stored_at: float) -> bool:
        return self._monotonic() - stored_at < self.ttl_s

    # -- callers ----------------------------------------------------------------------------

    def cached_caller(self, token: str) -> tuple[bool, Caller | None]:
        """(known, caller) from memory only: never blocks (async code may call it)."""
        hit = self._callers.get(auth.hash_token(token))
        if hit is not None and self._fresh(hit[1]):
            return True, hit[0]
        return False, None

    def caller(self, token: str) -> Caller | None:
        """The caller behind ``token`` (None: unknown or revoked), cached by the token's hash."""
        digest = auth.hash_token(token)
        hit = self._callers.get(digest)
        if hit is not None and self._fresh(hit[1]):
            return hit[0]
        generation = self._generation
        with self._reader() as s:
            found = auth.caller_for_hash(s, digest)
        self._store(generation, lambda: self._put_caller(digest, found))
        return found

    def _put_caller(self, digest: str, caller: Caller | None) -> None:
        if len(self._callers) >= MAX_TOKENS:
            self._callers.clear()
        self._callers[digest] = (caller, self._monotonic())

    def _store(self, generation: int, put: Callable[[], None]) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if generation == self._generation:  # nothing was invalidated while we read
                put()

    # -- tenants, users and allocations ---------------------------------------------------------

    def _current(self) -> _Snapshot:
        snap = self._snapshot
        if snap is not None and self._fresh(snap[1]):
            return snap[0]
        generation = self._generation
        with self._reader() as s:
            tenants = {
                path: Tenant(i, path, kind)
                for i, path, kind in s.execute(select(TenantRow.id, TenantRow.path, TenantRow.kind))
            }
            allocations: dict[int, list[Allocation]] = {}
            for a in s.scalars(select(AllocationRow).order_by(AllocationRow.id)):
                allocations.setdefault(a.project_id, []).append(
                    Allocation(
                        a.id,
                        a.project_id,
                        a.model,
                        a.gpu_hours,
                        a.period_start_ms,
                        a.period_end_ms,
                        a.over_budget,
                        a.state,
                    )
                )
            users = {i: n for i, n in s.execute(select(UserRow.id, UserRow.name))}
        by_leaf: dict[str, list[Tenant]] = {}
        for t in tenants.values():
            if t.kind == "project":
                by_leaf.setdefault(t.path.rsplit("/", 1)[-1], []).append(t)
        fresh = _Snapshot(
            tenants,
            {k: tuple(v) for k, v in by_leaf.items()},
            {k: tuple(v) for k, v in allocations.items()},
            users,
        )

        def put() -> None:
            self._snapshot = (fresh, self._monotonic())

        self._store(generation, put)
        return fresh

    def tenant(self, path: str) -> Tenant | None:
        return self._current().tenants.get(path)

    def projects_named(self, leaf: str) -> tuple[Tenant, ...]:
        """Projects whose last path component is ``leaf``."""
        return self._current().by_leaf.get(leaf, ())

    def allocations(self, project_id: int, now: int) -> list[Allocation]:
        """The project's allocations active at ``now``."""
        return [a for a in self._current().allocations.get(project_id, ()) if a.active_at(now)]

    def user_name(self, user_id: int) -> str:
        return self._current().users.get(user_id, "")
