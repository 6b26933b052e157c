"""Tokens, roles, scopes and who may see what.

This module owns API tokens (a random secret shown once; only its SHA-256 is stored), their
scopes and expiry (ADR 0007), the ``Caller`` a token resolves to, and the visibility rules of
ADR 0002:

- ``pool-admin``: sees and changes everything;
- ``viewer``: sees everything, changes nothing (its tokens carry the ``read`` scope only);
- an ``admin`` membership of an organisation (org admin) or project: sees that subtree and
  manages its tenants and memberships (entitlements only strictly below it: ``entitlements``);
- a ``member`` of a project: sees that project (and its ancestors), submits and cancels its jobs;
- a ``lead`` of a project: a member who also writes the project's applications to calls (ADR 0010).

A token's scopes cap what its user may do: ``read`` (safe methods only), ``submit`` (jobs and
allocation requests too), ``admin`` (everything the user's role allows). An object the caller
may not see is reported as absent (404), never as forbidden.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service.db import MembershipRow, TenantRow, TokenRow, UserRow

TOKEN_PREFIX = "gpt_"
USER_ROLES = ("pool-admin", "viewer", "user")
MEMBER_ROLES = ("member", "lead", "admin")
DAY_MS = 86_400_000
#: lifetime of a token minted without ``expires_in`` (API tokens are for programs: rotate them)
DEFAULT_TOKEN_TTL_MS = 90 * DAY_MS
#: the longest lifetime a token may ask for
MAX_TOKEN_TTL_MS = 3 * 365 * DAY_MS


class Scope(StrEnum):
    """What a token may do, on top of what its user may do."""

    READ = "read"
    SUBMIT = "submit"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)
#: scopes are cumulative: ``admin`` may do what ``submit`` may, ``submit`` what ``read`` may
_RANK = {Scope.READ: 0, Scope.SUBMIT: 1, Scope.ADMIN: 2}


def parse_scopes(text: str) -> frozenset[Scope]:
    """The scopes a token row stores as ``"read submit"`` (unknown words are ignored)."""
    return frozenset(Scope(w) for w in text.split() if w in Scope.__members__.values())


def scopes_text(scopes: Iterable[Scope]) -> str:
    """``scopes`` as stored: in the order read, submit, admin."""
    chosen = set(scopes)
    return " ".join(s.value for s in Scope if s in chosen)


def new_token() -> tuple[str, str]:
    """A fresh token: (the secret to show once, its hash to store)."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plain, hash_token(plain)


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated user and the tenants it can see and act on."""

    user_id: int
    name: str
    role: str
    #: projects the caller is a member (or admin) of: may submit and cancel there
    member_of: frozenset[int]
    #: tenants the caller administers, and every tenant below them
    admin_of: frozenset[int]
    #: tenants the caller may see (None: all)
    visible: frozenset[int] | None
    #: what this token may do (a viewer's: ``read`` only, whatever the token row says)
    scopes: frozenset[Scope] = ALL_SCOPES
    #: the token's id (None: a caller made without a token, e.g. by the recovery command)
    token_id: int | None = None
    #: when the token stops working (epoch ms; None: never)
    expires_ms: int | None = None

    def has(self, scope: Scope) -> bool:
        """Does the token carry ``scope`` (or a wider one)?"""
        return any(_RANK[s] >= _RANK[scope] for s in self.scopes)

    @property
    def is_pool_admin(self) -> bool:
        """May act as pool admin: the role, through a token with the ``admin`` scope."""
        return self.role == "pool-admin" and self.has(Scope.ADMIN)

    @property
    def reads_as_pool_admin(self) -> bool:
        """May read what only pool admins read (the audit log), with any scope."""
        return self.role == "pool-admin"

    @property
    def read_only(self) -> bool:
        """Can change nothing: a viewer, or a token with the ``read`` scope alone."""
        return not self.has(Scope.SUBMIT)

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and now_ms >= self.expires_ms

    @property
    def sees_all(self) -> bool:
        return self.visible is None

    def can_see(self, tenant_id: int) -> bool:
        return self.visible is None or tenant_id in self.visible

    def can_submit(self, project_id: int) -> bool:
        if not self.has(Scope.SUBMIT):
            return False
        return project_id in self.member_of or project_id in self.admin_of

    def can_manage(self, tenant_id: int) -> bool:
        """May change this tenant and its memberships (pool admin, or admin above it)."""
        if not self.has(Scope.ADMIN):
            return False
        return self.is_pool_admin or tenant_id in self.admin_of

    def sets_entitlements_of(self, parent_id: int | None) -> bool:
        """May set the entitlements of a tenant whose parent is ``parent_id``.

        A pool admin sets anyone's; an admin only those strictly below a tenant she
        administers (the parent is hers), never her own tenant's: so nobody raises her own
        guarantee, weight, borrow limit or classes.
        """
        if self.is_pool_admin:
            return True
        return self.has(Scope.ADMIN) and parent_id is not None and parent_id in self.admin_of

    def can_act_on_job(self, project_id: int) -> bool:
        return self.is_pool_admin or self.can_submit(project_id)


def caller_for_token(s: Session, plain: str) -> Caller | None:
    """The caller a token belongs to, or None for an unknown or revoked token."""
    return caller_for_hash(s, hash_token(plain))


def caller_for_hash(s: Session, digest: str) -> Caller | None:
    """The caller of the token whose SHA-256 is ``digest``, or None (unknown or revoked).

    An expired token still resolves (with its ``expires_ms``), so that the answer can say it
    expired rather than that it is unknown.
    """
    got = s.execute(
        select(UserRow, TokenRow)
        .join(TokenRow, TokenRow.user_id == UserRow.id)
        .where(TokenRow.hash == digest, TokenRow.revoked.is_(False))
    ).first()
    # The index finds the row; the comparison that decides is constant-time all the same.
    if got is None or not hmac.compare_digest(got[1].hash.encode(), digest.encode()):
        return None
    user, token = got
    return caller_for_user(s, user, parse_scopes(token.scopes), token.id, token.expires_ms)


def caller_for_user(
    s: Session,
    user: UserRow,
    scopes: frozenset[Scope] = ALL_SCOPES,
    token_id: int | None = None,
    expires_ms: int | None = None,
) -> Caller:
    if user.role == "viewer":
        scopes = scopes & {Scope.READ}  # viewers only read, whatever the token says
    members = s.execute(
        select(MembershipRow.tenant_id, MembershipRow.role).where(MembershipRow.user_id == user.id)
    ).all()
    if user.role in ("pool-admin", "viewer") and not members:
        return Caller(
            user.id, user.name, user.role, frozenset(), frozenset(), None, scopes, token_id, expires_ms
        )
    parents = {k: v for k, v in s.execute(select(TenantRow.id, TenantRow.parent_id))}
    children: dict[int | None, list[int]] = {}
    for t, p in parents.items():
        children.setdefault(p, []).append(t)

    def below(t: int) -> set[int]:
        out = {t}
        stack = [t]
        while stack:
            for k in children.get(stack.pop(), []):
                out.add(k)
                stack.append(k)
        return out

    def above(t: int) -> set[int]:
        out = set()
        cur: int | None = t
        while cur is not None:
            out.add(cur)
            cur = parents.get(cur)
        return out

    member_of: set[int] = set()
    admin_of: set[int] = set()
    visible: set[int] = set()
    for tenant, role in members:
        if tenant not in parents:
            continue
        sub = below(tenant)
        visible |= sub | above(tenant)
        if role == "admin":
            admin_of |= sub
        else:
            member_of |= sub
    everything = user.role in ("pool-admin", "viewer")
    return Caller(
        user.id,
        user.name,
        user.role,
        frozenset(member_of),
        frozenset(admin_of),
        None if everything else frozenset(visible),
        scopes,
        token_id,
        expires_ms,
    )


def issue(
    s: Session,
    user_id: int,
    *,
    name: str,
    scopes: Iterable[Scope],
    expires_ms: int | None,
    now_ms: int,
) -> tuple[TokenRow, str]:
    """Add a token for ``user_id`` in the caller's transaction: (its row, the secret to show once)."""
    plain, hashed = new_token()
    row = TokenRow(
        user_id=user_id,
        name=name,
        hash=hashed,
        created_ms=now_ms,
        scopes=scopes_text(scopes),
        expires_ms=expires_ms,
    )
    s.add(row)
    s.flush()
    return row, plain


def live_pool_admin_tokens(s: Session, now_ms: int) -> list[int]:
    """Ids of the tokens that can still act as pool admin (not revoked or expired, admin scope)."""
    rows = s.execute(
        select(TokenRow.id, TokenRow.scopes, TokenRow.expires_ms)
        .join(UserRow, UserRow.id == TokenRow.user_id)
        .where(UserRow.role == "pool-admin", TokenRow.revoked.is_(False))
    ).all()
    return [i for i, sc, exp in rows if Scope.ADMIN in parse_scopes(sc) and (exp is None or exp > now_ms)]
