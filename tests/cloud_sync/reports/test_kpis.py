"""KPI report from real signed batches through the real ingest, on SQLite and PostgreSQL: pro-rata
periods, engine hours from the bus meter or trips, provisional flags, depot scoping, CSV, and the
scheduled summary delivered as a webhook."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cloud_sync.ingest import Ingestor
from cloud_sync.main import create_app
from cloud_sync.reports import build_report
from cloud_sync.reports.schedule import last_complete_period, send_due
from cloud_sync.settings import Settings
from cloud_sync.webhooks.store import create_subscription
from cloud_sync.webhooks.tables import webhook_deliveries
from edge_agent.wire import WireRecord
from tests.cloud_sync.helpers import SimDevice

ADMIN = {"Authorization": "Bearer admin-secret-for-tests-0123456789"}
DAY = 86_400.0
#: Period under test: 2026-11-23 00:00 to 2026-11-24 00:00 UTC.
START = 1_795_392_000.0
END = START + DAY


class Vehicle:
    """A device sending events the way the edge detectors shape them."""

    def __init__(self, device_id: str) -> None:
        self.dev = SimDevice(device_id)
        self.records: list[WireRecord] = []

    def _add(self, kind: str, t: float, payload: dict[str, Any]) -> None:
        self.records.append(WireRecord(self.dev.next_id, kind, 20, t, t, payload))
        self.dev.next_id += 1

    def idle(self, started: float, duration: float, fuel_l: float | None) -> None:
        self._add("idle_ended", started + duration, {"started_at": started, "duration_s": duration, "fuel_l": fuel_l,
                                                     "fuel_source": "measured" if fuel_l is not None else "none"})

    def trip(self, started: float, duration: float, km: float) -> None:
        self._add("trip_ended", started + duration, {"started_at": started, "ended_at": started + duration,
                                                     "duration_s": duration, "distance_km": km, "fuel_l": None})

    def meter(self, t: float, engine_hours: float) -> None:
        self._add("meter", t, {"engine_hours": engine_hours, "engine_hours_source": "bus", "odometer_km": 1.0})

    def backlog(self, t: float, n: int) -> None:
        self._add("backlog", t, {"backlog_records": n})

    def send(self, ingestor: Ingestor, created_at: float) -> None:
        ack = ingestor.ingest(self.dev.batch(self.records, created_at=created_at))
        assert ack.status == "committed", ack
        self.records = []


@pytest.fixture
def fleet(engine: Engine) -> Iterator[tuple[Ingestor, dict[str, Vehicle]]]:
    ingestor = Ingestor(engine)
    a, b = Vehicle("truck-a"), Vehicle("van-b")
    a.dev.register(engine, vin="1XKYDP9X0MJ000001", depot="north")
    b.dev.register(engine, vin="WF0XXXTTGXKA12345", depot="south")
    # truck-a: an idle that started 30 min before the period (half of it counts), one inside; two trips on two days.
    a.idle(START - 1800, 3600, 4.0)
    a.idle(START + 3 * 3600, 1800, None)
    a.trip(START + 4 * 3600, 2 * 3600, 120.0)
    a.trip(END - 3600, 2 * 3600, 100.0)  # half inside: 50 km, 1 h
    a.send(ingestor, created_at=END + 3 * 3600)
    # van-b: bus engine-hours meter 1000.0 at the start, 1006.5 at the end; one idle; still holds a backlog.
    b.meter(START - 60, 1000.0)
    b.meter(END - 60, 1006.5)
    b.idle(START + 3600, 3600, 2.5)
    b.trip(START + 7200, 3600, 40.0)
    b.backlog(END + 600, 1234)
    b.send(ingestor, created_at=END + 700)
    yield ingestor, {"a": a, "b": b}


def _kpis(scope: Any) -> dict[str, float | None]:
    return {name: k.value for name, k in scope.kpis.items()}


def test_figures_pro_rata_and_engine_hours_by_source(engine: Engine, fleet: Any) -> None:
    with engine.connect() as conn:
        report = build_report(conn, START, END, fuel_price=1.5, now=END + 4 * 3600)
    a, b = (_kpis(v) for v in report.vehicles)
    assert a["idle_hours"] == pytest.approx(0.5 + 0.5)
    assert a["idle_fuel_l"] == pytest.approx(2.0)  # half of 4 l; the second idle had no fuel figure
    assert a["idle_fuel_cost"] == pytest.approx(3.0)
    assert a["engine_hours"] == pytest.approx(3.0)  # from trips: 2 h + the 1 h inside
    assert a["idle_share"] == pytest.approx(1.0 / 3.0, abs=1e-4)
    assert a["distance_km"] == pytest.approx(170.0)
    assert a["days_used"] == 1.0
    assert b["engine_hours"] == pytest.approx(6.5)  # the bus meter wins over trip time
    assert b["idle_share"] == pytest.approx(1.0 / 6.5, abs=1e-4)
    assert b["backlog_records"] == 1234.0
    assert report.vehicles[0].kpis["idle_share"].breached is True  # above 0.25
    assert report.vehicles[1].kpis["idle_share"].breached is False
    fleet_kpis = _kpis(report.fleet)
    assert fleet_kpis["idle_hours"] == pytest.approx(2.0)
    assert fleet_kpis["engine_hours"] == pytest.approx(9.5)
    assert [d.key for d in report.depots] == ["north", "south"]
    assert report.vehicles[0].kpis["idle_hours"].links == (
        "/v1/vehicles/truck-a/events?kind=idle_ended&from=1795392000.0&to=1795478400.0",)


def test_provisional_while_a_vehicle_may_still_hold_data(engine: Engine, fleet: Any) -> None:
    ingestor, vehicles = fleet
    with engine.connect() as conn:
        report = build_report(conn, START, END, now=END + 4 * 3600)
    assert not report.vehicles[0].provisional
    assert report.vehicles[1].provisional and "1234 records not yet sent" in report.vehicles[1].provisional_reasons[0]
    assert report.provisional and report.depots[1].provisional and not report.depots[0].provisional
    vehicles["b"].backlog(END + 900, 0)
    vehicles["b"].send(ingestor, created_at=END + 1000)
    with engine.connect() as conn:
        assert not build_report(conn, START, END, now=END + 4 * 3600).provisional


def test_api_scopes_by_depot_and_exports_csv(engine: Engine, fleet: Any) -> None:
    settings = Settings(environment="production", admin_token=ADMIN["Authorization"][7:])
    with TestClient(create_app(settings, engine)) as client:
        made = client.post("/v1/users", headers=ADMIN, json={"name": "dora", "role": "dispatcher",
                                                              "depots": ["north"]})
        assert made.status_code == 201, made.text
        token = client.post("/v1/users/dora/tokens", headers=ADMIN, json={}).json()["token"]
        params = {"from": START, "to": END}
        mine = client.get("/v1/reports/kpis", params=params, headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200, mine.text
        assert [v["key"] for v in mine.json()["vehicles"]] == ["truck-a"]
        other = client.get("/v1/reports/kpis", params={**params, "depot": "south"},
                           headers={"Authorization": f"Bearer {token}"})
        assert other.status_code == 403
        assert client.get("/v1/reports/kpis", params={"from": END, "to": START}, headers=ADMIN).status_code == 422
        exported = client.get("/v1/reports/kpis", params={**params, "format": "csv", "fuel_price": 2},
                              headers=ADMIN)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["scope"], r["key"]) for r in rows] == [("vehicle", "truck-a"), ("vehicle", "van-b"),
                                                      ("depot", "north"), ("depot", "south"), ("fleet", "fleet")]
    assert float(rows[0]["idle_fuel_cost (currency)"]) == pytest.approx(4.0)
    assert rows[0]["idle_share_breached"] == "yes" and rows[1]["provisional"] == "yes"


def test_scheduled_summary_goes_once_provisional_then_once_final(engine: Engine, fleet: Any) -> None:
    ingestor, vehicles = fleet
    assert last_complete_period("day", END + 4 * 3600) == (START, END)
    with engine.begin() as conn:
        create_subscription(conn, "http://127.0.0.1:9/hook", ["report.ready"])
    first = send_due(engine, "day", now=END + 4 * 3600)
    assert (first.final, first.queued) == (False, 1)
    assert send_due(engine, "day", now=END + 5 * 3600).queued == 0
    vehicles["b"].backlog(END + 900, 0)
    vehicles["b"].send(ingestor, created_at=END + 1000)
    final = send_due(engine, "day", now=END + 6 * 3600)
    assert (final.final, final.queued) == (True, 1)
    with engine.connect() as conn:
        payloads = conn.execute(select(webhook_deliveries.c.event_key, webhook_deliveries.c.payload)
                                .order_by(webhook_deliveries.c.id)).all()
    assert [k for k, _ in payloads] == ["report:day:2026-11-23:provisional", "report:day:2026-11-23:final"]
    summary = payloads[1][1]
    assert summary["final"] is True and summary["fleet"]["kpis"]["idle_hours"] == pytest.approx(2.0)
    assert "idle_share" in summary["depots"][0]["breached"]


def test_workflow_counts_come_from_maintenance_and_compliance(engine: Engine, fleet: Any) -> None:
    ingestor, vehicles = fleet
    # A fault reported by truck-a opens a maintenance issue (ingest's commit hook) awaiting review.
    vehicles["a"]._add("dtc_appeared", END + 100, {"protocol": "j1939", "spn": 110, "fmi": 16, "oc": 1,
                                                  "source": "j1939:0x00", "lamps": {"amber_warning": "on"}})
    vehicles["a"].send(ingestor, created_at=END + 200)
    settings = Settings(environment="production", admin_token=ADMIN["Authorization"][7:])
    with TestClient(create_app(settings, engine)) as client:
        assert client.post("/v1/drivers", headers=ADMIN, json={"id": "d-1", "name": "Dee", "depot": "south"}
                           ).status_code == 201
        items = {"service_brakes": "defect"} | {k: "ok" for k in (
            "parking_brake", "steering", "lighting", "tires", "horn", "windshield_wipers", "mirrors",
            "coupling_devices", "wheels_and_rims", "emergency_equipment")}
        dvir = client.post("/v1/vehicles/van-b/dvirs", headers=ADMIN, json={
            "kind": "pre_trip", "driver_id": "d-1", "inspected_at": END + 300, "items": items,
            "defects": [{"item": "service_brakes", "description": "air leak", "affects_safety": True}],
            "driver_signature": "Dee"})
        assert dvir.status_code == 201, dvir.text
        report = client.get("/v1/reports/kpis", params={"from": START, "to": END}, headers=ADMIN).json()
    by_vehicle = {v["key"]: {k["name"]: k for k in v["kpis"]} for v in report["vehicles"]}
    assert by_vehicle["truck-a"]["faults_awaiting_review"]["value"] == 1.0
    assert by_vehicle["truck-a"]["faults_awaiting_review"]["breached"] is True
    assert by_vehicle["van-b"]["faults_awaiting_review"]["value"] == 0.0
    assert by_vehicle["van-b"]["inspections_blocking"]["value"] == 1.0
    assert by_vehicle["truck-a"]["inspections_blocking"]["value"] == 0.0
    fleet_kpis = {k["name"]: k["value"] for k in report["fleet"]["kpis"]}
    assert fleet_kpis["faults_awaiting_review"] == 1.0 and fleet_kpis["inspections_blocking"] == 1.0
