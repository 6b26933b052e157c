"""``RequestBody``: the base of every request body the API accepts.

This module owns what all bodies share: unknown fields are refused (``extra="forbid"``), and
text must be valid Unicode. JSON may spell a lone surrogate (``"\\ud800"``), which Python keeps
but no database can store: it is refused here as invalid input instead of failing later.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_surrogate(v) for v in value)
    return False


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        if _has_surrogate(data):
            raise ValueError("text must be valid Unicode (no lone surrogates)")
        return data
