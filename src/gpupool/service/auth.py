"""Tokens, roles and who may see what.

This module owns API tokens (a random secret shown once; only its SHA-256 is stored), the
``Caller`` a token resolves to, and the visibility rules of ADR 0002:

- ``pool-admin``: sees and changes everything;
- ``viewer``: sees everything, changes nothing but its own tokens;
- an ``admin`` membership of an organisation (org admin) or project: sees that subtree and
  manages its tenants and memberships;
- a ``member`` of a project: sees that project (and its ancestors), submits and cancels its jobs;
- a ``lead`` of a project: a member who also writes the project's applications to calls (ADR 0010).

An object the caller may not see is reported as absent (404), never as forbidden.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service.db import MembershipRow, TenantRow, TokenRow, UserRow

TOKEN_PREFIX = "gpt_"
USER_ROLES = ("pool-admin", "viewer", "user")
MEMBER_ROLES = ("member", "lead", "admin")


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
    #: epoch ms at which the token stops working (None: never); an OIDC session token has one
    expires_ms: int | None = None

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and now_ms >= self.expires_ms

    @property
    def is_pool_admin(self) -> bool:
        return self.role == "pool-admin"

    @property
    def sees_all(self) -> bool:
        return self.visible is None

    def can_see(self, tenant_id: int) -> bool:
        return self.visible is None or tenant_id in self.visible

    def can_submit(self, project_id: int) -> bool:
        return project_id in self.member_of or project_id in self.admin_of

    def can_manage(self, tenant_id: int) -> bool:
        """May change this tenant and its memberships (pool admin, or admin above it)."""
        return self.is_pool_admin or tenant_id in self.admin_of

    def can_act_on_job(self, project_id: int) -> bool:
        return self.is_pool_admin or self.can_submit(project_id)


def caller_for_token(s: Session, plain: str) -> Caller | None:
    """The caller a token belongs to, or None for an unknown or revoked token."""
    return caller_for_hash(s, hash_token(plain))


def caller_for_hash(s: Session, digest: str) -> Caller | None:
    """The caller of the token whose SHA-256 is ``digest``, or None (unknown or revoked).

    An expired token still resolves (with its ``expires_ms``), so that the refusal can say it
    expired; every check of a caller refuses one whose ``expired(now)`` is true.
    """
    found = s.execute(
        select(UserRow, TokenRow.expires_ms)
        .join(TokenRow, TokenRow.user_id == UserRow.id)
        .where(TokenRow.hash == digest, TokenRow.revoked.is_(False))
    ).one_or_none()
    if found is None:
        return None
    return caller_for_user(s, found[0], expires_ms=found[1])


def caller_for_user(s: Session, user: UserRow, expires_ms: int | None = None) -> Caller:
    members = s.execute(
        select(MembershipRow.tenant_id, MembershipRow.role).where(MembershipRow.user_id == user.id)
    ).all()
    if user.role in ("pool-admin", "viewer") and not members:
        return Caller(user.id, user.name, user.role, frozenset(), frozenset(), None, expires_ms)
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
        expires_ms,
    )
