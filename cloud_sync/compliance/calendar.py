"""Calendar boundaries in a time zone: the carrier's 24-hour days (49 CFR 395.2 "seven consecutive days")
and the EU's Monday-to-Sunday week (Regulation (EC) 561/2006 Art. 4(i)).

Boundaries are local wall-clock times, so a day that holds a DST change is 23 or 25 hours long; arithmetic
is on calendar dates, never on "86,400 seconds".
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from zoneinfo import ZoneInfo

WEEK_DAYS = 7


def _local_midnight(day: datetime.date, tz: ZoneInfo, offset: datetime.timedelta) -> int:
    wall = datetime.datetime.combine(day, datetime.time(), tzinfo=tz) + offset
    # Re-attach: adding a timedelta to an aware datetime keeps its wall clock, which is what a
    # "day starts at 06:00 local" boundary means across a DST change.
    return int(wall.timestamp())


def day_start(t: int, tz: ZoneInfo, offset_s: int = 0, back: int = 0) -> int:
    """Start of the day holding ``t``, ``back`` days earlier; a day begins ``offset_s`` after local midnight."""
    offset = datetime.timedelta(seconds=offset_s)
    local = datetime.datetime.fromtimestamp(t, tz) - offset
    return _local_midnight(local.date() - datetime.timedelta(days=back), tz, offset)


def next_day_start(t: int, tz: ZoneInfo, offset_s: int = 0) -> int:
    return day_start(t, tz, offset_s, back=-1)


def week_start(t: int, tz: ZoneInfo, back: int = 0) -> int:
    """00:00 on the Monday of the week holding ``t`` (``back`` weeks earlier)."""
    local = datetime.datetime.fromtimestamp(t, tz)
    monday = local.date() - datetime.timedelta(days=local.weekday() + WEEK_DAYS * back)
    return _local_midnight(monday, tz, datetime.timedelta())


def pieces(start: int, end: int, next_boundary: Callable[[int], int]) -> list[tuple[int, int]]:
    """``[start, end)`` cut at each boundary; ``next_boundary(t)`` is the first boundary after ``t``."""
    out = []
    a = start
    while a < end:
        cut = min(next_boundary(a), end)
        out.append((a, cut))
        a = cut
    return out
