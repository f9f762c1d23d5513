"""US FMCSA hours of service for property-carrying drivers (49 CFR 395.3, 395.1(g)(1)(ii)): the engine the
``us_property`` packs name.

The 11-hour and 14-hour limits are judged the way 395.1(g)(1)(ii)(B)-(D) words them, in hindsight:

- rests that count are 10 consecutive hours off duty (a reset, 395.3(a)(1)) and sleeper-berth pairs: two
  neighbouring rests, one of at least 7 consecutive hours in the berth and the other at least 2 hours,
  together at least 10 hours, in either order (395.1(g)(1)(ii)(A)); any other rest is part of the work;
- between counting rests lie work periods. Around each rest of a pair, the work period before and the one
  after together hold at most 11 hours of driving and no driving after their 14th hour, the rest itself not
  counted (395.1(g)(1)(ii)(B), (C)); a period between two resets alone holds 11 and 14 hours (395.3(a)(2),
  (a)(3)(i)). A pair completed later can therefore cure driving that looked late at the time, as the
  regulation intends; until the pair is complete the driver is judged without it.

The 30-minute break (8 hours of driving, 395.3(a)(3)(ii)) and the 60/70-hour cycle (395.3(b), restart (c))
are one forward pass: driving since the last 30 consecutive minutes without driving, and on-duty time in the
last 7 or 8 of the carrier's days since the end of the last 34-hour rest.

Only driving breaks these limits: on-duty work after the 14th hour or past 60/70 hours is legal, driving is
not. A limit reached exactly (11:00 of driving) is not a violation; the minutes of a violation are the
minutes driven past it. A rest still running at ``now`` counts for what it already is.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

from cloud_sync.compliance import calendar
from cloud_sync.compliance.duty import HOUR, DutyStatus, Run, Segment, parse_hm, runs
from cloud_sync.compliance.report import Accumulator, HoursReport, TimeLeft, claim
from cloud_sync.compliance.rulepack import Rule, RulePack

#: Rule kinds this engine knows, and the parameters each needs in the pack.
KINDS: dict[str, tuple[str, ...]] = {
    "shift_reset": ("rest_min",),
    "shift_driving": ("limit_min",),
    "duty_window": ("limit_min",),
    "driving_break": ("driving_min", "break_min"),
    "cycle": ("limit_min", "days", "day_start"),
    "restart": ("rest_min",),
    "sleeper_split": ("sleeper_min", "other_min", "total_min"),
}


@dataclass(slots=True)
class _Rules:
    reset: Rule
    driving: Rule
    window: Rule
    brk: Rule
    cycle: Rule
    restart: Rule
    split: Rule


@dataclass(slots=True)
class _Period:
    """Work between two counting rests (with the rests that do not count inside it)."""

    start: int
    end: int
    segments: list[Segment] = field(default_factory=list)

    def driving(self) -> int:
        return sum(s.seconds for s in self.segments if s.status == DutyStatus.DRIVING)


@dataclass(slots=True)
class _Cut:
    """A counting rest between two periods; ``split`` when it counts as part of a sleeper-berth pair."""

    run: Run
    split: bool


def evaluate(pack: RulePack, segments: list[Segment], now: int, choices: dict[str, str]) -> HoursReport:
    r = _Rules(pack.rule("shift_reset"), pack.rule("shift_driving"), pack.rule("duty_window"),
               pack.rule("driving_break"), pack.rule("cycle", choices), pack.rule("restart"),
               pack.rule("sleeper_split"))
    all_runs = runs(segments)
    periods, cuts = _periods(r, all_runs, segments[0].start if segments else now, now)
    acc = Accumulator()
    flagged: dict[str, list[tuple[int, int]]] = {}
    for k, period in enumerate(periods):
        left = cuts[k - 1] if k > 0 else None
        right = cuts[k] if k < len(cuts) else None
        if left is not None and left.split:
            _check_span(r, acc, flagged, [periods[k - 1], period], left.run.seconds)
        if not (left is not None and left.split) and not (right is not None and right.split):
            _check_span(r, acc, flagged, [period], 0)
    report = HoursReport(pack.name, now)
    cycle_start = _forward(pack, r, all_runs, acc)
    report.violations.extend(acc.result())
    report.time_left.extend(_shift_left(r, periods, cuts, now))
    report.time_left.append(_break_left(r, segments, now))
    report.time_left.append(_cycle_left(pack, r.cycle, segments, cycle_start, now))
    return report


def _periods(r: _Rules, all_runs: list[Run], first: int, now: int) -> tuple[list[_Period], list[_Cut]]:
    """Periods and the counting rests between them (``len(cuts) == len(periods) - 1``)."""
    reset = r.reset.seconds("rest")
    # Before the first event the driver rested (duty.py): an opening rest is a reset.
    is_reset = [run.rest and (i == 0 or run.seconds >= reset) for i, run in enumerate(all_runs)]
    candidates = [i for i, run in enumerate(all_runs) if run.rest and not is_reset[i] and _split_part(r.split, run)]
    paired: set[int] = set()
    for a, b in itertools.pairwise(candidates):
        between_reset = any(is_reset[j] for j in range(a + 1, b))
        if not between_reset and _pair(r.split, all_runs[a], all_runs[b]):
            paired.update((a, b))
    periods = [_Period(first, first)]
    cuts: list[_Cut] = []
    for i, run in enumerate(all_runs):
        if is_reset[i] or i in paired:
            cuts.append(_Cut(run, split=i in paired))
            periods.append(_Period(run.end, run.end))
        else:
            periods[-1].segments.extend(run.segments)
            periods[-1].end = run.end
    if not all_runs:
        periods[-1].end = now
    return periods, cuts


def _split_part(split: Rule, run: Run) -> bool:
    return run.seconds >= split.seconds("other") or run.longest(DutyStatus.SLEEPER) >= split.seconds("sleeper")


def _pair(split: Rule, a: Run, b: Run) -> bool:
    berth, other = split.seconds("sleeper"), split.seconds("other")
    a_sb, b_sb = a.longest(DutyStatus.SLEEPER), b.longest(DutyStatus.SLEEPER)
    shapes = (a_sb >= berth and b.seconds >= other) or (b_sb >= berth and a.seconds >= other)
    return shapes and a.seconds + b.seconds >= split.seconds("total")


def _check_span(r: _Rules, acc: Accumulator, flagged: dict[str, list[tuple[int, int]]],
                span: list[_Period], excluded: int) -> None:
    """11 hours of driving and no driving after the 14th hour, over one period or two around a rest."""
    start = span[0].start
    drive_limit, window = r.driving.seconds("limit"), r.window.seconds("limit")
    window_end = start + window + excluded
    drive = 0
    elapsed_before = 0  # length of the span's earlier period (the rest between is not counted)
    span_end = span[-1].end
    for p in span:
        for seg in p.segments:
            if seg.status != DutyStatus.DRIVING:
                continue
            over = seg.start + max(0, drive_limit - drive)
            for a, b in claim(flagged, r.driving.id, over, seg.end):
                acc.add(r.driving.id, r.driving.cite, start, span_end, a, b - a,
                        f"more than {drive_limit // 60} minutes of driving")
            late = p.start + (window - elapsed_before)
            for a, b in claim(flagged, r.window.id, max(seg.start, late), seg.end):
                acc.add(r.window.id, r.window.cite, start, window_end, a, b - a,
                        f"driving after the {window // HOUR}th hour of the duty window")
            drive += seg.seconds
        elapsed_before += p.end - p.start


def _excess(before: int, added: int, limit: int) -> int:
    return max(0, before + added - limit) - max(0, before - limit)


def _forward(pack: RulePack, r: _Rules, all_runs: list[Run], acc: Accumulator) -> int | None:
    """The 30-minute break and the cycle, in one pass; returns the end of the last 34-hour rest."""
    brk, limit = r.brk.seconds("break"), r.brk.seconds("driving")
    since_break, break_start, last_drive_end = 0, 0, None
    cycle_start: int | None = None
    on_duty = _Spans()
    for i, run in enumerate(all_runs):
        if run.rest:
            if i == 0 or run.seconds >= r.restart.seconds("rest"):
                cycle_start = run.end
            continue
        for seg in run.segments:
            on_duty.append(seg.start, seg.end)
            if seg.status != DutyStatus.DRIVING:
                continue
            if last_drive_end is None or seg.start - last_drive_end >= brk:
                since_break, break_start = 0, seg.start
            acc.add(r.brk.id, r.brk.cite, break_start, seg.end, seg.start + max(0, limit - since_break),
                    _excess(since_break, seg.seconds, limit), f"driving without a {brk // 60}-minute interruption")
            _cycle(pack, r.cycle, cycle_start, on_duty, acc, seg)
            since_break += seg.seconds
            last_drive_end = seg.end
    return cycle_start


def _cycle_window(pack: RulePack, rule: Rule, cycle_start: int | None, t: int) -> int:
    start = calendar.day_start(t, pack.timezone, parse_hm(rule.params["day_start"]), back=rule.count("days") - 1)
    return start if cycle_start is None else max(start, cycle_start)


class _Spans:
    """On-duty spans in time order with running totals: the time on duty between two instants in
    O(log n) (the cycle is asked once per driving piece, over weeks of history)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.totals: list[int] = [0]  # totals[k]: on-duty seconds in spans[:k]

    def append(self, a: int, b: int) -> None:
        self.starts.append(a)
        self.ends.append(b)
        self.totals.append(self.totals[-1] + b - a)

    def before(self, t: int) -> int:
        k = bisect.bisect_right(self.ends, t)  # spans[:k] ended by t
        partial = max(0, t - self.starts[k]) if k < len(self.starts) else 0
        return self.totals[k] + partial

    def between(self, lo: int, hi: int) -> int:
        return max(0, self.before(hi) - self.before(lo))


def _cycle(pack: RulePack, rule: Rule, cycle_start: int | None, on_duty: _Spans,
           acc: Accumulator, seg: Segment) -> None:
    offset = parse_hm(rule.params["day_start"])
    limit = rule.seconds("limit")
    for a, b in calendar.pieces(seg.start, seg.end, lambda t: calendar.next_day_start(t, pack.timezone, offset)):
        ws = _cycle_window(pack, rule, cycle_start, a)
        before = on_duty.between(ws, a)
        acc.add(rule.id, rule.cite, ws, b, a + max(0, limit - before), _excess(before, b - a, limit),
                f"driving after {limit // HOUR} hours on duty in {rule.count('days')} days")


def _shift_left(r: _Rules, periods: list[_Period], cuts: list[_Cut], now: int) -> list[TimeLeft]:
    drive_limit, window = r.driving.seconds("limit"), r.window.seconds("limit")
    last = periods[-1]
    if cuts and cuts[-1].split:
        prev = periods[-2]
        start, excluded = prev.start, cuts[-1].run.seconds
        used_drive = prev.driving() + last.driving()
        used_window = (prev.end - prev.start) + (now - last.start)
    elif not last.segments:
        start, excluded, used_drive, used_window = now, 0, 0, 0
    else:
        start, excluded = last.start, 0
        used_drive, used_window = last.driving(), now - last.start
    return [_left(r.driving, start, None, drive_limit, used_drive),
            _left(r.window, start, start + window + excluded, window, used_window)]


def _break_left(r: _Rules, segments: list[Segment], now: int) -> TimeLeft:
    brk, limit = r.brk.seconds("break"), r.brk.seconds("driving")
    since, start, last_end = 0, now, None
    for seg in segments:
        if seg.status != DutyStatus.DRIVING:
            continue
        if last_end is None or seg.start - last_end >= brk:
            since, start = 0, seg.start
        since += seg.seconds
        last_end = seg.end
    if last_end is None or now - last_end >= brk:
        return _left(r.brk, now, None, limit, 0)
    return _left(r.brk, start, None, limit, since)


def _cycle_left(pack: RulePack, rule: Rule, segments: list[Segment], cycle_start: int | None, now: int) -> TimeLeft:
    ws = _cycle_window(pack, rule, cycle_start, now)
    on_duty = _Spans()
    for s in segments:
        if s.status.is_work:
            on_duty.append(s.start, s.end)
    return _left(rule, ws, now, rule.seconds("limit"), on_duty.between(ws, now))


def _left(rule: Rule, start: int, end: int | None, limit: int, used: int) -> TimeLeft:
    used = max(0, used)
    return TimeLeft(rule.id, rule.cite, start, end, limit / 60, used / 60, max(0, limit - used) / 60)
