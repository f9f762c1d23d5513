"""Readings and fault issues derived from real sealed batches through the real Ingestor (SQLite and PostgreSQL):
with no manual step, idempotent under duplicates and late batches, and from a real replay of the truck capture."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud_sync.ingest import Ingestor
from cloud_sync.maintenance import derive, faults, meters
from cloud_sync.maintenance.tables import maintenance_processed, meter_readings
from edge_agent.outbox import Outbox
from edge_agent.replay import ReplayOptions, run_replay
from edge_agent.wire import WireRecord
from tests.cloud_sync.helpers import T0
from tests.cloud_sync.maintenance.vehicle import AMBER, RED, Vehicle, cleared, dtc, idle, meter, sample

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def truck(engine) -> Vehicle:
    return Vehicle.register(engine, Ingestor(engine), "truck-1", depot="north")


def _readings(engine, device: str, meter_name: str) -> list[meters.Reading]:
    with engine.connect() as conn:
        return meters.list_readings(conn, device, meter_name, None, None)


def test_meter_events_become_readings_once_whatever_the_order(truck, engine):
    truck.add("meter", T0 + 100, meter(1000.0, 50.0))
    truck.add("sample", T0 + 101, sample("engine_speed", 800.0, "rpm"), priority=10)
    first = truck.send()
    truck.add("meter", T0 + 3000, meter(1040.0, 51.0))
    late_rid = truck.add("meter", T0 + 2000, meter(1020.0, 50.5))  # earlier device time, sent later
    truck.send()
    assert truck.ingestor.ingest(first).status == "duplicate"
    odo = _readings(engine, "truck-1", meters.ODOMETER)
    assert [(r.read_at, r.value, r.void) for r in odo] == [(T0 + 100, 1000.0, False), (T0 + 2000, 1020.0, False),
                                                           (T0 + 3000, 1040.0, False)]
    assert odo[1].record_id == late_rid and odo[1].source == "vehicle" and odo[1].origin == "bus"
    with engine.connect() as conn:
        assert meters.value_at(conn, "truck-1", meters.ODOMETER, T0 + 2500) == 1020.0
        assert meters.value_at(conn, "truck-1", meters.ENGINE_HOURS, T0 + 1e9) == 51.0
    assert derive.derive_all(engine) == {"truck-1": {}}  # nothing left over: the hook did it all


def test_a_vehicle_reading_that_goes_backwards_is_kept_void(truck, engine):
    truck.add("meter", T0 + 100, meter(1000.0, 50.0))
    truck.add("meter", T0 + 200, meter(990.0, 50.1))  # odometer backwards (a swapped cluster?), hours fine
    truck.send()
    odo = _readings(engine, "truck-1", meters.ODOMETER)
    assert [r.void for r in odo] == [False, True]
    assert "below reading" in (odo[1].void_reason or "")
    assert [r.void for r in _readings(engine, "truck-1", meters.ENGINE_HOURS)] == [False, False]
    with engine.connect() as conn:
        assert meters.value_at(conn, "truck-1", meters.ODOMETER, T0 + 300) == 1000.0


def test_idle_hours_are_the_running_sum_even_when_an_idle_period_arrives_late(truck, engine):
    truck.add("idle_ended", T0 + 1000, idle(T0 + 400, 600.0))
    truck.add("idle_ended", T0 + 9000, idle(T0 + 7200, 1800.0))
    truck.send()
    truck.add("idle_ended", T0 + 5000, idle(T0 + 1400, 3600.0))  # late: between the two
    truck.send()
    idle_h = _readings(engine, "truck-1", meters.IDLE_HOURS)
    assert [r.read_at for r in idle_h] == [T0 + 1000, T0 + 5000, T0 + 9000]
    assert [r.value for r in idle_h] == pytest.approx([1 / 6, 1 / 6 + 1, 1 / 6 + 1 + 0.5])


def test_fault_events_open_one_issue_per_identity_with_count_severity_and_evidence(truck, engine):
    for i in range(30):  # coolant samples leading up to the fault
        truck.add("sample", T0 + 470 + i, sample("coolant_temp", 95.0 + i, "degC"), priority=10)
    first = truck.add("dtc_appeared", T0 + 500, dtc(110, 16, AMBER, T0 + 500))
    truck.add("dtc_appeared", T0 + 510, dtc(3226, 4, AMBER, T0 + 510))
    truck.add("dtc_cleared", T0 + 650, cleared(110, 16, T0 + 500, T0 + 640))
    truck.send()
    again = truck.add("dtc_appeared", T0 + 900, dtc(110, 16, RED, T0 + 900))  # same fault, now with the red lamp
    truck.add("dtc_appeared", T0 + 900, dtc(110, 16, AMBER, T0 + 900, source="j1939:0x03"))  # another ECU
    truck.send()
    with engine.connect() as conn:
        issues = {i.identity.key: i for i in faults.list_issues(conn, "truck-1")}
        assert sorted(issues) == ["j1939:j1939:0x00:spn110:fmi16", "j1939:j1939:0x00:spn3226:fmi4",
                                  "j1939:j1939:0x03:spn110:fmi16"]
        coolant = issues["j1939:j1939:0x00:spn110:fmi16"]
        assert (coolant.occurrences, coolant.severity, coolant.status) == (2, "red_stop", "open")
        assert coolant.active and coolant.last_cleared_at == T0 + 640  # cleared, then back at T0 + 900
        assert coolant.last_record_id == again and coolant.first_seen_at == T0 + 500
        assert [o.record_id for o in faults.occurrences(conn, coolant.id)] == [again, first]
        traces = faults.evidence(conn, "truck-1", first, T0 + 500)
        assert [t.signal for t in traces] == ["coolant_temp"]
        assert traces[0].points[0] == (T0 + 470, 95.0) and len(traces[0].points) == 30
        assert issues["j1939:j1939:0x00:spn3226:fmi4"].active


def test_bad_fault_payloads_are_skipped_and_counted_not_retried(truck, engine):
    truck.add("dtc_appeared", T0 + 1, {"protocol": "j1939", "source": "j1939:0x00", "spn": -1, "fmi": 3})
    truck.add("meter", T0 + 2, {"odometer_km": "lots", "reason": "periodic"})
    truck.add("meter", T0 + 3, meter(1e12, 5.0))  # well-formed, but no odometer reads a trillion km
    truck.add("dtc_appeared", T0 + 4, dtc(100, 1, AMBER, T0 + 4))
    truck.add("meter", T0 + 5, meter(1000.0, 5.0))
    truck.send()
    with engine.connect() as conn:
        outcomes = dict(conn.execute(select(maintenance_processed.c.outcome, func.count())
                                     .group_by(maintenance_processed.c.outcome)).all())
        assert outcomes == {"skipped": 3, "opened": 1, "reading": 1}
        assert len(faults.list_issues(conn, "truck-1")) == 1
        assert [r.value for r in meters.list_readings(conn, "truck-1", None, None, None)] == [1000.0, 5.0]


def test_events_stored_before_the_hook_existed_are_derived_by_the_catch_up(truck, engine):
    truck.ingestor.commit_hooks = [h for h in truck.ingestor.commit_hooks
                                   if not isinstance(h, derive.MaintenanceHook)]
    truck.add("meter", T0 + 100, meter(500.0, 10.0))
    truck.add("dtc_appeared", T0 + 200, dtc(110, 16, AMBER, T0 + 200))
    truck.send()
    assert _readings(engine, "truck-1", meters.ODOMETER) == []
    report = derive.derive_all(engine)
    assert report["truck-1"] == {"reading": 1, "opened": 1}
    assert derive.derive_all(engine) == {"truck-1": {}}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(meter_readings)).scalar_one() == 2


def test_a_real_replay_of_the_truck_capture_opens_its_two_dtcs_as_issues(tmp_path, engine):
    """The edge's own detectors on a recorded truck (tests/data/sim/truck_j1939.log.gz), its outbox sealed into
    batches as the uplink does, through the Ingestor: SPN 110 and SPN 3226 became issues with evidence."""
    run_replay(ReplayOptions(profile="heavy_truck_j1939", db=tmp_path / "outbox.db",
                             can=DATA / "sim" / "truck_j1939.log.gz"))
    outbox = Outbox(tmp_path / "outbox.db")
    rows = outbox.claim(100_000)
    outbox.close()
    truck = Vehicle.register(engine, Ingestor(engine), "truck-replay")
    records = [WireRecord(r.id, r.kind, r.priority, r.timestamp, r.received_at, r.payload) for r in rows]
    records.sort(key=lambda r: r.id)
    for i in range(0, len(records), 1000):
        truck.pending = records[i:i + 1000]
        truck.send()
    with engine.connect() as conn:
        issues = sorted(faults.list_issues(conn, "truck-replay"), key=lambda i: i.identity.spn or 0)
        assert [(i.identity.spn, i.identity.fmi, i.severity, i.active) for i in issues] == [
            (110, 16, "amber_warning", False), (3226, 4, "amber_warning", False)]
        evidence = faults.evidence(conn, "truck-replay", issues[0].last_record_id, issues[0].last_seen_at)
        assert "coolant_temp" in {t.signal for t in evidence}
        assert meters.value_at(conn, "truck-replay", meters.ODOMETER, 2e9) == pytest.approx(812353.86)
        assert meters.value_at(conn, "truck-replay", meters.ENGINE_HOURS, 2e9) == pytest.approx(12345.6)
        assert meters.value_at(conn, "truck-replay", meters.IDLE_HOURS, 2e9) == pytest.approx(360.7 / 3600)


def test_usage_per_day_over_the_window_for_the_whole_fleet_in_one_go(truck, engine):
    day = 86_400.0
    for t, km in ((T0, 1000.0), (T0 + 40 * day, 3000.0), (T0 + 50 * day, 6000.0)):
        truck.add("meter", t, meter(km, 10.0))
    truck.send()
    van = Vehicle.register(engine, truck.ingestor, "van-1")
    van.add("meter", T0, meter(50.0, 1.0))  # one reading: no rate yet
    van.send()
    with engine.connect() as conn:
        wide = meters.usage(conn, None, T0 + 60 * day, 30)
        narrow = meters.usage(conn, ["truck-1"], T0 + 60 * day, 15)
        earlier = meters.usage(conn, None, T0 + 45 * day, 30)
    assert wide["truck-1"].current[meters.ODOMETER] == 6000.0
    assert wide["truck-1"].rates[meters.ODOMETER] == pytest.approx(100.0)  # from T0, the newest before the window
    assert narrow["truck-1"].rates[meters.ODOMETER] == pytest.approx(300.0)  # from T0 + 40 d
    assert wide["truck-1"].rates[meters.ENGINE_HOURS] == 0.0
    assert earlier["truck-1"].current[meters.ODOMETER] == 3000.0  # a reading after "now" is not used
    assert wide["van-1"].rates == {m: None for m in meters.METERS} and "van-1" not in narrow


def _summary(engine, device: str) -> tuple[list, list]:
    with engine.connect() as conn:
        readings = [(r.meter, r.read_at, round(r.value, 9), r.void)
                    for r in meters.list_readings(conn, device, None, None, None)]
        issues = sorted((i.identity.key, i.occurrences, i.first_seen_at, i.last_seen_at, i.last_cleared_at,
                         i.severity, i.status, i.active) for i in faults.list_issues(conn, device))
    return readings, issues


def test_same_readings_and_issues_whatever_order_and_how_often_batches_arrive(engine):
    """Six hours of a truck in six batches, delivered in order, reversed, and shuffled with duplicates (as a
    backlog after a network drop and retries would): the derived readings and issues are the same."""
    ingestor = Ingestor(engine)
    plan: list[list[tuple[str, float, dict]]] = []
    for b in range(6):
        t = T0 + b * 3600
        items = [("meter", t + 10, meter(1000.0 + 40 * b, 50.0 + b)), ("idle_ended", t + 20, idle(t, 300.0 + b)),
                 ("dtc_appeared", t + 30, dtc(110, 16, RED if b == 3 else AMBER, t + 30))]
        if b % 2:
            items.append(("dtc_cleared", t + 50, cleared(110, 16, t + 30, t + 45)))
        plan.append(items)
    orders = {"in_order": list(range(6)), "reversed": list(range(5, -1, -1))}
    shuffled = list(range(6)) * 2
    random.Random(7).shuffle(shuffled)
    orders["shuffled_twice"] = shuffled
    summaries = {}
    for name, order in orders.items():
        truck = Vehicle.register(engine, ingestor, f"truck-{name}")
        blobs = []
        for items in plan:
            for kind, t, payload in items:
                truck.add(kind, t, payload)
            blobs.append(truck.seal())
        statuses = [ingestor.ingest(blobs[i]).status for i in order]
        assert set(statuses) <= {"committed", "duplicate"}
        summaries[name] = _summary(engine, f"truck-{name}")
    assert summaries["reversed"] == summaries["in_order"] == summaries["shuffled_twice"]
    readings, issues = summaries["in_order"]
    assert len(readings) == 18 and not any(void for *_, void in readings)
    assert [(key, n, sev, active) for key, n, _f, _l, _c, sev, _s, active in issues] == [
        ("j1939:j1939:0x00:spn110:fmi16", 6, "red_stop", False)]  # the last batch cleared it
