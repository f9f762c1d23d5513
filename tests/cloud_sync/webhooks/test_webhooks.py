"""Webhooks end to end: real signed batches through the real ingest, the queue in SQLite and PostgreSQL,
the dispatcher POSTing over real HTTP to the signature-checking receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from cloud_sync.webhooks.dispatcher import Dispatcher, backoff_s
from cloud_sync.webhooks.receiver import WebhookReceiver
from cloud_sync.webhooks.signing import SignatureError, sign, verify
from cloud_sync.webhooks.tables import webhook_deliveries
from edge_agent.wire import WireRecord
from tests.cloud_sync.helpers import T0, SimDevice

ADMIN = {"Authorization": "Bearer admin-secret-for-tests-0123456789"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(environment="production", admin_token=ADMIN["Authorization"][7:])
    with TestClient(create_app(settings, engine)) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver("set-by-test") as r:
        yield r


def _subscribe(client: TestClient, receiver: WebhookReceiver, types: list[str]) -> dict[str, Any]:
    answer = client.post("/v1/webhooks", headers=ADMIN, json={"url": receiver.url, "event_types": types})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    assert body["secret"].startswith("whsec_")
    receiver.secret = body["secret"]
    return body


def _events(dev: SimDevice, kinds: list[str], t0: float = T0) -> list[WireRecord]:
    out = []
    for i, kind in enumerate(kinds):
        rid = dev.next_id
        dev.next_id += 1
        if kind == "position":
            out.append(WireRecord(rid, "position", 10, t0 + i, t0 + i, {"lat": 52.37, "lon": 4.89}))
        else:
            out.append(WireRecord(rid, kind, 20, t0 + i, t0 + i, {"fence": "depot", "n": i}))
    return out


def _ingest(client: TestClient, blob: bytes) -> str:
    ack = client.app.state.services.ingestor.ingest(blob)  # type: ignore[attr-defined]
    return str(ack.status)


def _register(client: TestClient, dev: SimDevice) -> None:
    answer = client.post("/v1/devices", headers=ADMIN,
                         json={"id": dev.device_id, "public_key_pem": dev.public_pem, "vin": "1XKYDP9X0MJ000001"})
    assert answer.status_code == 201, answer.text


def test_signature_round_trip_and_every_refusal() -> None:
    body = b'{"type":"ping"}'
    header = sign("s3cret", 1_000, body)
    assert verify("s3cret", header, body, now=1_010) == 1_000
    for secret, hdr, data, now, why in [
        ("other", header, body, 1_010, "does not match"),
        ("s3cret", header, body + b" ", 1_010, "does not match"),
        ("s3cret", header, body, 1_000 + 301, "more than 300 s"),
        ("s3cret", None, body, 1_010, "no Fleet-Signature"),
        ("s3cret", "v1=abc", body, 1_010, "no integer t="),
        ("s3cret", "garbage", body, 1_010, "malformed"),
    ]:
        with pytest.raises(SignatureError, match=why):
            verify(secret, hdr, data, now=now)
    # During a secret rotation a sender may send two v1 digests: either matching is enough.
    rotated = f"{header},v1={sign('new', 1_000, body).split('v1=')[1]}"
    assert verify("new", rotated, body, now=1_000) == 1_000


def test_vehicle_events_are_delivered_once_signed_and_in_order(client: TestClient, receiver: WebhookReceiver,
                                                                engine: Engine) -> None:
    _subscribe(client, receiver, ["geofence.entered", "fault.opened", "idle"])
    dev = SimDevice("truck-1")
    _register(client, dev)
    records = _events(dev, ["position", "geofence_entered", "position", "dtc_appeared", "idle_ended",
                            "geofence_exited"])
    blob = dev.batch(records)
    assert _ingest(client, blob) == "committed"
    assert _ingest(client, blob) == "duplicate"
    # The same records re-sent in a new batch (the edge lost the ack and re-batched): stored once, queued once.
    assert _ingest(client, dev.batch(records[1:4])) == "committed"
    result = Dispatcher(engine).run_once()
    assert result.delivered == 3
    assert [e["type"] for e in receiver.events] == ["geofence.entered", "fault.opened", "idle"]
    first = receiver.events[0]
    assert first["device_id"] == "truck-1" and first["vin"] == "1XKYDP9X0MJ000001"
    assert first["data"]["kind"] == "geofence_entered" and first["data"]["fence"] == "depot"
    assert first["occurred_at"] == records[1].timestamp
    assert receiver.refused == []
    assert Dispatcher(engine).run_once().delivered == 0  # nothing left


def test_a_failing_receiver_holds_that_vehicles_later_events_not_others(
        client: TestClient, receiver: WebhookReceiver, engine: Engine) -> None:
    _subscribe(client, receiver, ["geofence.entered", "geofence.exited"])
    a, b = SimDevice("truck-a"), SimDevice("truck-b")
    for dev in (a, b):
        _register(client, dev)
    assert _ingest(client, a.batch(_events(a, ["geofence_entered", "geofence_exited"]))) == "committed"
    dispatcher = Dispatcher(engine, backoff_base_s=10.0, backoff_cap_s=10.0)
    now = time.time()  # deliveries are due from when ingest queued them (the cloud's clock)
    receiver.fail_next = 1
    assert dispatcher.run_once(now=now).failed == 1  # truck-a's first event fails; its second must wait
    assert _ingest(client, b.batch(_events(b, ["geofence_entered"]))) == "committed"
    assert dispatcher.run_once(now=now + 1).delivered == 1  # truck-b is not held back by truck-a
    assert [e["device_id"] for e in receiver.events] == ["truck-b"]
    assert dispatcher.run_once(now=now + 5).delivered == 0  # truck-a still backing off
    assert dispatcher.run_once(now=now + 20).delivered == 2  # the head, then the one it held back
    assert [(e["device_id"], e["type"], e["attempt"]) for e in receiver.events[1:]] == [
        ("truck-a", "geofence.entered", 2), ("truck-a", "geofence.exited", 1)]


def test_dead_letters_are_listed_and_replayed(client: TestClient, receiver: WebhookReceiver, engine: Engine) -> None:
    sub = _subscribe(client, receiver, ["fault.opened"])
    dev = SimDevice("truck-1")
    _register(client, dev)
    assert _ingest(client, dev.batch(_events(dev, ["dtc_appeared", "dtc_appeared"]))) == "committed"
    dispatcher = Dispatcher(engine, max_attempts=2, backoff_base_s=1.0, backoff_cap_s=1.0)
    now = time.time()
    receiver.fail_next = 2
    assert dispatcher.run_once(now=now).failed == 1
    second_pass = dispatcher.run_once(now=now + 10)
    assert (second_pass.dead, second_pass.delivered) == (1, 1)  # the next one goes after the dead one
    dead = client.get(f"/v1/webhooks/{sub['id']}/deliveries", params={"state": "dead"}, headers=ADMIN).json()
    assert len(dead["items"]) == 1 and dead["items"][0]["last_status"] == 503 and dead["items"][0]["attempts"] == 2
    delivery = dead["items"][0]["id"]
    assert client.post(f"/v1/webhooks/deliveries/{delivery}/replay", headers=ADMIN).status_code == 200
    assert client.post(f"/v1/webhooks/deliveries/{delivery}/replay", headers=ADMIN).status_code == 409
    assert dispatcher.run_once().delivered == 1
    assert len(receiver.events) == 2 and receiver.events[1]["id"] == dead["items"][0]["event_key"]


def test_a_wrong_secret_is_refused_by_the_receiver_and_recorded(client: TestClient, receiver: WebhookReceiver,
                                                                engine: Engine) -> None:
    sub = _subscribe(client, receiver, ["ping"])
    receiver.secret = "not-the-subscriptions-secret"
    assert client.post(f"/v1/webhooks/{sub['id']}/ping", headers=ADMIN).status_code == 202
    assert Dispatcher(engine).run_once().failed == 1
    assert receiver.events == [] and "does not match" in receiver.refused[0]
    log = client.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=ADMIN).json()["items"]
    assert log[0]["state"] == "pending" and log[0]["last_status"] == 401


def test_stopped_subscription_gets_nothing_more(client: TestClient, receiver: WebhookReceiver, engine: Engine) -> None:
    sub = _subscribe(client, receiver, ["idle"])
    dev = SimDevice("truck-1")
    _register(client, dev)
    assert client.delete(f"/v1/webhooks/{sub['id']}", headers=ADMIN).status_code == 200
    assert client.delete(f"/v1/webhooks/{sub['id']}", headers=ADMIN).status_code == 404
    assert _ingest(client, dev.batch(_events(dev, ["idle_ended"]))) == "committed"
    assert Dispatcher(engine).run_once().delivered == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar() == 0
    listed = client.get("/v1/webhooks", headers=ADMIN).json()
    assert [(s["id"], s["active"]) for s in listed] == [(sub["id"], False)] and "secret" not in listed[0]


@pytest.mark.parametrize("body", [
    {"url": "http://127.0.0.1:1/x", "event_types": ["no.such.event"]},
    {"url": "ftp://example.com/x", "event_types": ["idle"]},
    {"url": "http://127.0.0.1:1/x", "event_types": []},
    {"event_types": ["idle"]},
])
def test_bad_subscriptions_are_422(tmp_path: Path, body: dict[str, Any]) -> None:
    # Validation happens before the store: one backend is enough.
    settings = Settings(environment="production", admin_token=ADMIN["Authorization"][7:],
                        database_url=f"sqlite:///{tmp_path / 'cloud.db'}")
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/webhooks", headers=ADMIN, json=body)
    assert answer.status_code == 422 and answer.json()["detail"]


def test_backoff_doubles_to_its_cap_with_bounded_jitter() -> None:
    import random

    rng = random.Random(7)
    delays = [backoff_s(n, 30.0, 3600.0, rng) for n in range(1, 10)]
    for n, d in enumerate(delays, start=1):
        base = min(30.0 * 2 ** (n - 1), 3600.0)
        assert base <= d <= base * 1.25
