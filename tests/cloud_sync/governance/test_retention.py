"""Retention on SQLite and PostgreSQL: what is past its period is deleted or pseudonymised, what is inside it
or still needed is kept, minimums cannot be configured away, and every run that changed data is audited."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import insert, select

from cloud_sync.compliance.tables import drivers, duty_events, dvir_reports
from cloud_sync.governance import audit, retention
from cloud_sync.governance.retention import DAY_S, Policy
from cloud_sync.ingest import Ingestor
from cloud_sync.maintenance.tables import work_order_lines, work_orders
from cloud_sync.metrics import Metrics
from cloud_sync.settings import SettingsError
from cloud_sync.store import schema
from cloud_sync.webhooks.tables import webhook_deliveries, webhook_subscriptions
from tests.cloud_sync.helpers import T0, SimDevice, count

NOW = T0 + 400 * DAY_S


def _fill(engine) -> SimDevice:
    dev = SimDevice("truck-r")
    dev.register(engine, depot="north")
    ingestor = Ingestor(engine, Metrics())
    rng = random.Random(3)
    for t0 in (T0, NOW - DAY_S):  # 400 days old, and yesterday
        assert ingestor.ingest(dev.batch(dev.records(rng, 300, t0=t0))).status == "committed"
    old, new = NOW - 200 * DAY_S, NOW - 10 * DAY_S
    with engine.begin() as conn:
        conn.execute(insert(drivers).values(id="d-1", name="Dana", depot="north", created_at=T0))
        for at in (old, new):
            conn.execute(insert(duty_events).values(driver_id="d-1", at=at, status="driving", device_id=dev.device_id,
                                                    source="staff", entered_by="settings:admin", recorded_at=at))
        for at, unsafe, certified in ((old, False, None), (old, True, None), (old, True, old + 1), (new, False, None)):
            conn.execute(insert(dvir_reports).values(
                device_id=dev.device_id, driver_id="d-1", kind="pre_trip", inspected_at=at, items={}, defects=[],
                driver_signature="Dana", unsafe=unsafe, certified_at=certified, recorded_at=at,
                entered_by="settings:admin"))
        for done in (NOW - 380 * DAY_S, NOW - 100 * DAY_S, None):
            oid = conn.execute(insert(work_orders).values(
                device_id=dev.device_id, status="completed" if done else "open", title="brakes", created_at=T0,
                completed_at=done, updated_at=T0).returning(work_orders.c.id)).scalar_one()
            conn.execute(insert(work_order_lines).values(work_order_id=oid, kind="labour", description="x", cost=1.0,
                                                         created_at=T0))
        sub = conn.execute(insert(webhook_subscriptions).values(
            url="http://127.0.0.1:9/h", secret="s", event_types=["idle"], active=True, created_at=T0)
            .returning(webhook_subscriptions.c.id)).scalar_one()
        # (age, state, payload): an old delivered copy of a trip (start location too), an old one still owed,
        # yesterday's delivered one.
        for key, (at, state) in enumerate(((old, "delivered"), (old, "pending"), (new, "delivered"))):
            conn.execute(insert(webhook_deliveries).values(
                subscription_id=sub, event_type="idle", event_key=f"k{key}", device_id=dev.device_id, occurred_at=at,
                payload={"kind": "trip_ended", "lat": 52.0, "lon": 4.0, "start_lat": 52.1, "start_lon": 4.1,
                         "duration_s": 60}, state=state, attempts=1, next_attempt_at=at, created_at=at))
    return dev


def _located(engine, tbl) -> int:
    with engine.connect() as conn:
        return sum(1 for (p,) in conn.execute(select(tbl.c.payload).where(tbl.c.kind.not_in(("sample", "position"))))
                   if isinstance(p, dict) and "lat" in p)


def test_the_job_deletes_and_pseudonymises_past_each_period_and_keeps_the_rest(engine):
    _fill(engine)
    positions_before, events_located = count(engine, schema.positions), _located(engine, schema.events)
    with engine.begin() as conn:
        dry = retention.run(conn, Policy.defaults(), now=NOW, dry_run=True)
    assert count(engine, schema.positions) == positions_before and dry["live_dispatch"]["positions"] > 0
    with engine.begin() as conn:
        done = retention.run(conn, Policy.defaults(), now=NOW)
    assert done == dry  # the dry run counted exactly what the run did
    assert 0 < count(engine, schema.positions) < positions_before  # yesterday's positions stay
    with engine.connect() as conn:
        assert conn.execute(select(schema.positions.c.device_time).order_by(schema.positions.c.device_time)
                            ).scalars().first() >= NOW - 30 * DAY_S
    assert 0 < _located(engine, schema.events) < events_located and _located(engine, schema.records) > 0
    assert done["working_time"] == {"days": 183, "cutoff": NOW - 183 * DAY_S, "duty_events": 1}
    assert done["compliance_records"]["dvir_reports"] == 2  # the unsafe, uncertified one stays
    assert done["maintenance_records"] == {"days": 366, "cutoff": NOW - 366 * DAY_S, "work_orders": 1,
                                           "work_order_lines": 1}
    assert count(engine, dvir_reports) == 2 and count(engine, duty_events) == 1 and count(engine, work_orders) == 2
    assert done["webhook_log"]["webhook_deliveries"] == 1  # the old delivered copy; the owed one stays
    assert done["trip_history"]["webhook_payloads_pseudonymised"] == 2
    with engine.connect() as conn:
        kept = {r.event_key: r.payload for r in conn.execute(select(webhook_deliveries))}
    assert kept["k1"] == {"kind": "trip_ended", "duration_s": 60}  # old: no location of any kind left
    assert kept["k2"]["start_lat"] == 52.1  # inside the trip-history period
    with engine.connect() as conn:
        entries = audit.page(conn)
        assert audit.verify(conn).ok
    assert {e.action for e in entries} == {f"retention {p}" for p in retention.PURPOSES}
    assert all(e.actor == retention.JOB_ACTOR for e in entries)
    with engine.begin() as conn:  # a second run finds nothing more to do, and says nothing
        again = retention.run(conn, Policy.defaults(), now=NOW)
    assert all(v == 0 for r in again.values() for k, v in r.items() if k not in ("days", "cutoff"))
    with engine.connect() as conn:
        assert len(audit.page(conn)) == len(entries)


@pytest.mark.parametrize("env, message", [
    ({"FLEET_CLOUD_RETENTION_WORKING_TIME_DAYS": "90"}, "at least 183 days (49 CFR 395.8"),
    ({"FLEET_CLOUD_RETENTION_COMPLIANCE_RECORDS_DAYS": "91"}, "at least 92 days"),
    ({"FLEET_CLOUD_RETENTION_MAINTENANCE_RECORDS_DAYS": "365"}, "at least 366 days"),
    ({"FLEET_CLOUD_RETENTION_LIVE_DISPATCH_DAYS": "0"}, "at least 1 days"),
    ({"FLEET_CLOUD_RETENTION_TRIP_HISTORY_DAYS": "ninety"}, "not a whole number"),
])
def test_periods_below_the_minimum_are_refused(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Policy.from_env(env)


def test_periods_come_from_the_environment_and_overrides():
    policy = Policy.from_env({"FLEET_CLOUD_RETENTION_LIVE_DISPATCH_DAYS": "7"}, {"trip_history": 14})
    assert policy.days["live_dispatch"] == 7 and policy.days["trip_history"] == 14
    assert policy.days["working_time"] == 183
    with pytest.raises(SettingsError, match="unknown retention purpose"):
        Policy.from_env({}, {"forever": 1})
