"""Standard claims of the provider's people: e-mail (verified), preferred username, name."""

from __future__ import annotations

from typing import Any


def userinfo(claims: dict[str, Any], user: Any) -> dict[str, Any]:
    claims["email"] = user.email
    claims["email_verified"] = True
    claims["preferred_username"] = user.username
    claims["name"] = f"{user.first_name} {user.last_name}".strip() or user.username
    return claims
