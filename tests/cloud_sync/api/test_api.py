"""The HTTP API through FastAPI's TestClient, over real SQLite and PostgreSQL stores."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from cloud_sync.store import make_engine
from edge_agent.wire import WireRecord, batch_hash
from tests.cloud_sync.helpers import T0, SimDevice

ADMIN = {"Authorization": "Bearer admin-secret-for-tests-0123456789"}
STAFF = {"Authorization": "Bearer staff-secret-for-tests-0123456789"}
OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def client(engine):
    settings = Settings(environment="production", admin_token=ADMIN["Authorization"][7:],
                        staff_token=STAFF["Authorization"][7:], max_batch_bytes=200_000)
    with TestClient(create_app(settings, engine)) as c:
        yield c


def _register(client, dev: SimDevice, **extra) -> None:
    r = client.post("/v1/devices", headers=ADMIN, json={"id": dev.device_id, "public_key_pem": dev.public_pem,
                                                        "vin": "1M8GDM9AXKP042788", "profile": "heavy_truck_j1939",
                                                        **extra})
    assert r.status_code == 201, r.text


def _post(client, blob: bytes, headers=OCTET):
    return client.post("/v1/batches", content=blob, headers=headers)


def test_register_device_needs_the_admin_token_and_a_real_key(client):
    dev = SimDevice("van-7")
    body = {"id": dev.device_id, "public_key_pem": dev.public_pem}
    assert client.post("/v1/devices", json=body).status_code == 401
    assert client.post("/v1/devices", json=body, headers=STAFF).status_code == 403  # staff cannot register
    bad = client.post("/v1/devices", headers=ADMIN, json={**body, "public_key_pem": "-----BEGIN nonsense"})
    assert bad.status_code == 422 and "public_key_pem" in bad.text
    assert client.post("/v1/devices", headers=ADMIN, json={**body, "id": "no spaces/allowed"}).status_code == 422
    assert client.post("/v1/devices", headers=ADMIN, json=["not", "an", "object"]).status_code == 422
    r = client.post("/v1/devices", headers=ADMIN, json=body)
    assert r.status_code == 201 and r.json()["id"] == "van-7" and "public_key_pem" not in r.json()
    assert client.post("/v1/devices", headers=ADMIN, json=body).status_code == 409


def test_post_batch_commits_then_duplicates(client):
    dev = SimDevice("truck-1")
    _register(client, dev)
    blob = dev.batch(dev.records(random.Random(1), 40))
    r = _post(client, blob)
    assert r.status_code == 200 and r.json() == {"device_id": "truck-1", "boot_epoch": 1, "seq": 0,
                                                 "status": "committed", "reason": "", "stored": 40,
                                                 "batch_hash": batch_hash(blob).hex()}
    r = _post(client, blob)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"


def test_post_batch_rejections_are_4xx_with_the_reason(client):
    dev = SimDevice("truck-2")
    _register(client, dev)
    rng = random.Random(2)
    stranger = SimDevice("stranger")
    r = _post(client, stranger.batch(stranger.records(rng, 3)))
    assert (r.status_code, r.json()["reason"]) == (403, "unknown_device")
    forged = SimDevice("truck-2")  # right id, wrong key
    r = _post(client, forged.batch(forged.records(rng, 3)))
    assert (r.status_code, r.json()["reason"]) == (403, "bad_signature")
    r = _post(client, b"\x00garbage")
    assert r.status_code == 400 and r.json()["status"] == "rejected" and r.json()["reason"] == "bad_magic"
    r = _post(client, b"")
    assert r.status_code == 400
    r = _post(client, dev.batch(dev.records(rng, 3)), headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["reason"]) == (415, "wrong_media_type")
    r = _post(client, b"FTWB" + bytes(300_000))
    assert (r.status_code, r.json()["reason"]) == (413, "too_large")
    metrics = client.get("/metrics", params={"format": "json"}).json()
    assert metrics["rejected"] == {"unknown_device": 1, "bad_signature": 1, "bad_magic": 1, "truncated": 1,
                                   "wrong_media_type": 1, "too_large": 1}
    assert metrics["batches_committed"] == 0
    text = client.get("/metrics").text
    assert 'fleet_cloud_rejected_total{reason="bad_signature"} 1' in text
    assert "# TYPE fleet_cloud_batches_received_total counter" in text


def test_post_batch_chain_broken_is_409(client):
    dev = SimDevice("truck-3")
    _register(client, dev)
    rng = random.Random(3)
    assert _post(client, dev.batch(dev.records(rng, 3))).status_code == 200
    dev.prev = bytes([1]) * 32
    r = _post(client, dev.batch(dev.records(rng, 3)))
    assert (r.status_code, r.json()["reason"]) == (409, "chain_broken")


def _fill(client, dev: SimDevice, batches: int = 3, n: int = 100) -> None:
    rng = random.Random(4)
    for _ in range(batches):
        assert _post(client, dev.batch(dev.records(rng, n))).status_code == 200


def test_staff_reads_need_a_token(client):
    for path in ("/v1/vehicles", "/v1/vehicles/x/positions", "/v1/vehicles/x/events", "/v1/vehicles/x/health"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_vehicles_list_latest_position_and_status(client):
    seen, idle = SimDevice("truck-4"), SimDevice("spare-1")
    _register(client, seen)
    _register(client, idle, depot="north")
    _fill(client, seen)
    r = client.get("/v1/vehicles", headers=STAFF)
    assert r.status_code == 200
    by_id = {v["device"]["id"]: v for v in r.json()["data"]}
    assert r.json()["count"] == 2
    assert by_id["spare-1"]["status"] == "never_seen" and by_id["spare-1"]["last_position"] is None
    assert by_id["spare-1"]["device"]["depot"] == "north"
    assert by_id["truck-4"]["status"] == "online"  # its batches arrived just now (cloud clock)
    pos = client.get("/v1/vehicles/truck-4/positions", headers=STAFF, params={"limit": 1000}).json()["data"]
    assert by_id["truck-4"]["last_position"] == max(pos, key=lambda p: (p["device_time"], p["record_id"]))


def test_positions_cursor_pagination_walks_everything_once_in_order(client):
    dev = SimDevice("truck-5")
    _register(client, dev)
    _fill(client, dev)  # 300 records, 30 positions
    everything = client.get("/v1/vehicles/truck-5/positions", headers=ADMIN, params={"limit": 1000}).json()
    assert everything["next_cursor"] is None and len(everything["data"]) == 30
    pages, cursor = [], None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/vehicles/truck-5/positions", headers=STAFF, params=params).json()
        pages.append(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    walked = [p for page in pages for p in page]
    assert walked == everything["data"]
    keys = [(p["device_time"], p["record_id"]) for p in walked]
    assert keys == sorted(keys) and len(set(keys)) == 30
    # a time range is half-open: [from, to)
    t_from, t_to = walked[5]["device_time"], walked[12]["device_time"]
    ranged = client.get("/v1/vehicles/truck-5/positions", headers=STAFF,
                        params={"from": t_from, "to": t_to}).json()["data"]
    assert ranged == [p for p in walked if t_from <= p["device_time"] < t_to]
    assert 0 < len(ranged) < 30 and ranged[0]["device_time"] == t_from


def test_events_filter_by_kind_and_paginate(client):
    dev = SimDevice("truck-6")
    _register(client, dev)
    recs = [WireRecord(i, kind, 20, T0 + i, T0 + i + 0.5, {"i": i})
            for i, kind in enumerate(["idle_started", "idle_ended", "geofence_enter"] * 5, start=1)]
    recs.append(WireRecord(100, "sample", 10, T0, T0, {"signal": "s", "value": 1, "unit": "", "source": "x"}))
    assert _post(client, dev.batch(recs)).status_code == 200
    allev = client.get("/v1/vehicles/truck-6/events", headers=STAFF).json()
    assert len(allev["data"]) == 15  # samples are not events
    idle = client.get("/v1/vehicles/truck-6/events", headers=STAFF, params={"kind": "idle_started", "limit": 3})
    body = idle.json()
    assert [e["payload"]["i"] for e in body["data"]] == [1, 4, 7] and body["next_cursor"]
    more = client.get("/v1/vehicles/truck-6/events", headers=STAFF,
                      params={"kind": "idle_started", "limit": 3, "cursor": body["next_cursor"]}).json()
    assert [e["payload"]["i"] for e in more["data"]] == [10, 13] and more["next_cursor"] is None


def test_health_reports_last_batch_gaps_skew_and_kinds(client):
    dev = SimDevice("truck-7")
    _register(client, dev)
    rng = random.Random(5)
    blobs = [dev.batch(dev.records(rng, 20), created_at=T0 + 100 * i) for i in range(3)]
    _post(client, blobs[0])
    _post(client, blobs[2])
    h = client.get("/v1/vehicles/truck-7/health", headers=STAFF).json()
    assert h["batches_committed"] == 2 and h["records_received"] == 40
    assert [(g["seq_from"], g["seq_to"], g["filled_at"]) for g in h["open_gaps"]] == [(1, 1, None)]
    assert h["last_seq"] == 2 and h["last_batch_created_at"] == T0 + 200
    assert h["clock_skew_s"] == pytest.approx(h["last_batch_received_at"] - (T0 + 200))
    assert sum(h["records_by_kind"].values()) == 40 and h["records_by_kind"]["position"] == 4
    assert h["dropped_by_kind"] == {}
    _post(client, blobs[1])
    h = client.get("/v1/vehicles/truck-7/health", headers=STAFF).json()
    assert h["open_gaps"] == [] and len(h["filled_gaps"]) == 1
    payloads: list[dict[str, Any]] = [
        {"reason": "quota", "dropped": {"sample": 1200, "position": 3}, "count": 1203},
        {"reason": "disk_full", "dropped": {"sample": 5}, "count": 5},
        {"reason": "odd", "dropped": "not a dict"}]
    reports = [WireRecord(900 + i, "drop_report", 40, T0 + i, T0 + i, p) for i, p in enumerate(payloads)]
    _post(client, dev.batch(reports))
    h = client.get("/v1/vehicles/truck-7/health", headers=STAFF).json()
    assert h["dropped_by_kind"] == {"position": 3, "sample": 1205}
    assert h["records_by_kind"]["drop_report"] == 3


@pytest.mark.parametrize("path,params", [
    ("/v1/vehicles/truck-8/positions", {"cursor": "not-base64-json!"}),
    ("/v1/vehicles/truck-8/positions", {"cursor": "WzFd"}),  # base64 of [1]: not a (time, id) pair
    ("/v1/vehicles/truck-8/positions", {"cursor": "WyJuYW4iLDFd"}),  # ["nan", 1]
    ("/v1/vehicles/truck-8/positions", {"from": "10", "to": "5"}),
    ("/v1/vehicles/truck-8/positions", {"from": "nan"}),
    ("/v1/vehicles/truck-8/positions", {"from": "yesterday"}),
    ("/v1/vehicles/truck-8/positions", {"limit": "0"}),
    ("/v1/vehicles/truck-8/positions", {"limit": "100000"}),
    ("/v1/vehicles/truck-8/events", {"kind": ""}),
    ("/v1/vehicles/bad%20id/health", {}),
    ("/v1/vehicles/nobody/health", {}),
    ("/v1/vehicles/nobody/positions", {}),
])
def test_malformed_staff_queries_are_4xx_never_5xx(client, path, params):
    _register(client, SimDevice("truck-8"))
    r = client.get(path, headers=STAFF, params=params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


def test_openapi_documents_every_route_with_summaries(client):
    doc = client.get("/openapi.json").json()
    ops = {(m, p): spec for p, item in doc["paths"].items() for m, spec in item.items()}
    for key in [("post", "/v1/batches"), ("post", "/v1/devices"), ("get", "/v1/vehicles"),
                ("get", "/v1/vehicles/{device}/positions"), ("get", "/v1/vehicles/{device}/events"),
                ("get", "/v1/vehicles/{device}/health"), ("get", "/metrics")]:
        assert ops[key]["summary"], key
    assert "application/octet-stream" in ops[("post", "/v1/batches")]["requestBody"]["content"]
    assert "409" in ops[("post", "/v1/batches")]["responses"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_store_unavailable_is_503_not_500(tmp_path):
    missing = tmp_path / "no-such-dir" / "cloud.db"
    app = create_app(Settings(), make_engine(f"sqlite:///{missing}"), run_migrations=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        dev = SimDevice("offline")
        r = c.post("/v1/batches", content=dev.batch(dev.records(random.Random(1), 3)), headers=OCTET)
        assert r.status_code == 503 and r.headers["Retry-After"]
