"""Published test vectors of a rule pack: ``rules/<pack>.vectors.toml``, duty timelines with the violations
and time left the regulation gives, each reasoned from the cited text.

A vector::

    [[vectors]]
    id = "us-11h-exactly"
    cite = "49 CFR 395.3(a)(3)(i)"
    about = "11:00 of driving is allowed"
    timeline = ["D 5:00", "ON 0:30", "D 6:00"]     # status code (OFF SB D ON) and H:MM, from ``start``
    now = "+13:00"                                 # optional; default: the end of the timeline
    choices = { cycle = "cycle_60_7" }             # optional
    violations = [{ rule = "driving_11h", minutes = 1, start = "+0:00", end = "+11:31" }]  # exactly these
    time_left = { driving_11h = 0, window_14h = 150 }                                      # these at least

``start`` (file header, a vector may override) is local wall time in the pack's time zone. Violations must
match exactly as a set of (rule, minutes), and window ``start``/``end``/``at`` where the vector gives them.
"""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass, field
from typing import Any

from cloud_sync.compliance.duty import DutyEvent, parse_hm, parse_timeline, timeline
from cloud_sync.compliance.report import HoursReport
from cloud_sync.compliance.rulepack import RULES_DIR, RulePack

#: Minutes compare to this tolerance (they are seconds / 60, so exact vectors match to float rounding).
TOLERANCE_MIN = 1e-6


@dataclass(frozen=True, slots=True)
class Vector:
    id: str
    about: str
    cite: str
    start: int
    events: list[DutyEvent]
    now: int
    choices: dict[str, str]
    violations: list[dict[str, Any]]
    time_left: dict[str, float]
    allowances: dict[str, int] = field(default_factory=dict)


def load(pack: RulePack) -> list[Vector]:
    raw = tomllib.loads((RULES_DIR / f"{pack.name}.vectors.toml").read_text(encoding="utf-8"))
    default_start = raw["start"]
    out = []
    for v in raw["vectors"]:
        local = datetime.datetime.fromisoformat(v.get("start", default_start)).replace(tzinfo=pack.timezone)
        start = int(local.timestamp())
        events = parse_timeline(v["timeline"], start)
        end = events[-1].at
        now = start + parse_hm(v["now"]) if "now" in v else end
        out.append(Vector(v["id"], v.get("about", ""), v["cite"], start, events, now, dict(v.get("choices", {})),
                          list(v.get("violations", [])), dict(v.get("time_left", {})), dict(v.get("allowances", {}))))
    ids = [v.id for v in out]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{pack.name}.vectors.toml repeats vector ids")
    return out


def run(pack: RulePack, vector: Vector) -> HoursReport:
    return pack.evaluate(timeline(vector.events, vector.now), vector.now, vector.choices)


def mismatches(pack: RulePack, vector: Vector) -> list[str]:
    """What the engine said that the vector does not (empty: the vector passes)."""
    report = run(pack, vector)
    problems = []
    got = sorted(report.violations, key=lambda x: (x.rule, x.at))
    want = sorted(vector.violations, key=lambda x: (x["rule"], x.get("at", "")))
    got_keys = sorted((x.rule, round(x.minutes, 6)) for x in got)
    want_keys = sorted((w["rule"], round(float(w["minutes"]), 6)) for w in want)
    if got_keys != want_keys:
        problems.append(f"violations {got_keys} != expected {want_keys}")
    else:
        for w in want:
            matches = [g for g in got if g.rule == w["rule"] and abs(g.minutes - w["minutes"]) < TOLERANCE_MIN]
            for key in ("start", "end", "at"):
                if key in w and not any(getattr(g, key) == vector.start + parse_hm(w[key]) for g in matches):
                    problems.append(f"{w['rule']}: no violation with {key} {w[key]} "
                                    f"(got {[_rel(vector, getattr(g, key)) for g in matches]})")
    for rule, minutes in vector.time_left.items():
        try:
            left = report.left(rule).left_minutes
        except KeyError:
            problems.append(f"no time left reported for {rule}")
            continue
        if abs(left - minutes) > TOLERANCE_MIN:
            problems.append(f"time left {rule}: {left} min, expected {minutes}")
    for rule, count in vector.allowances.items():
        found = [a for a in report.allowances if a.rule == rule]
        if not found or found[0].left != count:
            problems.append(f"allowance {rule}: {[a.left for a in found]}, expected {count}")
    return problems


def _rel(vector: Vector, t: int) -> str:
    d = t - vector.start
    sign = "-" if d < 0 else "+"
    return f"{sign}{abs(d) // 3600}:{abs(d) % 3600 // 60:02d}"
