"""Fault issues: one per (vehicle, fault identity), opened by the vehicle's fault events, worked by staff.

Identity (``identity``): a J1939 DTC is its source address, SPN and FMI; an OBD-II DTC its ECU and
code (pending, stored and permanent lists are stages of one fault); a threshold fault the edge raised
(``fault_raised``: coolant over temperature, low oil pressure...) its name. Each appearance event is
one occurrence (keyed by its record, so a duplicate is never counted twice) of the newest issue of
that identity:

- open, acknowledged or in a work order: counted on it (deduplicated);
- dismissed: counted on it, which stays dismissed (staff judged this fault not worth a job);
- resolved by a work order: an occurrence from before the repair (late data) is only counted; one
  after it reopens the issue, saying the fix did not hold, when it came back within
  ``reopen_within_trips`` drive cycles (trips started after the repair, up to the occurrence);
  later than that it is a new fault and opens a new issue.

Severity is the worst lamp lit with the fault. J1939 DM1 lamps (SAE J1939-73 5.7.1) belong to the
message, i.e. the ECU that sent the code, not to each code. OBD-II codes carry no lamp: a permanent
code (SAE J1979 service $0A) is one that commanded the MIL, so it counts as ``mil``.
A fault is active from its newest appearance until a clear event newer than that.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from cloud_sync.maintenance.errors import Conflict, Invalid, NotFound
from cloud_sync.maintenance.tables import fault_issues, fault_occurrences
from cloud_sync.store.schema import events, records

APPEARED_KINDS = frozenset({"dtc_appeared", "fault_raised"})
CLEARED_KINDS = frozenset({"dtc_cleared", "fault_cleared"})
TRIP_KIND = "trip_started"
OPEN, ACKNOWLEDGED, DISMISSED, IN_WORK_ORDER, RESOLVED = "open", "acknowledged", "dismissed", "in_work_order", \
    "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, DISMISSED, IN_WORK_ORDER, RESOLVED)
#: Statuses in which the fault still needs (or is getting) work.
PENDING = (OPEN, ACKNOWLEDGED, IN_WORK_ORDER)
SEVERITY_RANK = {"none": 0, "protect": 1, "mil": 2, "amber_warning": 3, "red_stop": 4}
#: J1939-73: SPN is 19 bits, FMI 5 bits.
MAX_SPN, MAX_FMI = (1 << 19) - 1, 31
MAX_CODE_CHARS = 16
MAX_SOURCE_CHARS = 64
#: Evidence: samples this long before and after an occurrence, within this many record ids of its event
#: (outbox ids grow in insertion order, so the window is an index range, not a scan of the vehicle's records).
EVIDENCE_BEFORE_S = 120.0
EVIDENCE_AFTER_S = 30.0
EVIDENCE_RECORD_SPAN = 50_000
MAX_EVIDENCE_SAMPLES = 2_000
MAX_LISTED = 500


@dataclass(frozen=True, slots=True)
class FaultIdentity:
    key: str
    protocol: str  # j1939 | obd2 | threshold
    source: str
    spn: int | None = None
    fmi: int | None = None
    code: str | None = None
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class Issue:
    id: int
    device_id: str
    identity: FaultIdentity
    status: str
    severity: str
    occurrences: int
    first_seen_at: float
    last_seen_at: float
    last_record_id: int
    last_cleared_at: float | None
    reopen_count: int
    note: str | None
    acknowledged_at: float | None
    acknowledged_by: str | None
    dismissed_at: float | None
    dismissed_reason: str | None
    work_order_id: int | None
    resolved_at: float | None
    resolved_by_work_order_id: int | None
    created_at: float
    updated_at: float

    @property
    def active(self) -> bool:
        """The vehicle still reports the fault (no clear newer than its last appearance)."""
        return self.last_cleared_at is None or self.last_cleared_at < self.last_seen_at


@dataclass(frozen=True, slots=True)
class Occurrence:
    record_id: int
    kind: str
    device_time: float
    severity: str


@dataclass(frozen=True, slots=True)
class Trace:
    """One signal's samples around an occurrence."""

    signal: str
    unit: str | None
    source: str | None
    points: list[tuple[float, float]]


def _int(value: object, hi: int) -> int | None:
    return value if type(value) is int and 0 <= value <= hi else None


def _text(value: object, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def identity(kind: str, payload: object) -> FaultIdentity | None:
    """The fault an event is about, or None if its payload does not name one."""
    if not isinstance(payload, dict):
        return None
    if kind in ("fault_raised", "fault_cleared"):
        fault = _text(payload.get("fault"), MAX_SOURCE_CHARS)
        signal_source = _text(payload.get("source"), MAX_SOURCE_CHARS) or ""
        return None if fault is None else FaultIdentity(f"threshold:{fault}", "threshold", signal_source, fault=fault)
    source = _text(payload.get("source"), MAX_SOURCE_CHARS)
    if source is None:
        return None
    if payload.get("protocol") == "j1939":
        spn, fmi = _int(payload.get("spn"), MAX_SPN), _int(payload.get("fmi"), MAX_FMI)
        if spn is None or fmi is None:
            return None
        return FaultIdentity(f"j1939:{source}:spn{spn}:fmi{fmi}", "j1939", source, spn=spn, fmi=fmi)
    if payload.get("protocol") == "obd2":
        code = _text(payload.get("code"), MAX_CODE_CHARS)
        return None if code is None else FaultIdentity(f"obd2:{source}:{code}", "obd2", source, code=code)
    return None


def severity(payload: dict[str, Any]) -> str:
    lamps = payload.get("lamps")
    worst = "none"
    if isinstance(lamps, dict):
        for lamp in ("protect", "mil", "amber_warning", "red_stop"):
            if lamps.get(lamp) == "on" and SEVERITY_RANK[lamp] > SEVERITY_RANK[worst]:
                worst = lamp
    if payload.get("protocol") == "obd2" and payload.get("status") == "permanent" and worst == "none":
        worst = "mil"
    return worst


def _issue(r: Any) -> Issue:
    ident = FaultIdentity(r.fault_key, r.protocol, r.source, r.spn, r.fmi, r.code, r.fault)
    return Issue(r.id, r.device_id, ident, r.status, r.severity, r.occurrences, r.first_seen_at, r.last_seen_at,
                 r.last_record_id, r.last_cleared_at, r.reopen_count, r.note, r.acknowledged_at, r.acknowledged_by,
                 r.dismissed_at, r.dismissed_reason, r.work_order_id, r.resolved_at, r.resolved_by_work_order_id,
                 r.created_at, r.updated_at)


def _latest(conn: Connection, device_id: str, key: str) -> Issue | None:
    c = fault_issues.c
    row = conn.execute(select(fault_issues).where(c.device_id == device_id, c.fault_key == key)
                       .order_by(c.id.desc()).limit(1)).first()
    return None if row is None else _issue(row)


def trips_between(conn: Connection, device_id: str, after: float, until: float) -> int:
    """Drive cycles (trips started) with ``after < device time <= until``."""
    e = events.c
    return int(conn.execute(select(func.count()).select_from(events).where(
        e.device_id == device_id, e.kind == TRIP_KIND, e.device_time > after, e.device_time <= until)).scalar_one())


def record_appearance(conn: Connection, device_id: str, record_id: int, kind: str, t: float,
                      payload: dict[str, Any], ident: FaultIdentity, reopen_within_trips: int, now: float) -> str:
    """Count one appearance (see the module docstring); returns what it did: opened, reopened, counted.
    Called once per event (the derivation's processed markers; the occurrences' key refuses a second)."""
    sev = severity(payload)
    issue = _latest(conn, device_id, ident.key)
    outcome = "counted"
    if issue is not None and issue.status == RESOLVED and t > (issue.resolved_at or 0.0):
        trips = trips_between(conn, device_id, issue.resolved_at or 0.0, t)
        if trips <= reopen_within_trips:
            note = (f"fix did not hold: the fault returned {trips} drive cycle(s) after work order "
                    f"#{issue.resolved_by_work_order_id} was completed (reopens within {reopen_within_trips})")
            conn.execute(update(fault_issues).where(fault_issues.c.id == issue.id).values(
                status=OPEN, reopen_count=issue.reopen_count + 1, note=note, work_order_id=None, resolved_at=None,
                acknowledged_at=None, acknowledged_by=None, updated_at=now))
            outcome = "reopened"
        else:
            issue = None  # a new fault long after the repair
    c = fault_issues.c
    if issue is None:
        issue_id = conn.execute(insert(fault_issues).values(
            device_id=device_id, fault_key=ident.key, protocol=ident.protocol, source=ident.source, spn=ident.spn,
            fmi=ident.fmi, code=ident.code, fault=ident.fault, status=OPEN, severity=sev, occurrences=1,
            first_seen_at=t, last_seen_at=t, last_record_id=record_id, last_cleared_at=None, reopen_count=0,
            created_at=now, updated_at=now).returning(c.id)).scalar_one()
        outcome = "opened"
    else:
        issue_id = issue.id
        newer = t >= issue.last_seen_at
        conn.execute(update(fault_issues).where(c.id == issue.id).values(
            occurrences=c.occurrences + 1, first_seen_at=min(issue.first_seen_at, t),
            last_seen_at=max(issue.last_seen_at, t), last_record_id=record_id if newer else issue.last_record_id,
            severity=max(issue.severity, sev, key=SEVERITY_RANK.__getitem__), updated_at=now))
    conn.execute(insert(fault_occurrences).values(device_id=device_id, record_id=record_id, issue_id=issue_id,
                                                  kind=kind, device_time=t, severity=sev))
    return outcome


def record_clear(conn: Connection, device_id: str, t: float, payload: dict[str, Any], ident: FaultIdentity,
                 now: float) -> str:
    """The vehicle stopped reporting the fault at the payload's ``cleared_at`` (else the event's time)."""
    issue = _latest(conn, device_id, ident.key)
    if issue is None:
        return "clear_without_issue"  # its appearance was evicted on the vehicle or is still in flight
    cleared = payload.get("cleared_at")
    at = float(cleared) if isinstance(cleared, int | float) and math.isfinite(cleared) else t
    if issue.last_cleared_at is None or at > issue.last_cleared_at:
        conn.execute(update(fault_issues).where(fault_issues.c.id == issue.id)
                     .values(last_cleared_at=at, updated_at=now))
    return "cleared"


def get_issue(conn: Connection, issue_id: int) -> Issue:
    row = conn.execute(select(fault_issues).where(fault_issues.c.id == issue_id)).first()
    if row is None:
        raise NotFound(f"no fault issue {issue_id}")
    return _issue(row)


def list_issues(conn: Connection, device_id: str | None = None, statuses: tuple[str, ...] | None = None,
                limit: int = MAX_LISTED) -> list[Issue]:
    """Issues, newest activity first."""
    c = fault_issues.c
    query = select(fault_issues)
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    if statuses is not None:
        query = query.where(c.status.in_(statuses))
    rows = conn.execute(query.order_by(c.last_seen_at.desc(), c.id.desc()).limit(min(limit, MAX_LISTED))).all()
    return [_issue(r) for r in rows]


def scored_issues(conn: Connection, device_ids: Collection[str] | None) -> dict[str, list[Issue]]:
    """Every issue not dismissed, per vehicle (the risk ranking weighs them all; no page limit)."""
    c = fault_issues.c
    query = select(fault_issues).where(c.status != DISMISSED)
    if device_ids is not None:
        query = query.where(c.device_id.in_(sorted(device_ids)))
    out: dict[str, list[Issue]] = {}
    for r in conn.execute(query.order_by(c.device_id, c.last_seen_at.desc(), c.id.desc())):
        out.setdefault(r.device_id, []).append(_issue(r))
    return out


def occurrences(conn: Connection, issue_id: int, limit: int = MAX_LISTED) -> list[Occurrence]:
    o = fault_occurrences.c
    rows = conn.execute(select(fault_occurrences).where(o.issue_id == issue_id)
                        .order_by(o.device_time.desc(), o.record_id.desc()).limit(min(limit, MAX_LISTED))).all()
    return [Occurrence(r.record_id, r.kind, r.device_time, r.severity) for r in rows]


def acknowledge(conn: Connection, issue_id: int, by: str | None, now: float) -> Issue:
    issue = get_issue(conn, issue_id)
    if issue.status == ACKNOWLEDGED:
        return issue
    if issue.status != OPEN:
        raise Conflict(f"issue {issue_id} is {issue.status}; only an open issue can be acknowledged")
    conn.execute(update(fault_issues).where(fault_issues.c.id == issue_id).values(
        status=ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by, updated_at=now))
    return get_issue(conn, issue_id)


def dismiss(conn: Connection, issue_id: int, reason: str, now: float) -> Issue:
    if not reason.strip():
        raise Invalid("dismissing an issue needs a reason")
    issue = get_issue(conn, issue_id)
    if issue.status not in (OPEN, ACKNOWLEDGED):
        raise Conflict(f"issue {issue_id} is {issue.status}; only an open or acknowledged issue can be dismissed")
    conn.execute(update(fault_issues).where(fault_issues.c.id == issue_id).values(
        status=DISMISSED, dismissed_at=now, dismissed_reason=reason, updated_at=now))
    return get_issue(conn, issue_id)


def evidence(conn: Connection, device_id: str, record_id: int, t: float) -> list[Trace]:
    """Samples the vehicle stored around ``t`` (its fault event's record id ``record_id``), per signal."""
    r = records.c
    rows = conn.execute(select(r.device_time, r.payload).where(
        r.device_id == device_id, r.record_id >= record_id - EVIDENCE_RECORD_SPAN,
        r.record_id <= record_id + EVIDENCE_RECORD_SPAN, r.kind == "sample",
        r.device_time >= t - EVIDENCE_BEFORE_S, r.device_time <= t + EVIDENCE_AFTER_S)
        .order_by(r.device_time, r.record_id).limit(MAX_EVIDENCE_SAMPLES)).all()
    traces: dict[tuple[str, str | None], Trace] = {}
    for row in rows:
        p = row.payload
        if not isinstance(p, dict) or not isinstance(p.get("signal"), str):
            continue
        value = p.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # a tagged NaN or a non-numeric value: nothing to plot
        key = (p["signal"], p.get("source") if isinstance(p.get("source"), str) else None)
        trace = traces.get(key)
        if trace is None:
            unit = p.get("unit") if isinstance(p.get("unit"), str) else None
            trace = traces[key] = Trace(key[0], unit, key[1], [])
        trace.points.append((row.device_time, float(value)))
    return sorted(traces.values(), key=lambda tr: (tr.signal, tr.source or ""))
