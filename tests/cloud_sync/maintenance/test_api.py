"""The maintenance API end to end over real SQLite and PostgreSQL stores: real sealed batches in (``POST /v1/batches``
and the app's Ingestor), staff actions through TestClient, depot scoping through governance tokens."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from cloud_sync.governance import identity
from cloud_sync.governance.roles import Role
from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from tests.cloud_sync.maintenance.vehicle import AMBER, RED, Vehicle, dtc, meter, sample

ADMIN_TOKEN = "admin-secret-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = 86_400.0
# Device times sit in the recent past so that "now" (the default of staff actions) comes after them.
BASE = float(int(time.time() - 30 * DAY))


@pytest.fixture
def app(engine):
    settings = Settings(environment="production", admin_token=ADMIN_TOKEN, staff_token=None)
    with TestClient(create_app(settings, engine)) as client:
        ingestor = client.app.state.services.ingestor
        north = Vehicle.register(engine, ingestor, "truck-a", depot="north")
        south = Vehicle.register(engine, ingestor, "truck-b", depot="south")
        yield client, north, south


def _token(engine, name: str, role: Role, depots: list[str]) -> dict[str, str]:
    with engine.begin() as conn:
        identity.add_user(conn, name, role, depots)
        token, _ = identity.create_token(conn, name, 3600, "tests")
    return {"Authorization": f"Bearer {token}"}


def _ok(response, code: int = 200):
    assert response.status_code == code, response.text
    return response.json()


def _program(client) -> tuple[int, int]:
    program = _ok(client.post("/v1/maintenance/programs", headers=ADMIN, json={"name": "Heavy truck A"}), 201)
    task = _ok(client.post(f"/v1/maintenance/programs/{program['id']}/tasks", headers=ADMIN, json={
        "name": "Oil and filter", "odometer_km": {"every": 20000, "soon": 1000}, "engine_hours": {"every": 500},
        "calendar_days": {"every": 365, "soon": 30}}), 201)
    assert [t["meter"] for t in task["triggers"]] == ["odometer_km", "engine_hours", "calendar"]
    assert task["triggers"][1]["soon"] == 50.0  # default: the last tenth of the interval
    return program["id"], task["id"]


def test_fault_to_work_order_to_reopen_with_services_meters_and_risk(app, engine):
    client, truck, _south = app
    truck.add("meter", BASE, meter(100_000.0, 4_000.0))
    truck.add("meter", BASE + 10 * DAY, meter(105_000.0, 4_100.0))
    for i in range(20):
        truck.add("sample", BASE + 10 * DAY - 19 + i, sample("coolant_temp", 100.0 + i, "degC"), priority=10)
    truck.add("dtc_appeared", BASE + 10 * DAY, dtc(110, 16, RED, BASE + 10 * DAY))
    assert _ok(client.post("/v1/batches", content=truck.seal(),
                           headers={"Content-Type": "application/octet-stream"}))["status"] == "committed"
    truck.add("dtc_appeared", BASE + 10 * DAY + 100, dtc(110, 16, AMBER, BASE + 10 * DAY + 100))
    truck.add("dtc_appeared", BASE + 10 * DAY + 200, dtc(3226, 4, AMBER, BASE + 10 * DAY + 200))
    truck.send()

    # issues opened by the ingest itself, deduplicated, with severity and evidence
    issues = _ok(client.get("/v1/maintenance/issues", headers=ADMIN))["data"]
    coolant = next(i for i in issues if i["spn"] == 110)
    assert (coolant["occurrences"], coolant["severity"], coolant["status"], coolant["active"]) == (
        2, "red_stop", "open", True)
    detail = _ok(client.get(f"/v1/maintenance/issues/{coolant['id']}", headers=ADMIN))
    assert len(detail["recent_occurrences"]) == 2
    first = detail["recent_occurrences"][-1]["record_id"]
    evidence = _ok(client.get(f"/v1/maintenance/issues/{coolant['id']}/evidence", headers=ADMIN,
                              params={"record_id": first}))
    assert evidence[0]["signal"] == "coolant_temp" and evidence[0]["points"][-1] == [BASE + 10 * DAY, 119.0]

    # a program applied to the whole depot, last serviced at BASE: state and forecast from recent use
    program_id, task_id = _program(client)
    assigned = _ok(client.post(f"/v1/maintenance/programs/{program_id}/vehicles", headers=ADMIN,
                               json={"depot": "north", "last_done_at": BASE}))
    assert assigned["assigned"] == ["truck-a"]
    at = BASE + 10 * DAY
    svc = _ok(client.get("/v1/vehicles/truck-a/services", headers=ADMIN, params={"at": at}))["data"][0]
    odo, hours, cal = svc["triggers"]
    assert svc["state"] == "ok" and odo["remaining"] == 15_000 and odo["daily_rate"] == 500.0
    assert odo["forecast_at"] == at + 30 * DAY and hours["forecast_at"] == at + 40 * DAY
    assert svc["next_due_at"] == at + 30 * DAY and cal["due_at"] == BASE + 365 * DAY

    # manual readings: backwards refused unless void; a late one goes in its place, not on top
    back = client.post("/v1/vehicles/truck-a/meters", headers=ADMIN,
                       json={"meter": "odometer_km", "value": 104_000, "read_at": at + 50})
    assert back.status_code == 409 and "goes backwards" in back.json()["detail"]
    void = _ok(client.post("/v1/vehicles/truck-a/meters", headers=ADMIN, json={
        "meter": "odometer_km", "value": 104_000, "read_at": at + 50, "void": True, "void_reason": "misread"}), 201)
    assert void["void"] is True
    _ok(client.post("/v1/vehicles/truck-a/meters", headers=ADMIN,
                    json={"meter": "odometer_km", "value": 102_000, "read_at": BASE + 5 * DAY}), 201)
    readings = _ok(client.get("/v1/vehicles/truck-a/meters", headers=ADMIN, params={"meter": "odometer_km"}))
    assert [r["value"] for r in readings["data"]] == [100_000, 102_000, 105_000, 104_000]
    assert readings["current"]["odometer_km"] == 105_000
    typo = _ok(client.post("/v1/vehicles/truck-a/meters", headers=ADMIN,  # 10x: a digit too many
                           json={"meter": "odometer_km", "value": 1_050_000, "read_at": at + 60}), 201)
    truck.add("meter", at + 120, meter(105_010.0, 4_100.2))
    truck.send()
    blocked = _ok(client.get("/v1/vehicles/truck-a/meters", headers=ADMIN, params={"from": at + 100}))["data"]
    assert [(r["meter"], r["void"]) for r in blocked] == [("odometer_km", True), ("engine_hours", False)]
    assert _ok(client.post(f"/v1/vehicles/truck-a/meters/{typo['id']}/void", headers=ADMIN,
                           json={"reason": "typo"}))["void"] is True
    assert _ok(client.get("/v1/vehicles/truck-a/meters", headers=ADMIN))["current"]["odometer_km"] == 105_010
    assert client.post(f"/v1/vehicles/truck-b/meters/{typo['id']}/void", headers=ADMIN,
                       json={"reason": "x"}).status_code == 404

    # acknowledge, dismiss the other, turn the coolant issue into a work order and complete it
    assert _ok(client.post(f"/v1/maintenance/issues/{coolant['id']}/acknowledge", headers=ADMIN))[
        "acknowledged_by"] == "settings:admin"
    other_issue = next(i for i in issues if i["spn"] == 3226)
    assert client.post(f"/v1/maintenance/issues/{other_issue['id']}/dismiss", headers=ADMIN,
                       json={"reason": ""}).status_code == 422
    _ok(client.post(f"/v1/maintenance/issues/{other_issue['id']}/dismiss", headers=ADMIN,
                    json={"reason": "sensor known flaky, replaced next month"}))
    order = _ok(client.post("/v1/maintenance/work-orders", headers=ADMIN, json={
        "device_id": "truck-a", "title": "Coolant temperature fault", "issue_ids": [coolant["id"]], "lines": [
            {"kind": "task", "description": "oil and filter", "service_task_id": task_id},
            {"kind": "part", "description": "coolant sensor", "part_number": "CS-110", "quantity": 2,
             "unit_cost": 45.5},
            {"kind": "labour", "description": "diagnose and replace", "hours": 1.5, "rate": 80}]}), 201)
    assert (order["parts_cost"], order["labour_cost"], order["labour_hours"], order["total_cost"]) == (
        91.0, 120.0, 1.5, 211.0)
    assert client.post("/v1/maintenance/work-orders", headers=ADMIN, json={
        "device_id": "truck-a", "title": "again", "issue_ids": [other_issue["id"]]}).status_code == 409
    assert _ok(client.post(f"/v1/maintenance/work-orders/{order['id']}/start", headers=ADMIN))["status"] == \
        "in_progress"
    done_at = BASE + 11 * DAY
    bad = client.post(f"/v1/maintenance/work-orders/{order['id']}/complete", headers=ADMIN,
                      json={"completed_at": done_at, "odometer_km": 99_000})
    assert bad.status_code == 409 and "goes backwards" in bad.text  # and nothing of the completion was kept
    done = _ok(client.post(f"/v1/maintenance/work-orders/{order['id']}/complete", headers=ADMIN,
                           json={"completed_at": done_at, "odometer_km": 105_500, "engine_hours": 4_110}))
    assert done["status"] == "completed" and done["meters_at_completion"]["odometer_km"] == 105_500
    assert client.post(f"/v1/maintenance/work-orders/{order['id']}/complete", headers=ADMIN,
                       json={}).status_code == 409
    resolved = _ok(client.get(f"/v1/maintenance/issues/{coolant['id']}", headers=ADMIN))
    assert resolved["status"] == "resolved" and resolved["resolved_by_work_order_id"] == order["id"]
    svc = _ok(client.get("/v1/vehicles/truck-a/services", headers=ADMIN, params={"at": done_at}))["data"][0]
    assert svc["done_meters"]["odometer_km"] == 105_500 and svc["triggers"][0]["remaining"] == 20_000
    assert svc["work_order_id"] == order["id"]

    # the fault comes back on the first drive after the repair: the issue reopens, saying the fix did not hold
    truck.add("trip_started", done_at + 3600, {"started_at": done_at + 3500, "odometer_km": 105_510.0})
    truck.add("dtc_appeared", done_at + 7200, dtc(110, 16, RED, done_at + 7200))
    truck.add("dtc_appeared", done_at + 7300, dtc(3226, 4, AMBER, done_at + 7300))
    truck.send()
    back_again = _ok(client.get(f"/v1/maintenance/issues/{coolant['id']}", headers=ADMIN))
    assert (back_again["status"], back_again["reopen_count"], back_again["occurrences"]) == ("open", 1, 3)
    assert "fix did not hold" in back_again["note"] and f"#{order['id']}" in back_again["note"]
    still = _ok(client.get(f"/v1/maintenance/issues/{other_issue['id']}", headers=ADMIN))
    assert (still["status"], still["occurrences"]) == ("dismissed", 2)

    # risk: every part shown; staff outcome stored with the score it judged
    ranking = _ok(client.get("/v1/maintenance/risk", headers=ADMIN, params={"at": done_at + 8000}))["data"]
    assert [v["device_id"] for v in ranking] == ["truck-a", "truck-b"] and ranking[1]["score"] == 0
    parts = {p["name"]: p for p in ranking[0]["parts"]}
    assert (parts["red_lamp"]["count"], parts["red_lamp"]["points"]) == (1, 40.0)
    assert parts["recurring_faults"]["count"] == 1 and f"#{coolant['id']}" in parts["recurring_faults"]["detail"]
    assert ranking[0]["score"] == pytest.approx(sum(p["points"] for p in ranking[0]["parts"]))
    review = _ok(client.post("/v1/vehicles/truck-a/risk/reviews", headers=ADMIN,
                             json={"outcome": "confirmed", "note": "sensor harness chafed"}), 201)
    assert review["parts"] and review["reviewed_by"] == "settings:admin"
    assert client.post("/v1/vehicles/truck-a/risk/reviews", headers=ADMIN,
                       json={"outcome": "rescheduled"}).status_code == 422
    assert _ok(client.get("/v1/vehicles/truck-a/risk/reviews", headers=ADMIN))["data"][0]["id"] == review["id"]

    # a technician of the other depot sees none of it
    tech = _token(engine, "tech-south", Role.TECHNICIAN, ["south"])
    assert _ok(client.get("/v1/maintenance/issues", headers=tech))["count"] == 0
    assert client.get(f"/v1/maintenance/issues/{coolant['id']}", headers=tech).status_code == 404
    assert client.get(f"/v1/maintenance/work-orders/{order['id']}", headers=tech).status_code == 404
    assert client.post("/v1/maintenance/work-orders", headers=tech,
                       json={"device_id": "truck-a", "title": "x"}).status_code == 404
    assert [v["device_id"] for v in _ok(client.get("/v1/maintenance/risk", headers=tech))["data"]] == ["truck-b"]
    assert client.get("/v1/vehicles/truck-a/services", headers=tech).status_code == 404


def test_snooze_config_and_a_fault_returning_after_enough_drives_is_a_new_issue(app):
    client, truck, _other = app
    program_id, task_id = _program(client)
    _ok(client.post(f"/v1/maintenance/programs/{program_id}/vehicles", headers=ADMIN,
                    json={"devices": ["truck-a"], "last_done_at": BASE - 400 * DAY}))
    assert client.post(f"/v1/maintenance/programs/{program_id}/vehicles", headers=ADMIN,
                       json={"devices": ["nope"]}).status_code == 404
    assert client.post(f"/v1/maintenance/programs/{program_id}/tasks", headers=ADMIN,
                       json={"name": "nothing"}).status_code == 422
    assert client.post(f"/v1/maintenance/programs/{program_id}/tasks", headers=ADMIN,
                       json={"name": "bad", "odometer_km": {"every": 100, "soon": 100}}).status_code == 422
    truck.add("meter", BASE, meter(50_000.0, 2_000.0))  # the first readings come after the program was applied
    truck.add("meter", BASE + DAY, meter(50_100.0, 2_001.0))
    truck.send()
    services = _ok(client.get("/v1/maintenance/services", headers=ADMIN, params={"state": "overdue"}))
    assert [(s["device_id"], s["task_id"]) for s in services["data"]] == [("truck-a", task_id)]
    odo = services["data"][0]["triggers"][0]  # counted from the first reading, not from zero
    assert (odo["last"], odo["remaining"], odo["state"]) == (50_000, 19_900, "ok")
    assert services["data"][0]["triggers"][2]["state"] == "overdue"  # 400 days since the last service
    until = time.time() + 7 * DAY
    r = client.post(f"/v1/vehicles/truck-a/services/{task_id}/snooze", headers=ADMIN,
                    json={"until": until, "reason": "booked at the dealer next week"})
    assert r.status_code == 204, r.text
    svc = _ok(client.get("/v1/vehicles/truck-a/services", headers=ADMIN))["data"][0]
    assert (svc["state"], svc["snoozed_until"]) == ("snoozed", until)
    assert client.delete(f"/v1/vehicles/truck-a/services/{task_id}/snooze", headers=ADMIN).status_code == 204
    assert _ok(client.get("/v1/vehicles/truck-a/services", headers=ADMIN))["data"][0]["state"] == "overdue"

    assert _ok(client.put("/v1/maintenance/config", headers=ADMIN, json={"reopen_within_trips": 1}))[
        "reopen_within_trips"] == 1
    truck.add("dtc_appeared", BASE, dtc(100, 1, AMBER, BASE))
    truck.send()
    issue = _ok(client.get("/v1/maintenance/issues", headers=ADMIN))["data"][0]
    order = _ok(client.post("/v1/maintenance/work-orders", headers=ADMIN, json={
        "device_id": "truck-a", "title": "oil pressure", "issue_ids": [issue["id"]]}), 201)
    _ok(client.post(f"/v1/maintenance/work-orders/{order['id']}/complete", headers=ADMIN,
                    json={"completed_at": BASE + DAY}))
    for n in range(2):  # two drive cycles: more than the one configured
        truck.add("trip_started", BASE + DAY + (n + 1) * 3600, {"started_at": BASE + DAY, "odometer_km": None})
    truck.add("dtc_appeared", BASE + 2 * DAY, dtc(100, 1, AMBER, BASE + 2 * DAY))
    truck.send()
    issues = _ok(client.get("/v1/maintenance/issues", headers=ADMIN))["data"]
    assert [(i["status"], i["reopen_count"]) for i in issues] == [("open", 0), ("resolved", 0)]
    assert _ok(client.post("/v1/maintenance/derive", headers=ADMIN)) == {"outcomes": {}}
