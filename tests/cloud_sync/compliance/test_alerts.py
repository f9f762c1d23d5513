"""Compliance webhooks: an unsafe DVIR queues ``inspection.failed`` with the report; a driving-hours violation is
queued once as ``violation`` by the alerts job (``fleet-cloud compliance alerts``), delivered signed over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cloud_sync.cli import main as cloud_main
from cloud_sync.compliance.alerts import queue_violations
from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from cloud_sync.webhooks.dispatcher import Dispatcher
from cloud_sync.webhooks.receiver import WebhookReceiver
from cloud_sync.webhooks.tables import webhook_deliveries
from tests.cloud_sync.helpers import SimDevice

ADMIN = {"Authorization": "Bearer admin-secret-for-tests-0123456789"}
ITEMS = ("service_brakes", "parking_brake", "steering", "lighting", "tires", "horn", "windshield_wipers", "mirrors",
         "coupling_devices", "wheels_and_rims", "emergency_equipment")
HOUR = 3600.0


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(environment="production", admin_token=ADMIN["Authorization"][7:])
    with TestClient(create_app(settings, engine)) as c:
        yield c


def _subscribe(client: TestClient, receiver: WebhookReceiver, types: list[str]) -> None:
    answer = client.post("/v1/webhooks", headers=ADMIN, json={"url": receiver.url, "event_types": types})
    assert answer.status_code == 201, answer.text
    receiver.secret = answer.json()["secret"]


def test_unsafe_dvir_is_delivered_as_inspection_failed(client: TestClient, engine: Engine) -> None:
    SimDevice("truck-1").register(engine, depot="north")
    assert client.post("/v1/drivers", headers=ADMIN, json={"id": "d-1", "name": "Dee"}).status_code == 201
    with WebhookReceiver("unset") as receiver:
        _subscribe(client, receiver, ["inspection.failed"])
        now = time.time()
        for defect_affects_safety in (False, True):
            items = {k: "ok" for k in ITEMS} | {"tires": "defect"}
            answer = client.post("/v1/vehicles/truck-1/dvirs", headers=ADMIN, json={
                "kind": "pre_trip", "driver_id": "d-1", "inspected_at": now - 60, "items": items,
                "defects": [{"item": "tires", "description": "cut sidewall", "affects_safety": defect_affects_safety}],
                "driver_signature": "Dee"})
            assert answer.status_code == 201, answer.text
        assert Dispatcher(engine).run_once().delivered == 1  # only the report with a safety defect
    event = receiver.events[0]
    assert event["type"] == "inspection.failed" and event["device_id"] == "truck-1"
    assert event["data"]["defects"] == [{"item": "tires", "description": "cut sidewall"}]
    assert event["data"]["driver_id"] == "d-1" and event["occurred_at"] == pytest.approx(now - 60)


def test_a_violation_is_queued_once_and_delivered(client: TestClient, engine: Engine) -> None:
    assert client.post("/v1/drivers", headers=ADMIN, json={"id": "d-2", "name": "Max"}).status_code == 201
    start = time.time() - 13 * HOUR
    # 12 hours of driving after a long rest: over the 11-hour limit of 49 CFR 395.3(a)(3) by an hour.
    answer = client.post("/v1/drivers/d-2/duty-events", headers=ADMIN, json={"events": [
        {"at": start - 11 * HOUR, "status": "off"}, {"at": start, "status": "driving"},
        {"at": start + 12 * HOUR, "status": "off"}]})
    assert answer.status_code in (200, 201), answer.text
    with WebhookReceiver("unset") as receiver:
        _subscribe(client, receiver, ["violation"])
        first = queue_violations(engine, "us_fmcsa_property")
        assert first.drivers == 1 and first.violations >= 1 and first.queued == first.violations
        assert queue_violations(engine, "us_fmcsa_property").queued == 0  # the same violations again: nothing new
        assert Dispatcher(engine).run_once().delivered == first.queued
    rules = {e["data"]["rule"]: e["data"] for e in receiver.events}
    assert rules["driving_11h"]["minutes"] == pytest.approx(60, abs=1)  # one hour over
    assert rules["driving_11h"]["window_start"] == pytest.approx(start, abs=1)
    assert all(e["type"] == "violation" and e["data"]["driver_id"] == "d-2" for e in receiver.events)
    assert all(d["cite"].startswith("49 CFR 395") for d in rules.values())


def test_alerts_command_reports_what_it_queued(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    url = engine.url.render_as_string(hide_password=False)
    assert cloud_main(["--database-url", url, "compliance", "alerts", "--pack", "us_fmcsa_property"]) == 0
    assert "0 drivers, 0 violations, 0 newly queued" in capsys.readouterr().out
    with engine.connect() as conn:
        assert conn.execute(select(webhook_deliveries.c.id)).first() is None
