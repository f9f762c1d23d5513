"""Risk ranking for review: a transparent score per vehicle, and what staff found when they looked.

The score is a plain weighted sum of what a technician would weigh, every part returned with its
count, weight, points and a sentence saying what it counted, so nobody has to trust a black box:

===================  =====================================================================  ======
part                 counts                                                                 weight
===================  =====================================================================  ======
red_lamp             active faults, not dismissed or resolved, with the red stop lamp lit   40
amber_lamp           the same with the amber warning lamp or the MIL (and no red)           15
other_faults         the same without a lamp (threshold faults, OBD codes without MIL)      5
recurring_faults     issues reopened after a repair, or seen ``RECURRING_MIN_OCCURRENCES``  10
                     times or more (dismissed ones excepted)
overdue_services     service tasks overdue (not snoozed)                                    20
due_soon_services    service tasks due soon (not snoozed)                                   5
usage_since_service  the largest share of any task's interval used since it was last done   10
                     (1.0 = due now), capped at ``USAGE_CAP``
===================  =====================================================================  ======

Staff outcomes (``confirmed``, ``dismissed``, ``rescheduled``) are stored with the score and parts as
they stood, so the ranking can later be judged against what the technicians found.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select

from cloud_sync.maintenance import faults, programs, schedule
from cloud_sync.maintenance.errors import Invalid, NotFound
from cloud_sync.maintenance.tables import risk_reviews
from cloud_sync.store.devices import get_device, list_devices

W_RED, W_AMBER, W_OTHER = 40.0, 15.0, 5.0
W_RECURRING = 10.0
W_OVERDUE, W_DUE_SOON = 20.0, 5.0
W_USAGE = 10.0
USAGE_CAP = 2.0
RECURRING_MIN_OCCURRENCES = 3
OUTCOMES = ("confirmed", "dismissed", "rescheduled")
MAX_REVIEWS_LISTED = 200


@dataclass(frozen=True, slots=True)
class RiskPart:
    name: str
    count: float
    weight: float
    points: float
    detail: str


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    device_id: str
    outcome: str
    note: str | None
    reschedule_to: float | None
    score: float
    parts: list[dict[str, Any]]
    reviewed_by: str | None
    reviewed_at: float


@dataclass(frozen=True, slots=True)
class VehicleRisk:
    device_id: str
    score: float
    parts: tuple[RiskPart, ...]
    last_review: Review | None


def _part(name: str, count: float, weight: float, detail: str) -> RiskPart:
    return RiskPart(name, count, weight, round(count * weight, 3), detail)


def _fault_parts(issues: list[faults.Issue]) -> list[RiskPart]:
    active = [i for i in issues if i.status in faults.PENDING and i.active]
    red = [i for i in active if i.severity == "red_stop"]
    amber = [i for i in active if i.severity in ("amber_warning", "mil")]
    other = [i for i in active if i not in red and i not in amber]
    recurring = [i for i in issues if i.status != faults.DISMISSED
                 and (i.reopen_count > 0 or i.occurrences >= RECURRING_MIN_OCCURRENCES)]

    def names(items: list[faults.Issue]) -> str:
        return ", ".join(f"#{i.id} {i.identity.key}" for i in items[:10]) or "none"

    return [
        _part("red_lamp", len(red), W_RED, f"active faults with the red stop lamp: {names(red)}"),
        _part("amber_lamp", len(amber), W_AMBER, f"active faults with the amber lamp or MIL: {names(amber)}"),
        _part("other_faults", len(other), W_OTHER, f"other active faults: {names(other)}"),
        _part("recurring_faults", len(recurring), W_RECURRING,
              f"reopened after a repair or seen {RECURRING_MIN_OCCURRENCES}+ times: {names(recurring)}"),
    ]


def _service_parts(services: list[programs.VehicleService]) -> list[RiskPart]:
    overdue = [s for s in services if s.status.state == schedule.OVERDUE]
    soon = [s for s in services if s.status.state == schedule.DUE_SOON]
    worst: tuple[float, str] = (0.0, "no service task with a reading yet")
    for s in services:
        for due in s.status.triggers:
            used = schedule.used_fraction(due)
            if used is not None and used > worst[0]:
                worst = (used, f"task {s.task.name!r} ({s.program}): {used:.0%} of its {due.every:g} {due.unit} "
                               f"{due.meter} interval used")
    usage = min(worst[0], USAGE_CAP)

    def names(items: list[programs.VehicleService]) -> str:
        return ", ".join(f"{s.task.name!r}" for s in items[:10]) or "none"

    return [
        _part("overdue_services", len(overdue), W_OVERDUE, f"overdue: {names(overdue)}"),
        _part("due_soon_services", len(soon), W_DUE_SOON, f"due soon: {names(soon)}"),
        _part("usage_since_service", round(usage, 4), W_USAGE, worst[1]),
    ]


def _review(r: Any) -> Review:
    return Review(r.id, r.device_id, r.outcome, r.note, r.reschedule_to, r.score, r.parts, r.reviewed_by,
                  r.reviewed_at)


def reviews(conn: Connection, device_id: str, limit: int = MAX_REVIEWS_LISTED) -> list[Review]:
    c = risk_reviews.c
    rows = conn.execute(select(risk_reviews).where(c.device_id == device_id)
                        .order_by(c.reviewed_at.desc(), c.id.desc()).limit(min(limit, MAX_REVIEWS_LISTED))).all()
    return [_review(r) for r in rows]


def _latest_reviews(conn: Connection, device_ids: Collection[str]) -> dict[str, Review]:
    c = risk_reviews.c
    # Reviews are appended with the cloud's clock, so the highest id per vehicle is its latest.
    newest = select(func.max(c.id)).where(c.device_id.in_(sorted(device_ids))).group_by(c.device_id)
    return {r.device_id: _review(r) for r in conn.execute(select(risk_reviews).where(c.id.in_(newest)))}


def ranking(conn: Connection, now: float, window_days: float, device_ids: Collection[str] | None = None
            ) -> list[VehicleRisk]:
    """Unrevoked vehicles (all, or those given), highest score first (ties by id); a handful of queries
    whatever the fleet size."""
    ids = [d.id for d in list_devices(conn) if d.revoked_at is None and (device_ids is None or d.id in device_ids)]
    if not ids:
        return []
    issues = faults.scored_issues(conn, ids)
    services: dict[str, list[programs.VehicleService]] = {}
    for s in programs.vehicle_services(conn, None, now, window_days, device_ids=ids):
        services.setdefault(s.device_id, []).append(s)
    last = _latest_reviews(conn, ids)
    out = []
    for device_id in ids:
        parts = tuple(_fault_parts(issues.get(device_id, [])) + _service_parts(services.get(device_id, [])))
        out.append(VehicleRisk(device_id, round(sum(p.points for p in parts), 3), parts, last.get(device_id)))
    return sorted(out, key=lambda v: (-v.score, v.device_id))


def vehicle_risk(conn: Connection, device_id: str, now: float, window_days: float) -> VehicleRisk:
    found = ranking(conn, now, window_days, [device_id])
    if not found:
        raise NotFound(f"no vehicle {device_id!r} (or it is revoked)")
    return found[0]


def add_review(conn: Connection, device_id: str, outcome: str, note: str | None, reschedule_to: float | None,
               by: str | None, now: float, window_days: float) -> Review:
    """Record what staff concluded about a vehicle's ranking, with the score as it stands now."""
    if get_device(conn, device_id) is None:
        raise NotFound(f"no vehicle {device_id!r}")
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome {outcome!r} is not one of {OUTCOMES}")
    if (outcome == "rescheduled") != (reschedule_to is not None):
        raise Invalid("reschedule_to is required for, and only for, a rescheduled outcome")
    if reschedule_to is not None and not math.isfinite(reschedule_to):
        raise Invalid("reschedule_to is not a time")
    risk = vehicle_risk(conn, device_id, now, window_days)
    new_id = conn.execute(insert(risk_reviews).values(
        device_id=device_id, outcome=outcome, note=note, reschedule_to=reschedule_to, score=risk.score,
        parts=[asdict(p) for p in risk.parts], reviewed_by=by, reviewed_at=now).returning(risk_reviews.c.id)
    ).scalar_one()
    row = conn.execute(select(risk_reviews).where(risk_reviews.c.id == new_id)).one()
    return _review(row)
