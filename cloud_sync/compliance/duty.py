"""Duty status: the four statuses of 49 CFR 395.8(b) (also the activities of Regulation (EU) 165/2014),
events that change them, and the timeline of segments the rule engines read.

A driver is in one status at a time, from one event to the next. Times are whole seconds since the Unix
epoch: telemetry carries milliseconds, and the regulations count in minutes, so a second is fine enough and
keeps the arithmetic exact. Before the first event the driver is taken to have been off duty long enough
for every reset (a timeline starts rested); the engines say so in each pack's ``assumptions``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

MINUTE = 60
HOUR = 3600


class DutyStatus(enum.StrEnum):
    """49 CFR 395.8(b): off duty, sleeper berth, driving, on duty not driving. EU: rest, rest, driving, other
    work (Regulation (EC) 561/2006 Art. 4(e) "other work" includes availability here)."""

    OFF = "off"
    SLEEPER = "sleeper"
    DRIVING = "driving"
    ON_DUTY = "on_duty"

    @property
    def is_rest(self) -> bool:
        return self in (DutyStatus.OFF, DutyStatus.SLEEPER)

    @property
    def is_work(self) -> bool:
        return not self.is_rest


#: Short codes used by the test vectors and accepted by the API.
CODES = {"OFF": DutyStatus.OFF, "SB": DutyStatus.SLEEPER, "D": DutyStatus.DRIVING, "ON": DutyStatus.ON_DUTY}


@dataclass(frozen=True, slots=True)
class DutyEvent:
    """The driver's status from ``at`` until the next event."""

    at: int
    status: DutyStatus


@dataclass(frozen=True, slots=True)
class Segment:
    """One status over ``[start, end)``."""

    status: DutyStatus
    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Run:
    """A maximal stretch of rest (off duty and/or sleeper berth) or of work (driving and/or on duty)."""

    rest: bool
    start: int
    end: int
    segments: tuple[Segment, ...]

    @property
    def seconds(self) -> int:
        return self.end - self.start

    def longest(self, status: DutyStatus) -> int:
        """The longest consecutive time in ``status`` inside the run (segments are already merged)."""
        return max((s.seconds for s in self.segments if s.status == status), default=0)

    def driving(self) -> int:
        return sum(s.seconds for s in self.segments if s.status == DutyStatus.DRIVING)


def timeline(events: Iterable[DutyEvent], until: int) -> list[Segment]:
    """Segments from the first event to ``until``, in time order, adjacent equal statuses merged.

    Two events at the same second: the later one in the input wins (a correction). Events at or after
    ``until`` are ignored.
    """
    by_time: dict[int, DutyStatus] = {}
    for e in events:
        if e.at < until:
            by_time[e.at] = e.status
    times = sorted(by_time)
    out: list[Segment] = []
    for i, t in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else until
        status = by_time[t]
        if out and out[-1].status == status:
            out[-1] = Segment(status, out[-1].start, end)
        else:
            out.append(Segment(status, t, end))
    return out


def runs(segments: list[Segment]) -> list[Run]:
    """Group segments into alternating rest and work runs."""
    out: list[Run] = []
    group: list[Segment] = []
    for seg in segments:
        if group and group[-1].status.is_rest != seg.status.is_rest:
            out.append(Run(group[0].status.is_rest, group[0].start, group[-1].end, tuple(group)))
            group = []
        group.append(seg)
    if group:
        out.append(Run(group[0].status.is_rest, group[0].start, group[-1].end, tuple(group)))
    return out


def parse_timeline(items: Iterable[str], start: int) -> list[DutyEvent]:
    """``["OFF 10:00", "D 5:30", ...]`` (status code, hours:minutes) from ``start`` into events; the test vectors'
    notation. The time after the last item is where the timeline ends (see ``timeline_end``)."""
    events = []
    t = start
    for item in items:
        code, _, duration = item.strip().partition(" ")
        if code not in CODES:
            raise ValueError(f"unknown duty status code {code!r} in {item!r} (expected one of {sorted(CODES)})")
        events.append(DutyEvent(t, CODES[code]))
        t += parse_hm(duration)
    events.append(DutyEvent(t, DutyStatus.OFF))  # marks the end; timeline() drops it when until == t
    return events


def parse_hm(text: str) -> int:
    """``"10:30"`` -> seconds; ``"-1:00"`` for negative offsets."""
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    hours, sep, minutes = text.lstrip("+-").partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2 or int(minutes) >= 60:
        raise ValueError(f"duration {text!r} is not H:MM")
    return sign * (int(hours) * HOUR + int(minutes) * MINUTE)
