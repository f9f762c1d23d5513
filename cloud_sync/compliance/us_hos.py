"""US FMCSA hours of service for property-carrying drivers (49 CFR 395.3, 395.1(g)(1)(ii)): the engine the
``us_property`` packs name.

The 11-hour and 14-hour limits, with sleeper-berth pairs judged in hindsight and the pairing FMCSA's 2020
guidance asks for, are in ``us_shift``.

The 30-minute break (8 hours of driving, 395.3(a)(3)(ii)) and the 60/70-hour cycle (395.3(b), restart (c))
are one forward pass: driving since the last 30 consecutive minutes without driving, and on-duty time in the
last 7 or 8 of the carrier's days since the end of the last 34-hour rest.

Only driving breaks these limits: on-duty work after the 14th hour or past 60/70 hours is legal, driving is
not. A limit reached exactly (11:00 of driving) is not a violation; the minutes of a violation are the
minutes driven past it. A rest still running at ``now`` counts for what it already is.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from cloud_sync.compliance import calendar, us_shift
from cloud_sync.compliance.duty import HOUR, DutyStatus, Run, Segment, parse_hm, runs
from cloud_sync.compliance.report import Accumulator, HoursReport, TimeLeft
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


def evaluate(pack: RulePack, segments: list[Segment], now: int, choices: dict[str, str]) -> HoursReport:
    r = _Rules(pack.rule("shift_reset"), pack.rule("shift_driving"), pack.rule("duty_window"),
               pack.rule("driving_break"), pack.rule("cycle", choices), pack.rule("restart"),
               pack.rule("sleeper_split"))
    all_runs = runs(segments)
    first = segments[0].start if segments else now
    shift = us_shift.ShiftRules(r.reset, r.driving, r.window, r.split)
    paired = us_shift.choose_pairs(shift, all_runs, now)
    periods, cuts = us_shift.periods(shift, all_runs, first, now, paired)
    acc = Accumulator()
    us_shift.check(shift, periods, cuts, acc, {})
    report = HoursReport(pack.name, now)
    cycle_start = _forward(pack, r, all_runs, acc)
    report.violations.extend(acc.result())
    report.time_left.extend(us_shift.time_left(shift, periods, cuts, now))
    report.time_left.append(_break_left(r, segments, now))
    report.time_left.append(_cycle_left(pack, r.cycle, segments, cycle_start, now))
    return report


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
    return us_shift.left(rule, start, end, limit, used)
