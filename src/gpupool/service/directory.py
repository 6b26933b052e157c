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

It also owns two token writes that must not cost a request much: ``issue_token`` (minting a
token for a user: the token API, the recovery command and OIDC sign-in call it) and
``touch`` (a token's last-used time, written at most once per ``LAST_USED_EVERY_MS`` per
token, by a statement marked ``directory_neutral`` so that it does not drop the caches).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import UpdateBase

from gpupool.core.tenancy import DEFAULT_CLASSES
from gpupool.service import auth, store
from gpupool.service.auth import Caller, Scope
from gpupool.service.db import AllocationRow, TenantRow, TokenRow, UserRow

#: tables whose changes may change a caller, a project's name or a budget
WATCHED = frozenset({"tokens", "users", "memberships", "tenants", "allocations"})
#: at most this many tokens are remembered (a flood of unknown tokens must not grow memory)
MAX_TOKENS = 10_000
#: a token's last-used time is written at most this often (not a write per request)
LAST_USED_EVERY_MS = 60_000
#: execution option of a write to a watched table that changes no caller (``touch``)
NEUTRAL = "directory_neutral"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant as requests need it (a detached copy: safe to share between threads)."""

    id: int
    path: str
    kind: str
    #: the priority classes its members may use (its own list, else its parent's)
    classes: frozenset[str] = frozenset(DEFAULT_CLASSES)


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
    unit: str = "gpu_hours"

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
        self._writer: sessionmaker[Session] | None = None
        #: token id -> when its last use was last written (epoch ms)
        self._last_used: dict[int, int] = {}

    # -- invalidation -----------------------------------------------------------------------

    def watch(self, engine: Engine, factory: sessionmaker[Session]) -> None:
        """Invalidate on every committed change of a watched table written through ``factory``."""
        self._writer = factory

        @event.listens_for(engine, "before_execute")
        def _seen(conn: Any, clause: Any, *_: Any) -> None:
            # A session and its connection stay in one thread: a thread-local flag links the
            # statement to the commit that follows it.
            if (
                isinstance(clause, UpdateBase)
                and getattr(clause.table, "name", "") in WATCHED
                and not clause.get_execution_options().get(NEUTRAL)
            ):
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

    # -- token writes -------------------------------------------------------------------------

    def issue_token(
        self,
        user_id: int,
        *,
        name: str,
        scopes: frozenset[Scope] | set[Scope],
        expires_at_ms: int | None,
        now_ms: int,
        actor: str = "",
    ) -> tuple[int, str]:
        """Mint a token for ``user_id``: (its id, the secret to show once), audited.

        ``expires_at_ms`` is epoch milliseconds (None: never; give one). ``actor`` names who
        asked in the audit log (default: the user). Callers outside the API (OIDC sign-in, the
        recovery command) use this, so that every token is made the same way.
        """
        if self._writer is None:
            raise RuntimeError("Directory.watch was not called: no writer to mint tokens with")
        with self._writer.begin() as s:
            user = s.get(UserRow, user_id)
            if user is None:
                raise ValueError(f"no user with id {user_id}")
            row, plain = auth.issue(
                s, user_id, name=name, scopes=scopes, expires_ms=expires_at_ms, now_ms=now_ms
            )
            store.audit(
                s,
                actor or user.name,
                "token.create",
                f"user/{user.name}",
                {
                    "token_id": row.id,
                    "name": name,
                    "scopes": auth.scopes_text(scopes),
                    "expires_ms": expires_at_ms,
                },
                now_ms,
            )
            return row.id, plain

    def touch(self, token_id: int | None, now_ms: int) -> bool:
        """Is the token's last-used time due for a write (``write_last_used``)? Memory only."""
        if token_id is None:
            return False
        last = self._last_used.get(token_id)
        if last is not None and now_ms - last < LAST_USED_EVERY_MS:
            return False
        if len(self._last_used) >= MAX_TOKENS:
            self._last_used.clear()
        self._last_used[token_id] = now_ms
        return True

    def write_last_used(self, token_id: int, now_ms: int) -> None:
        """Record a token's last use (blocks: a write; neutral to the caches)."""
        if self._writer is None:
            return
        with self._writer.begin() as s:
            s.execute(
                update(TokenRow)
                .where(TokenRow.id == token_id)
                .values(last_used_ms=now_ms)
                .execution_options(**{NEUTRAL: True})
            )

    # -- tenants, users and allocations ---------------------------------------------------------

    def _current(self) -> _Snapshot:
        snap = self._snapshot
        if snap is not None and self._fresh(snap[1]):
            return snap[0]
        generation = self._generation
        with self._reader() as s:
            tenants: dict[str, Tenant] = {}
            classes: dict[int, frozenset[str]] = {}
            # parents before children (ids grow as tenants are added under parents)
            for i, path, kind, parent, own in s.execute(
                select(
                    TenantRow.id,
                    TenantRow.path,
                    TenantRow.kind,
                    TenantRow.parent_id,
                    TenantRow.allowed_classes,
                ).order_by(TenantRow.id)
            ):
                inherited = frozenset(DEFAULT_CLASSES) if parent is None else classes[parent]
                classes[i] = frozenset(own) if own is not None else inherited
                tenants[path] = Tenant(i, path, kind, classes[i])
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
                        a.unit,
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
