"""EU weekly rest over several weeks (Regulation (EC) 561/2006 Art. 8(6), (7), (9)): used by ``eu_561``.

- In any two consecutive weeks, two weekly rests, at least one of them regular (45 h); a rest overlapping
  the fortnight counts for it (Art. 8(9): a rest falling in two weeks may be counted in either).
- A reduced weekly rest (24 h to 45 h) is compensated by an equivalent rest taken en bloc before the end of
  the third week following the week in question (Art. 8(6) third subparagraph), attached to another rest of
  at least 9 hours (Art. 8(7)): here, the part of a later daily rest beyond the regular 11 h, or of a weekly
  rest beyond 45 h, taken in one block and used once. The reduced rest's week is the week it starts in.
"""

from __future__ import annotations

from cloud_sync.compliance import calendar
from cloud_sync.compliance.duty import Run
from cloud_sync.compliance.report import Accumulator
from cloud_sync.compliance.rulepack import Rule, RulePack


def fortnights(pack: RulePack, rule: Rule, rests: list[Run], first: int, now: int, acc: Accumulator) -> None:
    """Art. 8(6) first subparagraph, for every two consecutive weeks that ended by ``now``."""
    tz = pack.timezone
    regular, reduced = rule.seconds("regular"), rule.seconds("reduced")
    weekly = [run for run in rests if run.seconds >= reduced]
    week = calendar.week_start(first, tz)
    while True:
        end = calendar.week_start(week, tz, back=-2)
        if end > now:
            return
        inside = sorted((run.seconds for run in weekly if run.start < end and run.end > week), reverse=True)
        longest, second = [*inside, 0, 0][:2]
        short = max(0, regular - longest) + max(0, reduced - second)
        acc.add(rule.id, rule.cite, week, end, end, short,
                "two consecutive weeks without a regular and a second weekly rest")
        week = calendar.week_start(week, tz, back=-1)


def compensation(pack: RulePack, rule: Rule, daily: Rule, rests: list[Run], now: int, acc: Accumulator) -> None:
    """Art. 8(6) third subparagraph and 8(7): each reduction made up en bloc within three weeks."""
    regular, reduced = rule.seconds("regular"), rule.seconds("reduced")
    daily_regular = daily.seconds("regular")
    used: set[int] = set()
    for k, run in enumerate(rests[1:], start=1):  # rests[0] is the assumed regular weekly rest
        if not reduced <= run.seconds < regular:
            continue
        deficit = regular - run.seconds
        deadline = calendar.week_start(run.start, pack.timezone, back=-(1 + rule.count("compensate_within_weeks")))
        found = None
        for j in range(k + 1, len(rests)):
            later = rests[j]
            if later.end > deadline:
                break
            normal = regular if later.seconds >= reduced else daily_regular
            if j not in used and later.seconds - normal >= deficit:
                found = j
                break
        if found is not None:
            used.add(found)
        elif now >= deadline:
            acc.add(rule.id, rule.cite, run.start, deadline, deadline, deficit,
                    f"reduced weekly rest of {run.seconds / 3600:g} h not compensated within "
                    f"{rule.count('compensate_within_weeks')} weeks after its own")
