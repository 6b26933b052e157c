"""The reports' time axis: day, week and month buckets, and named periods (``2026-Q1``).

Buckets are in UTC: a day starts at 00:00 UTC, a week on Monday (ISO weeks), a month on its
first day. A range is cut at bucket boundaries and clipped to the range, so the first and last
buckets may be shorter than the rest; each bucket is labelled by the date its full bucket
starts on.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Bucket", "Every", "PeriodError", "buckets", "period"]

#: a report may not cut a range into more buckets than this (a day-by-day decade is 3,653)
MAX_BUCKETS = 5000
_PERIOD = re.compile(r"^(\d{4})(?:-(Q[1-4]|H[12]|\d{2}))?$")


class Every(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class PeriodError(ValueError):
    """A period or range the reports cannot read; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str  # ISO date the full bucket starts on
    start_ms: int
    end_ms: int

    @property
    def hours(self) -> float:
        return (self.end_ms - self.start_ms) / 3_600_000


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _floor(t: dt.datetime, every: Every) -> dt.datetime:
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if every is Every.DAY:
        return day
    if every is Every.WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(t: dt.datetime, every: Every) -> dt.datetime:
    if every is Every.DAY:
        return t + dt.timedelta(days=1)
    if every is Every.WEEK:
        return t + dt.timedelta(weeks=1)
    return t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)


def buckets(start_ms: int, end_ms: int, every: Every) -> list[Bucket]:
    """[start_ms, end_ms) cut at ``every``'s boundaries (UTC)."""
    try:
        return _buckets(start_ms, end_ms, every)
    except (ValueError, OverflowError, OSError) as e:
        if isinstance(e, PeriodError):
            raise
        raise PeriodError("the range runs past the year 9999") from None


def _buckets(start_ms: int, end_ms: int, every: Every) -> list[Bucket]:
    if end_ms <= start_ms:
        raise PeriodError("the end must be after the start")
    t = _floor(dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC), every)
    out: list[Bucket] = []
    while _ms(t) < end_ms:
        nxt = _next(t, every)
        out.append(Bucket(t.date().isoformat(), max(start_ms, _ms(t)), min(end_ms, _ms(nxt))))
        if len(out) > MAX_BUCKETS:
            raise PeriodError(
                f"the range holds more than {MAX_BUCKETS:,} {every.value}s: choose a longer --every"
            )
        t = nxt
    return out


def period(text: str) -> tuple[int, int]:
    """[start, end) epoch ms of a named period: ``2026``, ``2026-H1``, ``2026-Q1`` or ``2026-03`` (UTC)."""
    m = _PERIOD.match(text.strip())
    if m is None:
        raise PeriodError(f"cannot read period {text!r} (write 2026, 2026-H1, 2026-Q1 or 2026-03)")
    year, part = int(m.group(1)), m.group(2)
    if year < 1970:
        raise PeriodError(f"period {text!r} is before 1970")
    if part is None:
        first, months = 1, 12
    elif part[0] == "Q":
        first, months = 3 * (int(part[1]) - 1) + 1, 3
    elif part[0] == "H":
        first, months = 6 * (int(part[1]) - 1) + 1, 6
    else:
        first, months = int(part), 1
        if not 1 <= first <= 12:
            raise PeriodError(f"period {text!r}: no month {first}")
    start = dt.datetime(year, first, 1, tzinfo=dt.UTC)
    end_month = first + months
    try:
        end = dt.datetime(year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1, tzinfo=dt.UTC)
    except ValueError:
        raise PeriodError(f"period {text!r} runs past the year 9999") from None
    return _ms(start), _ms(end)
