"""Driver vehicle inspection reports (49 CFR 396.11, 396.13) and the vehicle's safety status.

The flow the regulation sets:

1. A driver inspects the vehicle (pre-trip, 396.13(a); post-trip, 396.11(a)(1)) covering at least the eleven
   parts of 396.11(a)(1)(i)-(xi), lists every defect found (396.11(a)(2)(i)), and signs (396.11(a)(2)(ii)).
   A report without defects is kept too, though property carriers need not make one (396.11(a)(2)(i)).
2. A defect likely to affect safe operation makes the vehicle not safe to operate: it must be repaired before
   the vehicle is driven again (396.11(a)(3)(i)), and the carrier certifies on the report that it was repaired
   or that repair is unnecessary (396.11(a)(3)(ii)).
3. The next driver reviews the report and, since it lists defects, signs that the certification is there
   (396.13(b), (c)). Only then is the vehicle released.

A vehicle that moves, by its own telemetry, after an unsafe report and before its certification is flagged:
positions faster than ``MOVING_SPEED_MPS`` or a trip the vehicle itself started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from cloud_sync.compliance.alerts import inspection_failed
from cloud_sync.compliance.drivers import require_driver
from cloud_sync.compliance.errors import Conflict, Invalid, NotFound
from cloud_sync.compliance.tables import dvir_reports
from cloud_sync.store import schema
from cloud_sync.store.devices import get_device

#: 49 CFR 396.11(a)(1)(i)-(xi): the parts and accessories a report covers at least, in the paragraph's order.
REQUIRED_ITEMS: dict[str, str] = {
    "service_brakes": "Service brakes including trailer brake connections (396.11(a)(1)(i))",
    "parking_brake": "Parking brake (396.11(a)(1)(ii))",
    "steering": "Steering mechanism (396.11(a)(1)(iii))",
    "lighting": "Lighting devices and reflectors (396.11(a)(1)(iv))",
    "tires": "Tires (396.11(a)(1)(v))",
    "horn": "Horn (396.11(a)(1)(vi))",
    "windshield_wipers": "Windshield wipers (396.11(a)(1)(vii))",
    "mirrors": "Rear vision mirrors (396.11(a)(1)(viii))",
    "coupling_devices": "Coupling devices (396.11(a)(1)(ix))",
    "wheels_and_rims": "Wheels and rims (396.11(a)(1)(x))",
    "emergency_equipment": "Emergency equipment (396.11(a)(1)(xi))",
}
#: A defect may concern a part outside the list (396.11(a)(2)(i): "any defect or deficiency").
OTHER_ITEM = "other"
ITEM_STATES = ("ok", "defect")
KINDS = ("pre_trip", "post_trip")
CERTIFICATIONS = ("repaired", "repair_unnecessary")
#: Faster than this (m/s, about 7 km/h) is moving: a parked vehicle's GNSS speed jitters well below it
#: (NMEA speed noise is a few tenths of a m/s for a standing receiver).
MOVING_SPEED_MPS = 2.0
MAX_DEFECTS = 100
MAX_TEXT = 2000


@dataclass(frozen=True, slots=True)
class Defect:
    item: str
    description: str
    affects_safety: bool


@dataclass(frozen=True, slots=True)
class ReportDraft:
    kind: str
    driver_id: str
    inspected_at: float
    items: dict[str, str]
    defects: list[Defect]
    driver_signature: str
    odometer_km: float | None = None
    location: str | None = None
    remarks: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    device_id: str
    draft: ReportDraft
    unsafe: bool
    certified_at: float | None
    certified_by: str | None
    mechanic: str | None
    certification: str | None
    certification_note: str | None
    reviewed_at: float | None
    reviewed_by: str | None
    review_signature: str | None
    recorded_at: float

    @property
    def released(self) -> bool:
        """Defects with a certification and the next driver's signature, or nothing unsafe at all."""
        return not self.unsafe or (self.certified_at is not None and self.reviewed_at is not None)


@dataclass(slots=True)
class SafetyStatus:
    device_id: str
    safe_to_operate: bool
    waiting_for: str | None  # "certification" | "driver_review" | None
    open_reports: list[Report] = field(default_factory=list)
    moved_while_unsafe: list[dict[str, Any]] = field(default_factory=list)


def validate(draft: ReportDraft) -> None:
    if draft.kind not in KINDS:
        raise Invalid(f"kind must be one of {KINDS}, not {draft.kind!r}")
    missing = [k for k in REQUIRED_ITEMS if k not in draft.items]
    if missing:
        raise Invalid(f"the report does not cover {missing} (49 CFR 396.11(a)(1) names them all)")
    unknown = sorted(set(draft.items) - set(REQUIRED_ITEMS) - {OTHER_ITEM})
    if unknown:
        raise Invalid(f"unknown inspection items {unknown}; known: {[*REQUIRED_ITEMS, OTHER_ITEM]}")
    bad = {k: v for k, v in draft.items.items() if v not in ITEM_STATES}
    if bad:
        raise Invalid(f"item states are {ITEM_STATES}, got {bad}")
    if len(draft.defects) > MAX_DEFECTS:
        raise Invalid(f"at most {MAX_DEFECTS} defects per report")
    for d in draft.defects:
        if d.item not in REQUIRED_ITEMS and d.item != OTHER_ITEM:
            raise Invalid(f"defect on unknown item {d.item!r}")
        if draft.items.get(d.item, "defect") == "ok":
            raise Invalid(f"a defect is listed on {d.item!r}, which the report marks ok")
        if not d.description.strip():
            raise Invalid(f"the defect on {d.item!r} has no description")
    flagged = {k for k, v in draft.items.items() if v == "defect"}
    undescribed = sorted(flagged - {d.item for d in draft.defects})
    if undescribed:
        raise Invalid(f"items marked defect without a described defect: {undescribed} (396.11(a)(2)(i))")
    if not draft.driver_signature.strip():
        raise Invalid("the driver must sign the report (396.11(a)(2)(ii))")


def submit(conn: Connection, device_id: str, draft: ReportDraft, entered_by: str, *,
           now: float | None = None) -> Report:
    if get_device(conn, device_id) is None:
        raise NotFound(f"no vehicle {device_id!r}")
    require_driver(conn, draft.driver_id)
    validate(draft)
    result = conn.execute(insert(dvir_reports).values(
        device_id=device_id, driver_id=draft.driver_id, kind=draft.kind, inspected_at=draft.inspected_at,
        odometer_km=draft.odometer_km, location=draft.location, items=dict(draft.items),
        defects=[{"item": d.item, "description": d.description, "affects_safety": d.affects_safety}
                 for d in draft.defects],
        remarks=draft.remarks, driver_signature=draft.driver_signature,
        unsafe=any(d.affects_safety for d in draft.defects),
        recorded_at=time.time() if now is None else now, entered_by=entered_by))
    key = result.inserted_primary_key
    assert key is not None
    report = get(conn, device_id, int(key[0]))
    if report.unsafe:
        inspection_failed(conn, device_id, report.id, {
            "kind": draft.kind, "driver_id": draft.driver_id,
            "defects": [{"item": d.item, "description": d.description} for d in draft.defects if d.affects_safety],
        }, draft.inspected_at, time.time() if now is None else now)
    return report


def get(conn: Connection, device_id: str, report_id: int) -> Report:
    row = conn.execute(select(dvir_reports).where(dvir_reports.c.id == report_id,
                                                  dvir_reports.c.device_id == device_id)).first()
    if row is None:
        raise NotFound(f"no report {report_id} for vehicle {device_id!r}")
    return _report(row._mapping)


def reports(conn: Connection, device_id: str, limit: int = 100) -> list[Report]:
    rows = conn.execute(select(dvir_reports).where(dvir_reports.c.device_id == device_id)
                        .order_by(dvir_reports.c.inspected_at.desc(), dvir_reports.c.id.desc()).limit(limit))
    return [_report(r._mapping) for r in rows]


def _report(m: Any) -> Report:
    defects = [Defect(d["item"], d["description"], bool(d["affects_safety"])) for d in m["defects"]]
    draft = ReportDraft(m["kind"], m["driver_id"], m["inspected_at"], dict(m["items"]), defects,
                        m["driver_signature"], m["odometer_km"], m["location"], m["remarks"])
    return Report(m["id"], m["device_id"], draft, bool(m["unsafe"]), m["certified_at"], m["certified_by"],
                  m["mechanic"], m["certification"], m["certification_note"], m["reviewed_at"], m["reviewed_by"],
                  m["review_signature"], m["recorded_at"])


def certify(conn: Connection, device_id: str, report_id: int, certification: str, mechanic: str, actor: str,
            note: str | None = None, *, now: float | None = None) -> Report:
    """396.11(a)(3)(ii): the defects were repaired, or repair is unnecessary; once per report."""
    if certification not in CERTIFICATIONS:
        raise Invalid(f"certification is one of {CERTIFICATIONS}, not {certification!r}")
    if not mechanic.strip():
        raise Invalid("the certification names the mechanic")
    report = get(conn, device_id, report_id)
    if not report.draft.defects:
        raise Conflict(f"report {report_id} lists no defect: there is nothing to certify")
    at = time.time() if now is None else now
    done = conn.execute(update(dvir_reports).where(dvir_reports.c.id == report_id,
                                                   dvir_reports.c.certified_at.is_(None))
                        .values(certified_at=at, certified_by=actor, mechanic=mechanic, certification=certification,
                                certification_note=note))
    if done.rowcount != 1:
        raise Conflict(f"report {report_id} was already certified at {report.certified_at}")
    return get(conn, device_id, report_id)


def review(conn: Connection, device_id: str, report_id: int, driver_id: str, signature: str, *,
           now: float | None = None) -> Report:
    """396.13(b), (c): the next driver reviews the report and signs that the certification is there."""
    require_driver(conn, driver_id)
    if not signature.strip():
        raise Invalid("the reviewing driver signs (396.13(c))")
    report = get(conn, device_id, report_id)
    if not report.draft.defects:
        raise Conflict(f"report {report_id} lists no defect: 396.13(c) asks no signature")
    if report.certified_at is None:
        raise Conflict(f"report {report_id} is not certified yet: the driver signs that a certification exists "
                       "(396.13(c))")
    at = time.time() if now is None else now
    done = conn.execute(update(dvir_reports).where(dvir_reports.c.id == report_id,
                                                   dvir_reports.c.reviewed_at.is_(None))
                        .values(reviewed_at=at, reviewed_by=driver_id, review_signature=signature))
    if done.rowcount != 1:
        raise Conflict(f"report {report_id} was already reviewed at {report.reviewed_at}")
    return get(conn, device_id, report_id)


def safety(conn: Connection, device_id: str, *, now: float | None = None) -> SafetyStatus:
    """Not safe to operate while a report with a safety defect lacks its certification or the next driver's
    review; movement by the vehicle's own telemetry between such a report and its certification is flagged."""
    if get_device(conn, device_id) is None:
        raise NotFound(f"no vehicle {device_id!r}")
    until = time.time() if now is None else now
    rows = conn.execute(select(dvir_reports).where(
        dvir_reports.c.device_id == device_id, dvir_reports.c.unsafe.is_(True),
        (dvir_reports.c.certified_at.is_(None)) | (dvir_reports.c.reviewed_at.is_(None)),
    ).order_by(dvir_reports.c.inspected_at, dvir_reports.c.id))
    open_reports = [_report(r._mapping) for r in rows]
    waiting = None
    if any(r.certified_at is None for r in open_reports):
        waiting = "certification"
    elif open_reports:
        waiting = "driver_review"
    status = SafetyStatus(device_id, not open_reports, waiting, open_reports)
    for r in open_reports:
        end = until if r.certified_at is None else r.certified_at
        moved = _movement(conn, device_id, r.draft.inspected_at, end)
        if moved is not None:
            status.moved_while_unsafe.append({"report_id": r.id, "from": r.draft.inspected_at, "to": end, **moved})
    return status


def _movement(conn: Connection, device_id: str, start: float, end: float) -> dict[str, Any] | None:
    pos = schema.positions
    p = conn.execute(select(func.min(pos.c.device_time), func.count()).where(and_(
        pos.c.device_id == device_id, pos.c.device_time > start, pos.c.device_time < end,
        pos.c.speed_mps >= MOVING_SPEED_MPS))).first()
    ev = schema.events
    t = conn.execute(select(func.min(ev.c.device_time), func.count()).where(and_(
        ev.c.device_id == device_id, ev.c.kind == "trip_started", ev.c.device_time > start,
        ev.c.device_time < end))).first()
    moving_positions = 0 if p is None else int(p[1])
    trips_started = 0 if t is None else int(t[1])
    if not moving_positions and not trips_started:
        return None
    firsts = [x for x in ((p[0] if p else None), (t[0] if t else None)) if x is not None]
    return {"first_moved_at": min(firsts), "moving_positions": moving_positions, "trips_started": trips_started}
