"""Rule packs load strictly, choices are checked, and the duty timeline merges and orders events."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_sync.compliance import rulepack
from cloud_sync.compliance.duty import DutyEvent, DutyStatus, parse_hm, parse_timeline, runs, timeline
from edge_agent.errors import ConfigError

US = rulepack.RULES_DIR / "us_fmcsa_property.toml"


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = US.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pack.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ("limit_min = 660", "limit_mins = 660", "lacks ['limit_min']"),
    ("limit_min = 660", "limit_min = 660.5", "whole number of minutes"),
    ('kind = "restart"', 'kind = "restrat"', "has kind 'restrat'"),
    ('engine = "us_property"', 'engine = "us"', "unknown engine"),
    ('timezone = "America/Chicago"', 'timezone = "America/Chicag"', "unknown time zone"),
    ('cite = "49 CFR 395.3(c)"', 'cite = ""', "cites nothing"),
    ('cycle = ["cycle_70_8", "cycle_60_7"]', 'cycle = ["cycle_70_8", "cycle_60"]', "unknown rules"),
])
def test_bad_pack_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        rulepack.load_file(_broken(tmp_path, old, new))


def test_pack_missing_a_kind_is_refused(tmp_path: Path) -> None:
    text = US.read_text(encoding="utf-8")
    cut = text.index("[rules.restart_34h]")
    path = tmp_path / "pack.toml"
    path.write_text(text[:cut] + text[text.index("[rules.sleeper_split]"):], encoding="utf-8")
    with pytest.raises(ConfigError, match=r"needs rules of kinds \['restart'\]"):
        rulepack.load_file(path)


def test_unknown_pack_and_choice() -> None:
    with pytest.raises(ConfigError, match="no rule pack"):
        rulepack.load("us_fmcsa_passenger")
    pack = rulepack.load("us_fmcsa_property")
    with pytest.raises(ConfigError, match="one of"):
        pack.evaluate([], 0, {"cycle": "cycle_80_9"})
    with pytest.raises(ConfigError, match="no choice"):
        pack.evaluate([], 0, {"cylce": "cycle_60_7"})


def test_every_rule_cites_its_paragraph() -> None:
    for name in rulepack.available():
        pack = rulepack.load(name)
        assert pack.assumptions, name
        for rule in pack.rules.values():
            assert ("CFR" in rule.cite) or ("561/2006" in rule.cite), rule


def test_timeline_orders_merges_and_lets_a_correction_win() -> None:
    events = [DutyEvent(100, DutyStatus.DRIVING), DutyEvent(0, DutyStatus.OFF), DutyEvent(50, DutyStatus.OFF),
              DutyEvent(100, DutyStatus.ON_DUTY), DutyEvent(500, DutyStatus.DRIVING)]
    segs = timeline(events, 400)
    assert [(s.status, s.start, s.end) for s in segs] == [(DutyStatus.OFF, 0, 100), (DutyStatus.ON_DUTY, 100, 400)]
    assert [r.rest for r in runs(segs)] == [True, False]


def test_vector_notation() -> None:
    assert parse_hm("10:30") == 37800 and parse_hm("-24:00") == -86400
    for bad in ("10", "1:5", "1:60", "x:00"):
        with pytest.raises(ValueError):
            parse_hm(bad)
    with pytest.raises(ValueError, match="unknown duty status"):
        parse_timeline(["DRIVE 1:00"], 0)
    events = parse_timeline(["SB 7:00", "D 1:00"], 1000)
    assert [(e.at, e.status) for e in events] == [(1000, DutyStatus.SLEEPER), (26200, DutyStatus.DRIVING),
                                                  (29800, DutyStatus.OFF)]
