"""Scenario expectations: what the agent (or the cloud) must end up with, and their parser.

An ``[[expect]]`` table counts the records of one ``kind`` whose payload satisfies every ``where``
condition (a value, or ``{ min, max }``) and passes when the count is within ``count`` or ``min``/``max``
(default: at least one). ``kind = "cloud_health"`` is one record made from the cloud API's data-health
answer for the device (``hil.cloud.Cloud.health``), so the same conditions check gaps, drops and counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hil.scenario_fields import ScenarioError, non_negative, only, signed

#: Record kinds an expectation may count: the detectors' events and the once-per-vehicle records.
EVENT_KINDS = (
    "idle_started", "idle_ended", "dtc_appeared", "dtc_cleared", "fault_raised", "fault_cleared",
    "geofence_entered", "geofence_exited", "trip_started", "trip_ended", "meter", "vehicle_id", "dtc_status",
)
#: An expectation on the device's data health in the cloud (``GET /v1/vehicles/{device}/health``).
CLOUD_HEALTH = "cloud_health"


@dataclass(frozen=True, slots=True)
class Match:
    """A payload condition: equal to ``equals``, or within ``[lo, hi]`` (either bound optional)."""

    equals: object = None
    lo: float | None = None
    hi: float | None = None

    def test(self, value: object) -> bool:
        if self.lo is None and self.hi is None:
            return value == self.equals
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def describe(self) -> str:
        if self.lo is None and self.hi is None:
            return f"== {self.equals!r}"
        return f"in [{'-inf' if self.lo is None else self.lo}, {'inf' if self.hi is None else self.hi}]"


@dataclass(frozen=True, slots=True)
class Expectation:
    index: int
    kind: str
    min_count: int
    max_count: int | None
    where: Mapping[str, Match] = field(default_factory=dict)

    def describe(self) -> str:
        if self.max_count == self.min_count:
            n = f"exactly {self.min_count}"
        elif self.max_count is None:
            n = f"at least {self.min_count}"
        else:
            n = f"{self.min_count} to {self.max_count}"
        cond = ", ".join(f"{k} {m.describe()}" for k, m in self.where.items())
        return f"{n} {self.kind}" + (f" where {cond}" if cond else "")


def parse_expectation(i: int, raw: object) -> Expectation:
    where = f"expect[{i}]"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a table")
    only(raw, {"kind", "count", "min", "max", "where"}, where)
    kind = raw.get("kind")
    if kind not in (*EVENT_KINDS, CLOUD_HEALTH):
        raise ScenarioError(f"{where}.kind: must be one of {', '.join((*EVENT_KINDS, CLOUD_HEALTH))}, got {kind!r}")
    if "count" in raw and ("min" in raw or "max" in raw):
        raise ScenarioError(f"{where}.count: give count, or min and/or max, not both")
    hi: int | None
    if "count" in raw:
        lo = hi = int(non_negative(raw, "count", where))
    elif "min" in raw or "max" in raw:
        lo = int(non_negative(raw, "min", where, default=0))
        hi = int(non_negative(raw, "max", where)) if "max" in raw else None
        if hi is not None and hi < lo:
            raise ScenarioError(f"{where}.max: must be >= min ({lo}), got {hi}")
    else:
        lo, hi = 1, None  # "it happened"
    conditions: dict[str, Match] = {}
    cond = raw.get("where", {})
    if not isinstance(cond, dict):
        raise ScenarioError(f"{where}.where: must be a table of payload field -> value or {{min, max}}")
    for key, value in cond.items():
        if isinstance(value, dict):
            only(value, {"min", "max"}, f"{where}.where.{key}")
            if not value:
                raise ScenarioError(f"{where}.where.{key}: give min and/or max")
            mn = signed(value, "min", f"{where}.where.{key}")
            mx = signed(value, "max", f"{where}.where.{key}")
            if mn is not None and mx is not None and mx < mn:
                raise ScenarioError(f"{where}.where.{key}.max: must be >= min")
            conditions[key] = Match(lo=mn, hi=mx)
        else:
            conditions[key] = Match(equals=value)
    return Expectation(i, kind, lo, hi, conditions)
