"""The first pool admin's token as ``gpupool serve`` prints it once, and reading it back.

This module owns the banner's wording: the service stores only the token's hash, so the
printed line is the one place the secret exists. ``serve`` prints ``banner(token)``; tests and
benchmarks that start a real server read the secret back from its output with
``printed_token`` (one pattern, so that a change of wording cannot break some of them only).
"""

from __future__ import annotations

import re

#: the line printed before the secret (kept in English: scripts read it back)
HEADING = "admin token (shown once; only its hash is stored):"
_PRINTED = re.compile(r"shown once[^\n]*\n(gpt_\S+)")


def banner(token: str) -> str:
    """The heading and the secret on a line of its own."""
    return f"{HEADING}\n{token}"


def printed_token(output: str) -> str | None:
    """The first admin token printed in ``output`` (a server's log), or None."""
    found = _PRINTED.search(output)
    return None if found is None else found.group(1)
