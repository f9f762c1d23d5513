"""Depot scoping and role capabilities through the HTTP API, with real stored batches."""

from __future__ import annotations

import random

from sqlalchemy import select, text

from cloud_sync.governance import audit, identity
from cloud_sync.governance.roles import Role
from tests.cloud_sync.governance.conftest import ADMIN_TOKEN, DEPOT_A, DEVICE_A, DEVICE_B

OCTET = {"Content-Type": "application/octet-stream"}


def _drive(world) -> None:
    rng = random.Random(7)
    for dev in world.devices.values():
        r = world.client.post("/v1/batches", content=dev.batch(dev.records(rng, 20)), headers=OCTET)
        assert r.status_code == 200 and r.json()["status"] == "committed", r.text


def test_a_dispatcher_sees_positions_of_their_depot_only(world):
    _drive(world)
    c, hdr = world.client, world.auth(Role.DISPATCHER)
    mine = c.get(f"/v1/vehicles/{DEVICE_A}/positions", headers=hdr)
    assert mine.status_code == 200 and mine.json()["data"]
    other = c.get(f"/v1/vehicles/{DEVICE_B}/positions", headers=hdr)
    assert other.status_code == 404 and "positions" not in other.text  # as if it did not exist
    assert c.get("/v1/vehicles/no-such-truck/positions", headers=hdr).status_code == 404
    assert c.get(f"/v1/vehicles/{DEVICE_B}/events", headers=hdr).status_code == 404
    listed = c.get("/v1/vehicles", headers=hdr).json()
    assert [v["device"]["id"] for v in listed["data"]] == [DEVICE_A]
    assert listed["data"][0]["last_position"] is not None
    # a fleet-wide admin sees both
    both = c.get("/v1/vehicles", headers=world.auth(Role.ADMIN)).json()
    assert sorted(v["device"]["id"] for v in both["data"]) == [DEVICE_A, DEVICE_B]
    assert c.get(f"/v1/vehicles/{DEVICE_B}/positions", headers=world.auth(Role.ADMIN)).status_code == 200


def test_a_technician_sees_health_but_never_location(world):
    _drive(world)
    c, hdr = world.client, world.auth(Role.TECHNICIAN)
    assert c.get(f"/v1/vehicles/{DEVICE_A}/health", headers=hdr).status_code == 200
    assert c.get(f"/v1/vehicles/{DEVICE_B}/health", headers=hdr).status_code == 404
    assert c.get(f"/v1/vehicles/{DEVICE_A}/positions", headers=hdr).status_code == 403
    assert c.get(f"/v1/vehicles/{DEVICE_A}/events", headers=hdr).status_code == 403
    listed = c.get("/v1/vehicles", headers=hdr).json()["data"]
    assert [v["device"]["id"] for v in listed] == [DEVICE_A] and listed[0]["last_position"] is None
    executive = c.get("/v1/vehicles", headers=world.auth(Role.EXECUTIVE)).json()["data"]
    assert all(v["last_position"] is None for v in executive)


def test_an_installer_registers_devices_in_their_depot_only(world):
    c, hdr = world.client, world.auth(Role.INSTALLER)
    pem = world.devices[DEVICE_A].public_pem
    assert c.post("/v1/devices", headers=hdr, json={"id": "van-1", "public_key_pem": pem, "depot": DEPOT_A}
                  ).status_code == 201
    other = c.post("/v1/devices", headers=hdr, json={"id": "van-2", "public_key_pem": pem, "depot": "depot-b"})
    assert other.status_code == 403 and "depot-b" in other.text
    nowhere = c.post("/v1/devices", headers=hdr, json={"id": "van-3", "public_key_pem": pem})
    assert nowhere.status_code == 403
    fm = c.post("/v1/installer-tokens", headers=world.auth(Role.FLEET_MANAGER), json={"depot": "depot-b"})
    assert fm.status_code == 403


def test_tokens_are_stored_hashed_and_revocation_expiry_and_disabling_refuse_them(world):
    c = world.client
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    r = c.post("/v1/users", headers=admin, json={"name": "dana", "role": "dispatcher", "depots": [DEPOT_A]})
    assert r.status_code == 201 and r.json()["depots"] == [DEPOT_A]
    assert c.post("/v1/users", headers=admin, json={"name": "dana", "role": "dispatcher"}).status_code == 409
    assert c.post("/v1/users", headers=admin, json={"name": "x", "role": "overlord"}).status_code == 422
    made = c.post("/v1/users/dana/tokens", headers=admin, json={"ttl_s": 600, "label": "laptop"})
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    assert token.startswith(identity.TOKEN_PREFIX)
    mine = {"Authorization": f"Bearer {token}"}
    assert c.get(f"/v1/vehicles/{DEVICE_A}/health", headers=mine).status_code == 200
    with world.engine.connect() as conn:  # the database holds the hash, never the token
        dump = "\n".join(str(row) for row in conn.execute(select(identity.api_tokens)))
        assert token not in dump and identity.hash_token(token).hex() not in token
    assert c.delete(f"/v1/tokens/{token_id}", headers=admin).status_code == 200
    assert c.get(f"/v1/vehicles/{DEVICE_A}/health", headers=mine).status_code == 401
    assert c.delete(f"/v1/tokens/{token_id}", headers=admin).status_code == 404
    with world.engine.begin() as conn:
        expired, _ = identity.create_token(conn, "dana", 60, now=0.0)
        live, _ = identity.create_token(conn, "dana", 600)
    assert c.get(f"/v1/vehicles/{DEVICE_A}/health", headers={"Authorization": f"Bearer {expired}"}
                 ).status_code == 401
    assert c.get(f"/v1/vehicles/{DEVICE_A}/health", headers={"Authorization": f"Bearer {live}"}).status_code == 200
    with world.engine.begin() as conn:
        assert identity.disable_user(conn, "dana")
    assert c.get(f"/v1/vehicles/{DEVICE_A}/health", headers={"Authorization": f"Bearer {live}"}).status_code == 401


def test_location_reads_and_admin_actions_are_in_the_audit_trail(world):
    _drive(world)
    c = world.client
    with world.engine.connect() as conn:
        before = audit.stored_head(conn).seq
    c.get(f"/v1/vehicles/{DEVICE_A}/positions", headers=world.auth(Role.DISPATCHER), params={"limit": 5})
    c.get(f"/v1/vehicles/{DEVICE_A}/health", headers=world.auth(Role.DISPATCHER))  # not personal: not audited
    c.get("/v1/vehicles", headers=world.auth(Role.TECHNICIAN))  # served without positions: not audited
    c.post("/v1/users", headers=world.auth(Role.ADMIN), json={"name": "erin", "role": "auditor"})
    c.post("/v1/users", headers=world.auth(Role.ADMIN), json={"name": "erin", "role": "auditor"})  # taken: 409
    with world.engine.connect() as conn:
        entries = audit.page(conn, before)
        assert audit.verify(conn).ok
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == audit.stored_head(conn).seq
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("dispatcher-1", "GET /v1/vehicles/{device}/positions", DEVICE_A),
        ("admin-1", "POST /v1/users", None), ("admin-1", "POST /v1/users -> done", None),
        ("admin-1", "POST /v1/users", None), ("admin-1", "POST /v1/users -> 409", None)]
    assert entries[2].detail == {"outcome": "done", "request_entry": entries[1].seq}
    assert entries[0].detail["query"] == {"limit": "5"} and entries[0].detail["personal"] == "location"
    assert entries[0].detail["depots"] == [DEPOT_A]


def test_audited_reads_keep_working_while_batches_are_being_committed(world):
    """A location read appends to the audit trail; on SQLite that write must wait for the lock, not fail
    because the request's earlier reads pinned an older snapshot while ingest committed."""
    import threading

    dev = world.devices[DEVICE_A]
    rng, stop, statuses = random.Random(11), threading.Event(), []

    def ingest() -> None:
        while not stop.is_set():
            world.client.post("/v1/batches", content=dev.batch(dev.records(rng, 20)), headers=OCTET)

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        for _ in range(60):
            statuses.append(world.client.get(f"/v1/vehicles/{DEVICE_A}/positions",
                                             headers=world.auth(Role.DISPATCHER)).status_code)
    finally:
        stop.set()
        writer.join()
    assert statuses == [200] * 60
    with world.engine.connect() as conn:
        assert audit.verify(conn).ok
