"""The language of the command line's messages: gettext catalogues, English or Korean.

This module owns ``_`` (translate a message) and ``ngettext``-style ``n_`` for counts, and the
choice of language: ``GPUPOOL_LANG`` if set, else the POSIX order ``LC_ALL``, ``LC_MESSAGES``,
``LANG`` ("ko_KR.UTF-8" -> Korean); English otherwise. The catalogues live in
``gpupool/locale/<lang>/LC_MESSAGES/gpupool.po`` (edited through Babel: ``scripts/i18n``) and
ship compiled as ``gpupool.mo`` next to them (package data): the command needs no Babel at run
time, and ``tests/test_translation.py`` fails when a ``.mo`` is older than its ``.po``.

Messages keep ``{name}`` placeholders filled by ``str.format`` after translation, so a
translation may reorder them (Korean puts the object first).
"""

from __future__ import annotations

import gettext
import os
from functools import cache
from pathlib import Path

__all__ = ["DOMAIN", "LANGUAGES", "LOCALE_DIR", "_", "language", "n_"]

DOMAIN = "gpupool"
LOCALE_DIR = Path(__file__).parent / "locale"
#: languages with a catalogue (English is the source language: no catalogue)
LANGUAGES = ("en", "ko")


def language(env: dict[str, str] | None = None) -> str:
    """The language the environment asks for, among ``LANGUAGES`` (default English)."""
    e = os.environ if env is None else env
    for var in ("GPUPOOL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = e.get(var, "")
        if not value:
            continue
        base = value.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
        # the first variable set decides (as in gettext): LANG=ko_KR but LC_ALL=C is English
        return base if base in LANGUAGES else "en"
    return "en"


@cache
def _catalogue(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang], fallback=True)


def _(message: str, /, **params: object) -> str:
    """``message`` in the user's language, its ``{placeholders}`` filled from ``params``."""
    text = _catalogue(language()).gettext(message)
    return text.format(**params) if params else text


def n_(singular: str, plural: str, n: int, /, **params: object) -> str:
    """The form of a message for the count ``n`` (``{n}`` is filled too)."""
    text = _catalogue(language()).ngettext(singular, plural, n)
    return text.format(n=n, **params)
