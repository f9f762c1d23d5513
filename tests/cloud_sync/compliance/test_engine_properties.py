"""Properties every rule pack keeps on any duty timeline (hypothesis): windows hold their breach, time left stays
within the limit, and no driving limit reports more minutes than were driven."""

from __future__ import annotations

import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.compliance import rulepack
from cloud_sync.compliance.duty import CODES, DutyStatus, parse_timeline, timeline

PACKS = {name: rulepack.load(name) for name in rulepack.available()}
DRIVING_RULES = {"driving_11h", "window_14h", "break_30min", "cycle_70_8", "cycle_60_7", "continuous_4h30",
                 "daily_driving", "weekly_driving", "fortnight_driving"}
START = int(datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC).timestamp())  # a DST change in Chicago follows

segment = st.tuples(st.sampled_from(sorted(CODES)), st.integers(1, 40 * 60))
choice = st.sampled_from([("us_fmcsa_property", {}), ("us_fmcsa_property", {"cycle": "cycle_60_7"}),
                          ("eu_561_2006", {})])


@settings(max_examples=300, deadline=None)
@given(st.lists(segment, min_size=1, max_size=60), choice, st.integers(0, 36 * 60))
def test_reports_are_consistent(items, picked, extra_min):
    name, choices = picked
    texts = [f"{code} {m // 60}:{m % 60:02d}" for code, m in items]
    events = parse_timeline(texts, START)
    now = events[-1].at + extra_min * 60  # sometimes evaluated during the trailing rest
    segs = timeline(events, now)
    report = PACKS[name].evaluate(segs, now, choices)
    driven = sum(s.seconds for s in segs if s.status == DutyStatus.DRIVING) / 60
    for t in report.time_left:
        assert 0 <= t.left_minutes <= t.limit_minutes and t.used_minutes >= 0, t
    per_rule: dict[str, float] = {}
    for v in report.violations:
        assert v.minutes > 0 and v.start <= v.at <= now, v
        per_rule[v.rule] = per_rule.get(v.rule, 0) + v.minutes
    for rule, minutes in per_rule.items():
        if rule in DRIVING_RULES:
            assert minutes <= driven + 1e-9, (rule, minutes, driven)
    assert report.driving_left_minutes >= 0
