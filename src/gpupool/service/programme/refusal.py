"""``Refusal``: a rule of the programme said no (with the HTTP status and problem kind to answer)."""

from __future__ import annotations


class Refusal(Exception):
    """A refused step: ``status`` (403, 404, 409, 422), ``kind`` (the problem type) and why."""

    def __init__(self, status: int, detail: str, kind: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
