"""Cursor pagination: a page of items and the opaque cursor of the next page."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from gpupool.service import store
from gpupool.service.api.problems import invalid

T = TypeVar("T")

LimitQ = Annotated[int, Query(ge=1, le=500, description="Items per page")]
CursorQ = Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def after(cursor: str | None) -> int | None:
    """The position a cursor points after (422 naming ``cursor`` if it is not ours)."""
    if cursor is None:
        return None
    try:
        return store.decode_cursor(cursor)
    except store.CursorError as e:
        raise invalid("cursor", str(e)) from None


def next_cursor(keys: list[int], limit: int) -> str | None:
    return store.encode_cursor(keys[-1]) if len(keys) == limit else None
