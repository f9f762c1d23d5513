"""The compliance API end to end over real SQLite and PostgreSQL stores: a vehicle's trips and positions arrive
as sealed batches through the real ingest; drivers, duty events and DVIRs through TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cloud_sync.compliance.dvir import REQUIRED_ITEMS
from cloud_sync.governance import identity
from cloud_sync.governance.roles import Role
from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from tests.cloud_sync.maintenance.vehicle import Vehicle

ADMIN_TOKEN = "admin-secret-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
H = 3600.0
# Monday 5 January 2026 06:00 in Chicago (12:00 UTC): the US pack's days start at the home terminal's midnight.
T = 1_767_614_400.0


@pytest.fixture
def app(engine):
    settings = Settings(environment="production", admin_token=ADMIN_TOKEN, staff_token=None)
    with TestClient(create_app(settings, engine)) as client:
        truck = Vehicle.register(engine, client.app.state.services.ingestor, "truck-a", depot="north")
        for driver, depot in (("d-ann", "north"), ("d-bob", "north"), ("d-sue", "south")):
            _ok(client.post("/v1/drivers", headers=ADMIN, json={
                "id": driver, "name": driver, "depot": depot, "home_timezone": "America/Chicago"}), 201)
        yield client, truck


def _ok(response, code: int = 200):
    assert response.status_code == code, response.text
    return response.json()


def _token(engine, name: str, role: Role, depots: list[str]) -> dict[str, str]:
    with engine.begin() as conn:
        identity.add_user(conn, name, role, depots)
        token, _ = identity.create_token(conn, name, 3600, "tests")
    return {"Authorization": f"Bearer {token}"}


def _trip(truck: Vehicle, start: float, end: float) -> None:
    truck.add("trip_started", start + 30, {"started_at": start, "lat": None, "lon": None, "odometer_km": None})
    truck.add("trip_ended", end + 30, {"started_at": start, "ended_at": end, "duration_s": end - start,
                                       "distance_km": 1.0, "distance_source": "integrated", "fuel_l": None,
                                       "fuel_source": "none", "start_lat": None, "start_lon": None,
                                       "lat": None, "lon": None})


def test_hours_from_login_and_the_vehicles_trips_then_revised_by_a_correction(app, engine):
    client, truck = app
    # Ann logs in on the truck at 06:00 and out at 19:30; the truck drives 06:00-11:00 and 11:30-17:31.
    _ok(client.post("/v1/drivers/d-ann/duty-events", headers=ADMIN, json={"source": "vehicle", "events": [
        {"at": T, "status": "on_duty", "device_id": "truck-a"}, {"at": T + 13.5 * H, "status": "off"}]}), 201)
    url = "/v1/drivers/d-ann/hours?pack=us_fmcsa_property"
    early = _ok(client.get(f"{url}&at={T + 14 * H}", headers=ADMIN))  # the truck's trips have not arrived yet
    assert early["violations"] == [] and early["trips_used"] == 0 and early["latest_trip_arrival"] is None
    _trip(truck, T, T + 5 * H)
    _trip(truck, T + 5.5 * H, T + 11.5 * H + 60)
    truck.add("health", T + 14 * H, {"backlog_records": 120})  # the device says more is on its way
    truck.send()
    hours = _ok(client.get(f"{url}&at={T + 14 * H}", headers=ADMIN))
    assert hours["timezone"] == "America/Chicago" and hours["events_used"] == 2
    assert hours["trips_used"] == 2 and hours["latest_trip_arrival"] is not None
    assert hours["provisional_vehicles"] == ["truck-a"]
    assert [(v["rule"], v["minutes"], v["at"]) for v in hours["violations"]] == [
        ("driving_11h", 1.0, T + 11.5 * H)]
    assert hours["violations"][0]["cite"] == "49 CFR 395.3(a)(3)(i)"
    left = {t["rule"]: t["left_minutes"] for t in hours["time_left"]}
    assert left["driving_11h"] == 0 and left["cycle_70_8"] == 4200 - 13.5 * 60
    assert hours["driving_left_minutes"] == 0
    first_recorded = hours["latest_recorded_at"]
    truck.add("health", T + 14.5 * H, {"backlog_records": 0})
    truck.send()
    assert _ok(client.get(f"{url}&at={T + 14 * H}", headers=ADMIN))["provisional_vehicles"] == []
    # Staff learn the second trip was Bob's, not Ann's: Ann went off duty at 11:00. Same 'at', new answer.
    _ok(client.post("/v1/drivers/d-ann/duty-events", headers=ADMIN, json={"events": [
        {"at": T + 5 * H, "status": "off", "note": "second trip was d-bob's"}]}), 201)
    revised = _ok(client.get(f"{url}&at={T + 14 * H}", headers=ADMIN))
    assert revised["violations"] == [] and revised["events_used"] == 3
    assert revised["latest_recorded_at"] >= first_recorded
    left = {t["rule"]: t["left_minutes"] for t in revised["time_left"]}
    # 9 h off is no reset (10 h): the shift that began at 06:00 goes on, its 14 hours are over.
    assert (left["driving_11h"], left["window_14h"], left["cycle_70_8"]) == (360, 0, 4200 - 5 * 60)
    eu = _ok(client.get(f"/v1/drivers/d-ann/hours?pack=eu_561_2006&at={T + 14 * H}", headers=ADMIN))
    assert eu["timezone"] == "UTC" and eu["violations"] == [
        {"rule": "continuous_4h30", "cite": "Regulation (EC) 561/2006 Art. 7 first paragraph",
         "window_start": T, "window_end": T + 5 * H, "at": T + 4.5 * H, "minutes": 30.0,
         "detail": "more than 270 minutes of driving without a break"}]
    fleet = _ok(client.get(f"/v1/compliance/hours?pack=us_fmcsa_property&at={T + 14 * H}", headers=ADMIN))
    assert [(d["driver_id"], d["driving_left_minutes"], d["limiting_rule"]) for d in fleet["drivers"]] == [
        ("d-ann", 0, "window_14h"), ("d-bob", 480, "break_30min"), ("d-sue", 480, "break_30min")]
    north = _token(engine, "nina", Role.DISPATCHER, ["north"])
    fleet = _ok(client.get(f"/v1/compliance/hours?pack=eu_561_2006&at={T + 14 * H}", headers=north))
    assert [d["driver_id"] for d in fleet["drivers"]] == ["d-ann", "d-bob"]
    assert fleet["drivers"][0]["violations"] == 1 and fleet["drivers"][0]["violation_minutes"] == 30
    assert client.get("/v1/compliance/hours?pack=eu_561_2006&depot=south", headers=north).status_code == 403
    events = _ok(client.get("/v1/drivers/d-ann/duty-events", headers=ADMIN))["events"]
    assert [(e["status"], e["source"], e["entered_by"]) for e in events] == [
        ("on_duty", "vehicle", "settings:admin"), ("off", "staff", "settings:admin"),
        ("off", "vehicle", "settings:admin")]


def test_hours_refuses_what_it_cannot_answer(app, engine):
    client, _truck = app
    assert client.get("/v1/drivers/d-ann/hours?pack=us_fmcsa_passenger", headers=ADMIN).status_code == 422
    r = client.get("/v1/drivers/d-ann/hours?pack=us_fmcsa_property&cycle=cycle_80_9", headers=ADMIN)
    assert r.status_code == 422 and "cycle_60_7" in r.text
    assert client.get("/v1/drivers/nobody/hours?pack=eu_561_2006", headers=ADMIN).status_code == 404
    assert client.get("/v1/drivers/d-ann/hours?pack=eu_561_2006&at=1e15", headers=ADMIN).status_code == 422
    r = client.post("/v1/drivers/d-ann/duty-events", headers=ADMIN, json={"events": [{"at": 1e15, "status": "off"}]})
    assert r.status_code == 422
    r = client.post("/v1/drivers/d-ann/duty-events", headers=ADMIN, json={"events": [
        {"at": T, "status": "on_duty", "device_id": "truck-zz"}]})
    assert r.status_code == 404 and "truck-zz" in r.text
    r = client.post("/v1/drivers", headers=ADMIN, json={"id": "d-x", "name": "x", "home_timezone": "Mars/Olympus"})
    assert r.status_code == 422
    assert client.post("/v1/drivers", headers=ADMIN, json={"id": "d-ann", "name": "again"}).status_code == 422
    north_officer = _token(engine, "olga", Role.COMPLIANCE_OFFICER, ["north"])
    assert client.get("/v1/drivers/d-ann/hours?pack=eu_561_2006", headers=north_officer).status_code == 200
    assert client.get("/v1/drivers/d-sue/hours?pack=eu_561_2006", headers=north_officer).status_code == 404
    technician = _token(engine, "tom", Role.TECHNICIAN, ["north"])
    assert client.get("/v1/drivers/d-ann/hours?pack=eu_561_2006", headers=technician).status_code == 403
    packs = _ok(client.get("/v1/compliance/rule-packs", headers=technician))
    assert {p["name"] for p in packs} == {"us_fmcsa_property", "eu_561_2006"}


def _inspection(defects: list[dict], **extra) -> dict:
    items = dict.fromkeys(REQUIRED_ITEMS, "ok")
    for d in defects:
        items[d["item"]] = "defect"
    return {"kind": "post_trip", "driver_id": "d-ann", "inspected_at": T, "items": items, "defects": defects,
            "driver_signature": "Ann A.", **extra}


def test_dvir_defect_blocks_the_vehicle_until_certified_and_reviewed_and_flags_movement(app, engine):
    client, truck = app
    base = "/v1/vehicles/truck-a"
    assert _ok(client.get(f"{base}/safety", headers=ADMIN))["safe_to_operate"] is True
    brakes = {"item": "service_brakes", "description": "air leak at the trailer gladhand", "affects_safety": True}
    report = _ok(client.post(f"{base}/dvirs", headers=ADMIN, json=_inspection(
        [brakes, {"item": "horn", "description": "weak", "affects_safety": False}])), 201)
    assert report["unsafe"] is True and report["released"] is False
    # The truck moves an hour later, by its own GNSS and trip detector.
    truck.add("position", T + H, {"lat": 41.88, "lon": -87.63, "speed_mps": 0.3})
    truck.add("position", T + H + 60, {"lat": 41.881, "lon": -87.63, "speed_mps": 12.5})
    _trip(truck, T + H + 30, T + 2 * H)
    truck.send()
    safety = _ok(client.get(f"{base}/safety", headers=ADMIN))
    assert safety["status"] == "not_safe_to_operate" and safety["waiting_for"] == "certification"
    [moved] = safety["moved_while_unsafe"]
    assert moved["report_id"] == report["id"] and moved["first_moved_at"] == T + H + 60
    assert (moved["moving_positions"], moved["trips_started"]) == (1, 1)
    review = {"driver_id": "d-bob", "signature": "Bob B."}
    r = client.post(f"{base}/dvirs/{report['id']}/review", headers=ADMIN, json=review)
    assert r.status_code == 409 and "396.13(c)" in r.text
    mechanic = _token(engine, "tom", Role.TECHNICIAN, ["north"])
    certified = _ok(client.post(f"{base}/dvirs/{report['id']}/certify", headers=mechanic,
                                json={"certification": "repaired", "mechanic": "Tom T.", "note": "gladhand seal"}))
    assert certified["certified_by"] == "tom" and certified["released"] is False
    assert client.post(f"{base}/dvirs/{report['id']}/certify", headers=mechanic,
                       json={"certification": "repaired", "mechanic": "Tom T."}).status_code == 409
    safety = _ok(client.get(f"{base}/safety", headers=ADMIN))
    assert safety["waiting_for"] == "driver_review" and safety["safe_to_operate"] is False
    assert safety["moved_while_unsafe"][0]["window_end"] == certified["certified_at"]
    reviewed = _ok(client.post(f"{base}/dvirs/{report['id']}/review", headers=ADMIN, json=review))
    assert reviewed["released"] is True and reviewed["reviewed_by"] == "d-bob"
    safety = _ok(client.get(f"{base}/safety", headers=ADMIN))
    assert safety == {"device_id": "truck-a", "safe_to_operate": True, "status": "ok", "waiting_for": None,
                      "open_reports": [], "moved_while_unsafe": []}
    listed = _ok(client.get(f"{base}/dvirs", headers=ADMIN))["reports"]
    assert [(x["id"], x["mechanic"], x["review_signature"]) for x in listed] == [(report["id"], "Tom T.", "Bob B.")]


def test_dvir_is_refused_when_incomplete_or_inconsistent(app, engine):
    client, _truck = app
    url = "/v1/vehicles/truck-a/dvirs"
    body = _inspection([])
    del body["items"]["emergency_equipment"]
    r = client.post(url, headers=ADMIN, json=body)
    assert r.status_code == 422 and "emergency_equipment" in r.text and "396.11(a)(1)" in r.text
    body = _inspection([])
    body["items"]["tires"] = "defect"
    assert "without a described defect" in client.post(url, headers=ADMIN, json=body).text
    body = _inspection([])
    body["defects"] = [{"item": "tires", "description": "cut sidewall", "affects_safety": True}]
    assert "marks ok" in client.post(url, headers=ADMIN, json=body).text
    assert client.post(url, headers=ADMIN, json=_inspection([], driver_id="nobody")).status_code == 404
    assert client.post("/v1/vehicles/truck-zz/dvirs", headers=ADMIN, json=_inspection([])).status_code == 404
    clean = _ok(client.post(url, headers=ADMIN, json=_inspection([], kind="pre_trip")), 201)
    assert clean["unsafe"] is False and clean["released"] is True
    r = client.post(f"{url}/{clean['id']}/certify", headers=ADMIN, json={"certification": "repaired", "mechanic": "T"})
    assert r.status_code == 409
    minor = _ok(client.post(url, headers=ADMIN, json=_inspection(
        [{"item": "other", "description": "cab light out", "affects_safety": False}])), 201)
    assert minor["unsafe"] is False
    assert _ok(client.get("/v1/vehicles/truck-a/safety", headers=ADMIN))["safe_to_operate"] is True
