"""A driver's data export and erasure on SQLite and PostgreSQL: the export holds their rows and the positions of
their sessions only; erasure removes what no law keeps, keeps what one does, and the audit trail still verifies."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from cloud_sync.compliance.tables import drivers, duty_events, dvir_reports
from cloud_sync.governance import audit, subjects
from cloud_sync.governance.retention import DAY_S
from cloud_sync.ingest import Ingestor
from cloud_sync.main import create_app
from cloud_sync.metrics import Metrics
from cloud_sync.settings import Settings
from cloud_sync.store import schema
from cloud_sync.webhooks.tables import webhook_deliveries, webhook_subscriptions
from tests.cloud_sync.helpers import T0, SimDevice, count

NOW = T0 + 300 * DAY_S
OLD, RECENT = NOW - 250 * DAY_S, NOW - 5 * DAY_S
ADMIN = "admin-secret-for-tests-0123456789"


def _fill(engine) -> SimDevice:
    dev = SimDevice("truck-s")
    dev.register(engine, depot="north")
    ingestor = Ingestor(engine, Metrics())
    rng = random.Random(5)
    for t0 in (OLD, RECENT):  # 30 positions each, at t0 + 1 .. t0 + 30
        assert ingestor.ingest(dev.batch(dev.records(rng, 300, t0=t0))).status == "committed"
    with engine.begin() as conn:
        conn.execute(insert(drivers).values(id="drv-7", name="Dana Driver", depot="north", created_at=T0))
        conn.execute(insert(drivers).values(id="drv-8", name="Other", depot="north", created_at=T0))
        truck = dev.device_id
        for who, at, status, device in (("drv-7", OLD + 10.5, "on_duty", truck), ("drv-7", OLD + 20.5, "off", None),
                                        ("drv-7", RECENT, "on_duty", truck), ("drv-7", RECENT + 900, "off", None),
                                        ("drv-8", OLD + 25.5, "on_duty", truck)):
            conn.execute(insert(duty_events).values(driver_id=who, at=at, status=status, device_id=device,
                                                    source="staff", entered_by="settings:admin", recorded_at=at))
        for at in (OLD, RECENT):
            conn.execute(insert(dvir_reports).values(
                device_id=dev.device_id, driver_id="drv-7", kind="pre_trip", inspected_at=at, items={}, defects=[],
                driver_signature="Dana Driver", unsafe=False, recorded_at=at, entered_by="settings:admin"))
    return dev


def test_export_holds_the_drivers_rows_and_the_positions_of_their_sessions_only(engine):
    _fill(engine)
    with engine.connect() as conn:
        data = subjects.export_driver(conn, "drv-7", now=NOW)
    assert data["driver"]["name"] == "Dana Driver" and len(data["duty_events"]) == 4
    assert len(data["dvir_reports"]) == 2
    spans = [(s["from"], s["to"], len(s["positions"])) for s in data["sessions"]]
    assert spans == [(OLD + 10.5, OLD + 20.5, 10), (RECENT, RECENT + 900, 30)]
    assert all(s["from"] <= p["device_time"] < s["to"] for s in data["sessions"] for p in s["positions"])


def test_erasure_keeps_what_the_law_keeps_and_the_audit_trail_verifies(engine):
    dev = _fill(engine)
    positions_before = count(engine, schema.positions)
    with engine.begin() as conn:
        # Webhook copies of the truck's events: one inside drv-7's recent session, one outside any session of theirs.
        sub = conn.execute(insert(webhook_subscriptions).values(
            url="http://127.0.0.1:9/h", secret="s", event_types=["idle"], active=True, created_at=T0)
            .returning(webhook_subscriptions.c.id)).scalar_one()
        for key, at in (("in", RECENT + 60), ("out", RECENT + 2000)):
            conn.execute(insert(webhook_deliveries).values(
                subscription_id=sub, event_type="idle", event_key=key, device_id=dev.device_id, occurred_at=at,
                payload={"kind": "idle_ended", "lat": 52.0, "lon": 4.0, "duration_s": 60}, state="delivered",
                attempts=1, next_attempt_at=at, created_at=at))
    with engine.begin() as conn:
        audit.append(conn, "dispatcher-1", "dispatcher", "GET /v1/drivers/{driver}/hours", "drv-7", {})
        done = subjects.erase_driver(conn, "drv-7", "settings:admin", "admin", now=NOW)
    assert done["positions"] == 40 and done["duty_events"] == 2 and done["duty_events_kept"] == 2
    assert done["dvir_reports"] == 1 and done["dvir_reports_kept"] == 1
    assert count(engine, schema.positions) == positions_before - 40  # the other 20 were nobody's session of drv-7
    with engine.connect() as conn:
        assert conn.execute(select(drivers.c.name).where(drivers.c.id == "drv-7")).scalar_one() == "erased"
        assert conn.execute(select(drivers.c.name).where(drivers.c.id == "drv-8")).scalar_one() == "Other"
        kept = conn.execute(select(duty_events.c.at).where(duty_events.c.driver_id == "drv-7")).scalars().all()
        assert sorted(kept) == [RECENT, RECENT + 900]
        assert audit.verify(conn).ok
        last = audit.page(conn)[-1]
        assert (last.action, last.subject, last.detail["positions"]) == ("erase driver", "drv-7", 40)
        again = subjects.export_driver(conn, "drv-7", now=NOW)
    assert [len(s["positions"]) for s in again["sessions"]] == [0]  # the old session went with its events
    assert [e["action"] for e in again["audit_entries"]] == ["GET /v1/drivers/{driver}/hours", "erase driver"]
    with engine.connect() as conn:
        copies = {r.event_key: r.payload for r in conn.execute(select(webhook_deliveries))}
    assert copies["in"] == {"kind": "idle_ended", "duration_s": 60} and copies["out"]["lat"] == 52.0


def test_export_and_erasure_over_http_are_admin_only_and_audited(engine, tmp_path):
    _fill(engine)
    settings = Settings(environment="production", admin_token=ADMIN, staff_token="staff-secret-for-tests-0123456789",
                        ca_dir=tmp_path / "ca")
    with TestClient(create_app(settings, engine)) as c:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        staff = {"Authorization": "Bearer staff-secret-for-tests-0123456789"}
        assert c.get("/v1/subjects/drivers/drv-7/export", headers=staff).status_code == 403
        # a dispatcher looks at the truck's positions: the audit entry names whose location that was
        for start, end in ((RECENT, RECENT + 100), (OLD + 26, OLD + 27)):
            assert c.get("/v1/vehicles/truck-s/positions", headers=staff,
                          params={"from": start, "to": end}).status_code == 200
        r = c.get("/v1/subjects/drivers/drv-7/export", headers=admin)
        assert r.status_code == 200 and r.json()["driver"]["id"] == "drv-7"
        assert [e["action"] for e in r.json()["audit_entries"]] == [  # the export itself is audited first
            "GET /v1/vehicles/{device}/positions", "GET /v1/subjects/drivers/{driver}/export"]
        assert c.get("/v1/subjects/drivers/nobody/export", headers=admin).status_code == 404
        assert c.post("/v1/subjects/drivers/drv-7/erase", headers=staff).status_code == 403
        r = c.post("/v1/subjects/drivers/drv-7/erase", headers=admin)
        assert r.status_code == 200 and r.json()["duty_events_kept"] == 2
    with engine.connect() as conn:
        actions = [(e.action, e.subject) for e in audit.page(conn)]
        assert audit.verify(conn).ok
    assert ("GET /v1/subjects/drivers/{driver}/export", "drv-7") in actions
    with engine.connect() as conn:
        reads = [e.detail["drivers"] for e in audit.page(conn) if e.action.endswith("/positions")]
    assert reads == [["drv-7"], ["drv-8"]]
    assert ("erase driver", "drv-7") in actions
