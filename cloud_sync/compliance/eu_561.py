"""EU driving time, breaks and rest periods (Regulation (EC) No 561/2006 as amended by Regulation (EU)
2020/1054): the engine the ``eu_561`` packs name.

Rest (off duty or sleeper berth) is the only thing that interrupts driving here: other work is not a break
(Art. 4(d)). The timeline is cut into daily periods: each runs from the end of one daily or weekly rest to the
start of the next rest long enough to be one (at least the reduced 9 hours, Art. 4(g)); a 3-hour rest inside
a period is the first part of a split daily rest (3 + 9, Art. 4(g) second subparagraph). On those periods:

- Art. 6(1): driving per period at most 9 h, 10 h on at most two periods per week (a period belongs to the
  week it starts in);
- Art. 8(2): within 24 h of the period's start, the rest that ends it must lie at least 9 h (reduced) or 11 h
  (regular, or 9 h after a 3-hour first part) inside those 24 h; Art. 8(4): at most three reduced daily rests
  between two weekly rests;
- Art. 8(6): a weekly rest (at least 24 h) starts at the latest six 24-hour periods after the previous one
  ended, and any two consecutive weeks hold two weekly rests, at least one regular (45 h); a reduced weekly
  rest is compensated within three weeks (``eu_weekly``).

Art. 7 (4.5 h of driving, then 45 min or 15 + 30 min of rest, in that order) and Art. 6(2)/(3) (56 h per
week, 90 h per two consecutive weeks, weeks from Monday 00:00, Art. 4(i)) are one forward pass.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from cloud_sync.compliance import calendar, eu_weekly
from cloud_sync.compliance.duty import HOUR, DutyStatus, Run, Segment, runs
from cloud_sync.compliance.report import Accumulator, Allowance, HoursReport, TimeLeft, claim
from cloud_sync.compliance.rulepack import Rule, RulePack

KINDS: dict[str, tuple[str, ...]] = {
    "continuous_driving": ("driving_min", "break_min", "split_first_min", "split_second_min"),
    "daily_driving": ("limit_min", "extended_min", "extensions_per_week"),
    "weekly_driving": ("limit_min",),
    "fortnight_driving": ("limit_min",),
    "daily_rest": ("regular_min", "reduced_min", "split_first_min", "split_second_min", "within_min"),
    "reduced_daily_rests": ("max_between_weekly_rests",),
    "weekly_rest": ("regular_min", "reduced_min", "start_within_min", "compensate_within_weeks"),
}
WEEK_S = 7 * 24 * HOUR


@dataclass(slots=True)
class _Rules:
    cont: Rule
    daily: Rule
    weekly: Rule
    fortnight: Rule
    rest: Rule
    reduced: Rule
    wrest: Rule


@dataclass(slots=True)
class _Ongoing:
    """The daily period still open at ``now``."""

    start: int
    driving: int
    split_first: bool
    reduced_used: int
    weekly_end: int
    extensions_before: int  # extended days of its week before this period


def evaluate(pack: RulePack, segments: list[Segment], now: int, choices: dict[str, str]) -> HoursReport:
    r = _Rules(*(pack.rule(k) for k in KINDS))
    all_runs = runs(segments)
    first = segments[0].start if segments else now
    acc = Accumulator()
    report = HoursReport(pack.name, now)
    report.time_left.append(_continuous(r.cont, all_runs, now, acc))
    ongoing, rests, ext_used = _periods(pack, r, all_runs, first, now, acc)
    report.time_left.extend(_weekly_driving(pack, r, segments, now, acc))
    eu_weekly.fortnights(pack, r.wrest, rests, first, now, acc)
    eu_weekly.compensation(pack, r.wrest, r.rest, rests, now, acc)
    report.violations.extend(acc.result())
    ext_max = r.daily.count("extensions_per_week")
    limit = r.daily.seconds("extended" if ongoing.extensions_before < ext_max else "limit")
    report.time_left.append(_left(r.daily, ongoing.start, None, limit, ongoing.driving))
    required = _required_rest(r, ongoing.split_first, ongoing.reduced_used)
    window = r.rest.seconds("within")
    report.time_left.append(_left(r.rest, ongoing.start, ongoing.start + window, window - required,
                                  now - ongoing.start))
    within = r.wrest.seconds("start_within")
    report.time_left.append(_left(r.wrest, ongoing.weekly_end, ongoing.weekly_end + within, within,
                                  now - ongoing.weekly_end))
    now_week = calendar.week_start(now, pack.timezone)
    report.allowances.append(Allowance(r.daily.id, r.daily.cite, now_week, now_week + WEEK_S, ext_max,
                                       ext_used[now_week], max(0, ext_max - ext_used[now_week])))
    red_max = r.reduced.count("max_between_weekly_rests")
    report.allowances.append(Allowance(r.reduced.id, r.reduced.cite, ongoing.weekly_end, None, red_max,
                                       ongoing.reduced_used, max(0, red_max - ongoing.reduced_used)))
    return report


def _continuous(rule: Rule, all_runs: list[Run], now: int, acc: Accumulator) -> TimeLeft:
    """Art. 7: driving since the last 45-minute break (or 15 then 30 minutes)."""
    full, first, second, limit = (rule.seconds(n) for n in ("break", "split_first", "split_second", "driving"))
    since, start, pending = 0, now, False
    for run in all_runs:
        if run.rest:
            if run.seconds >= full or (pending and run.seconds >= second):
                since, start, pending = 0, run.end, False
            elif run.seconds >= first:
                pending = True  # a 30-minute rest first is only a first part: the order is 15, then 30
            continue
        for seg in run.segments:
            if seg.status != DutyStatus.DRIVING:
                continue
            if since == 0:
                start = seg.start
            excess = max(0, since + seg.seconds - limit) - max(0, since - limit)
            acc.add(rule.id, rule.cite, start, seg.end, seg.start + max(0, limit - since), excess,
                    f"more than {limit // 60} minutes of driving without a break")
            since += seg.seconds
    return _left(rule, start if since else now, None, limit, since)


def _required_rest(r: _Rules, split_first: bool, reduced_used: int) -> int:
    if split_first:
        return r.rest.seconds("split_second")
    if reduced_used < r.reduced.count("max_between_weekly_rests"):
        return r.rest.seconds("reduced")
    return r.rest.seconds("regular")


def _periods(pack: RulePack, r: _Rules, all_runs: list[Run], first: int, now: int,
             acc: Accumulator) -> tuple[_Ongoing, list[Run], dict[int, int]]:
    """Daily periods, daily and weekly rests (Art. 6(1), 8(2), 8(4), 8(6) start)."""
    reduced_min, regular_min = r.rest.seconds("reduced"), r.rest.seconds("regular")
    weekly_min, within = r.wrest.seconds("reduced"), r.rest.seconds("within")
    # Before the first event: a regular weekly rest (duty.py: timelines start rested).
    start = all_runs[0].end if all_runs and all_runs[0].rest else first
    weekly_end = start
    # Every rest that ended a daily period (daily or weekly), the assumed weekly rest before the timeline first.
    rests = [Run(True, start - r.wrest.seconds("regular"), start, ())]
    split_first, reduced_used, driving = False, 0, 0
    work: list[Segment] = []
    ext_used: dict[int, int] = defaultdict(int)
    for run in all_runs:
        if run.end <= start:
            continue
        if not run.rest or run.seconds < reduced_min:
            if run.rest and run.seconds >= r.rest.seconds("split_first"):
                split_first = True
            work.extend(run.segments)
            continue
        # A rest long enough to be a daily (or weekly) rest ends the period.
        _daily_driving(pack, r.daily, start, run.start, work, ext_used, acc)
        weekly = run.seconds >= weekly_min
        if weekly:
            _weekly_start(r.wrest, weekly_end, run.start, acc)
        window_end = start + within
        portion = max(0, min(run.end, window_end) - run.start)
        # Below 9 h (or the 9 h second part) no daily rest was taken at all; 9-11 h is a reduced one, counted
        # against Art. 8(4) below, so a fourth reduced rest is that rule's violation, not this one's.
        required = r.rest.seconds("split_second" if split_first else "reduced")
        if portion < required:
            acc.add(r.rest.id, r.rest.cite, start, window_end, window_end, required - portion,
                    f"less than {required // HOUR} h of rest within {within // HOUR} h of the previous rest")
        elif not split_first and portion < regular_min and not weekly and not (run.end >= now and now < window_end):
            # (a rest still running before the 24 h are over may yet become regular: it is counted later)
            reduced_used += 1
            if reduced_used > r.reduced.count("max_between_weekly_rests"):
                acc.add(r.reduced.id, r.reduced.cite, start, window_end, run.start, regular_min - portion,
                        f"reduced daily rest number {reduced_used} since the last weekly rest")
        if weekly:
            weekly_end, reduced_used = run.end, 0
        rests.append(run)
        start, split_first, work = run.end, False, []
    start = min(start, now)
    before = ext_used[calendar.week_start(start, pack.timezone)]
    _daily_driving(pack, r.daily, start, now, work, ext_used, acc)
    driving = sum(s.seconds for s in work if s.status == DutyStatus.DRIVING)
    # The rest the driver is in at ``now``, if any: it may still grow into the daily or weekly rest due.
    resting_since = all_runs[-1].start if all_runs and all_runs[-1].rest else now
    if now > start + within:
        # No rest long enough yet, 24 h after the period began: short by what the rest in progress lacks.
        portion = max(0, start + within - resting_since)
        required = r.rest.seconds("split_second" if split_first else "reduced")
        acc.add(r.rest.id, r.rest.cite, start, start + within, start + within, required - portion,
                f"no daily rest within {within // HOUR} h of the previous rest")
    deadline = weekly_end + r.wrest.seconds("start_within")
    if resting_since > deadline:
        _weekly_start(r.wrest, weekly_end, resting_since, acc)
    return _Ongoing(start, driving, split_first, reduced_used, weekly_end, before), rests, ext_used


def _daily_driving(pack: RulePack, rule: Rule, start: int, end: int, work: list[Segment],
                   ext_used: dict[int, int], acc: Accumulator) -> None:
    driving = [s for s in work if s.status == DutyStatus.DRIVING]
    total = sum(s.seconds for s in driving)
    base, extended = rule.seconds("limit"), rule.seconds("extended")
    if total <= base:
        return
    week = calendar.week_start(start, pack.timezone)
    ext_used[week] += 1
    limit = extended if ext_used[week] <= rule.count("extensions_per_week") else base
    done = 0
    for seg in driving:
        excess = max(0, done + seg.seconds - limit) - max(0, done - limit)
        acc.add(rule.id, rule.cite, start, end, seg.start + max(0, limit - done), excess,
                f"more than {limit // 60} minutes of daily driving"
                + ("" if limit == extended else f" (extension {ext_used[week]} of the week)"))
        done += seg.seconds


def _weekly_start(rule: Rule, weekly_end: int, started: int, acc: Accumulator) -> None:
    deadline = weekly_end + rule.seconds("start_within")
    if started > deadline:
        acc.add(rule.id, rule.cite, weekly_end, deadline, deadline, started - deadline,
                f"weekly rest started later than {rule.seconds('start_within') // HOUR} h after the previous one")


def _weekly_driving(pack: RulePack, r: _Rules, segments: list[Segment], now: int,
                    acc: Accumulator) -> list[TimeLeft]:
    """Art. 6(2) and 6(3): driving per week and per two consecutive weeks."""
    tz = pack.timezone
    per_week: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for seg in segments:
        if seg.status == DutyStatus.DRIVING:
            for a, b in calendar.pieces(seg.start, seg.end, lambda t: calendar.week_start(t, tz, back=-1)):
                per_week[calendar.week_start(a, tz)].append((a, b))
    flagged: dict[str, list[tuple[int, int]]] = {}
    weekly, fortnight = r.weekly.seconds("limit"), r.fortnight.seconds("limit")
    for week in sorted(per_week):
        _cumulative(r.weekly, week, calendar.week_start(week, tz, back=-1), per_week[week], weekly, acc, flagged)
        prev = calendar.week_start(week, tz, back=1)
        _cumulative(r.fortnight, prev, calendar.week_start(week, tz, back=-1), per_week.get(prev, []) + per_week[week],
                    fortnight, acc, flagged)
    this = calendar.week_start(now, tz)
    last = calendar.week_start(now, tz, back=1)
    this_used = sum(b - a for a, b in per_week.get(this, []))
    last_used = sum(b - a for a, b in per_week.get(last, []))
    end = calendar.week_start(now, tz, back=-1)
    return [_left(r.weekly, this, end, weekly, this_used),
            _left(r.fortnight, last, end, fortnight, this_used + last_used)]


def _cumulative(rule: Rule, start: int, end: int, pieces: list[tuple[int, int]], limit: int, acc: Accumulator,
                flagged: dict[str, list[tuple[int, int]]]) -> None:
    done = 0
    for a, b in sorted(pieces):
        over = a + max(0, limit - done)
        for x, y in claim(flagged, rule.id, over, b):
            acc.add(rule.id, rule.cite, start, end, x, y - x, f"more than {limit // HOUR} h of driving")
        done += b - a


def _left(rule: Rule, start: int, end: int | None, limit: int, used: int) -> TimeLeft:
    used = max(0, used)
    return TimeLeft(rule.id, rule.cite, start, end, limit / 60, used / 60, max(0, limit - used) / 60)

