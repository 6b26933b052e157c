"""``RequestBody``: the base of every request body the API accepts.

This module owns what all bodies share: unknown fields are refused (``extra="forbid"``), and
text must be storable. JSON may spell a lone surrogate (``"\\ud800"``), which Python keeps but
no database can store, or a NUL (``"\\u0000"``), which PostgreSQL's text columns refuse (a
fuzzing run found a 500 that way): both are refused here as invalid input, on every database
alike, instead of failing later.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def _unstorable(value: Any) -> bool:
    """Whether some text in ``value`` holds a lone surrogate or a NUL character."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_unstorable(v) for v in value)
    return False


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        if _unstorable(data):
            raise ValueError("text must be valid Unicode without NUL characters or lone surrogates")
        return data
