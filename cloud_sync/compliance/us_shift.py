"""US 11-hour and 14-hour limits with sleeper-berth pairs (49 CFR 395.3(a)(2), (a)(3)(i), 395.1(g)(1)(ii)),
judged the way 395.1(g)(1)(ii)(B)-(D) words them, in hindsight (used by ``us_hos``).

- Rests that count are 10 consecutive hours off duty (a reset, 395.3(a)(1)) and paired split rests: a rest of
  at least 7 consecutive hours in the berth with a neighbouring rest of at least 2 hours, together at least 10
  hours, in either order (395.1(g)(1)(ii)(A)). Any other rest is part of the work around it.
- Between counting rests lie work periods. Around each paired rest, the period before and the period after
  together hold at most 11 hours of driving and no driving after their 14th hour, the rest itself not counted
  (395.1(g)(1)(ii)(B), (C)); a period between two resets alone holds 11 and 14 hours. A pair completed later
  can therefore cure driving that looked late at the time; until the pair is complete it does not count.
- The 10-hour rest that ends a stretch may be the second period of a pair ("at least 2 consecutive hours ... off
  duty", 395.1(g)(1)(ii)(A)): a 7-hour sleeper period before it then stays out of the 14 hours around it. It
  still restarts everything after it; the 10-hour rest that began the stretch is not paired back.
- Which rests pair: where several pairings are possible, the one with the fewest violations, the worst first
  (out-of-service over 3 hours, then violations, then nominal under 15 minutes), then the one leaving the most
  time to drive (FMCSA, "Frequently Asked Questions Relating to 2020 Changes to Hours of Service
  Regulations", Question 4, issued 19 November 2020). Rests between two resets are tried in every valid
  pairing up to ``MAX_PAIRING_CANDIDATES``; beyond that, neighbours pair in order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from cloud_sync.compliance.duty import HOUR, DutyStatus, Run, Segment
from cloud_sync.compliance.report import Accumulator, TimeLeft, claim
from cloud_sync.compliance.rulepack import Rule

#: Split rests between two resets tried in every pairing (2**n pairings, each a pass over that stretch only).
MAX_PAIRING_CANDIDATES = 10
#: FMCSA FAQ (2020) Question 4: "nominal" is under 15 minutes; out-of-service "more than 3 hours".
NOMINAL_S = 15 * 60
OUT_OF_SERVICE_S = 3 * HOUR


@dataclass(frozen=True, slots=True)
class ShiftRules:
    reset: Rule
    driving: Rule
    window: Rule
    split: Rule


@dataclass(slots=True)
class Period:
    """Work between two counting rests (with the rests that do not count inside it)."""

    start: int
    end: int
    segments: list[Segment] = field(default_factory=list)

    def driving(self) -> int:
        return sum(s.seconds for s in self.segments if s.status == DutyStatus.DRIVING)


@dataclass(slots=True)
class Cut:
    """A counting rest between two periods; ``split`` when it counts as part of a sleeper-berth pair."""

    run: Run
    split: bool


def _resets(r: ShiftRules, all_runs: list[Run]) -> list[bool]:
    # Before the first event the driver rested (duty.py): an opening rest is a reset.
    reset = r.reset.seconds("rest")
    return [run.rest and (i == 0 or run.seconds >= reset) for i, run in enumerate(all_runs)]


def split_part(split: Rule, run: Run) -> bool:
    return run.seconds >= split.seconds("other") or run.longest(DutyStatus.SLEEPER) >= split.seconds("sleeper")


def pair(split: Rule, a: Run, b: Run) -> bool:
    berth, other = split.seconds("sleeper"), split.seconds("other")
    a_sb, b_sb = a.longest(DutyStatus.SLEEPER), b.longest(DutyStatus.SLEEPER)
    shapes = (a_sb >= berth and b.seconds >= other) or (b_sb >= berth and a.seconds >= other)
    return shapes and a.seconds + b.seconds >= split.seconds("total")


def _valid(r: ShiftRules, all_runs: list[Run], chosen: tuple[int, ...], closing: int | None) -> bool:
    """Every chosen rest pairs with its neighbour among the chosen (the rests left out are work); the last one
    may pair with the 10-hour rest that closes the stretch (``closing``)."""
    for k, i in enumerate(chosen):
        before = k > 0 and pair(r.split, all_runs[chosen[k - 1]], all_runs[i])
        if k + 1 < len(chosen):
            after = pair(r.split, all_runs[i], all_runs[chosen[k + 1]])
        else:
            after = closing is not None and pair(r.split, all_runs[i], all_runs[closing])
        if not (before or after):
            return False
    return True


def choose_pairs(r: ShiftRules, all_runs: list[Run], now: int) -> set[int]:
    """Indices (in ``all_runs``) of the rests that count as paired split rests."""
    is_reset = _resets(r, all_runs)
    chosen: set[int] = set()
    lo = 0
    for hi in [*[i for i, x in enumerate(is_reset) if x and i > 0], len(all_runs)]:
        group = [i for i in range(lo, hi) if all_runs[i].rest and not is_reset[i] and split_part(r.split, all_runs[i])]
        closing = hi if hi < len(all_runs) else None
        if len(group) >= (1 if closing is not None else 2):
            chosen |= _best(r, all_runs, lo, hi, group, closing, now)
        lo = hi
    return chosen


def _best(r: ShiftRules, all_runs: list[Run], lo: int, hi: int, group: list[int], closing: int | None,
          now: int) -> set[int]:
    if len(group) > MAX_PAIRING_CANDIDATES:
        greedy: set[int] = set()
        for a, b in itertools.pairwise(group):
            if pair(r.split, all_runs[a], all_runs[b]):
                greedy.update((a, b))
        if closing is not None and pair(r.split, all_runs[group[-1]], all_runs[closing]):
            greedy.add(group[-1])
        return greedy
    sub = all_runs[lo:hi + 1] if hi < len(all_runs) else all_runs[lo:]
    last = hi >= len(all_runs)
    best: tuple[tuple[float, ...], set[int]] | None = None
    for n in range(len(group), 0, -1):
        for chosen in itertools.combinations(group, n):
            if not _valid(r, all_runs, chosen, closing):
                continue
            local = {i - lo for i in chosen}
            periods_, cuts = periods(r, sub, sub[0].start, now, local)
            acc = Accumulator()
            check(r, periods_, cuts, acc, {})
            found = acc.result()
            key: tuple[float, ...] = (
                sum(v.minutes * 60 > OUT_OF_SERVICE_S for v in found),
                sum(NOMINAL_S <= v.minutes * 60 <= OUT_OF_SERVICE_S for v in found),
                sum(v.minutes * 60 < NOMINAL_S for v in found),
                sum(v.minutes for v in found),
            )
            if last:
                drive, window = time_left(r, periods_, cuts, now)
                key += (-drive.left_minutes, -window.left_minutes)
            if best is None or key < best[0]:
                best = (key, set(chosen))
    return set() if best is None else best[1]


def periods(r: ShiftRules, all_runs: list[Run], first: int, now: int,
            paired: set[int]) -> tuple[list[Period], list[Cut]]:
    """Periods and the counting rests between them (``len(cuts) == len(periods) - 1``)."""
    is_reset = _resets(r, all_runs)
    out = [Period(first, first)]
    cuts: list[Cut] = []
    for i, run in enumerate(all_runs):
        if is_reset[i] or i in paired:
            cuts.append(Cut(run, split=i in paired))
            out.append(Period(run.end, run.end))
        else:
            out[-1].segments.extend(run.segments)
            out[-1].end = run.end
    if not all_runs:
        out[-1].end = now
    return out, cuts


def check(r: ShiftRules, periods_: list[Period], cuts: list[Cut], acc: Accumulator,
          flagged: dict[str, list[tuple[int, int]]]) -> None:
    """The spans each period is judged in: with its neighbour around each paired rest, alone between resets."""
    for k, period in enumerate(periods_):
        left = cuts[k - 1] if k > 0 else None
        right = cuts[k] if k < len(cuts) else None
        if left is not None and left.split:
            _check_span(r, acc, flagged, [periods_[k - 1], period], left.run.seconds)
        if not (left is not None and left.split) and not (right is not None and right.split):
            _check_span(r, acc, flagged, [period], 0)


def _check_span(r: ShiftRules, acc: Accumulator, flagged: dict[str, list[tuple[int, int]]],
                span: list[Period], excluded: int) -> None:
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


def time_left(r: ShiftRules, periods_: list[Period], cuts: list[Cut], now: int) -> tuple[TimeLeft, TimeLeft]:
    drive_limit, window = r.driving.seconds("limit"), r.window.seconds("limit")
    last = periods_[-1]
    if cuts and cuts[-1].split:
        prev = periods_[-2]
        start, excluded = prev.start, cuts[-1].run.seconds
        used_drive = prev.driving() + last.driving()
        used_window = (prev.end - prev.start) + (now - last.start)
    elif not last.segments:
        start, excluded, used_drive, used_window = now, 0, 0, 0
    else:
        start, excluded = last.start, 0
        used_drive, used_window = last.driving(), now - last.start
    return (left(r.driving, start, None, drive_limit, used_drive),
            left(r.window, start, start + window + excluded, window, used_window))


def left(rule: Rule, start: int, end: int | None, limit: int, used: int) -> TimeLeft:
    used = max(0, used)
    return TimeLeft(rule.id, rule.cite, start, end, limit / 60, used / 60, max(0, limit - used) / 60)
