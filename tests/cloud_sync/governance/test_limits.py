"""Request size limit and input errors: too large is 413 before or while reading, never a buffered body;
malformed input is a 4xx that names the field."""

from __future__ import annotations

import asyncio

from cloud_sync.api.limits import MAX_REQUEST_BYTES
from cloud_sync.governance.roles import Role
from tests.cloud_sync.governance.conftest import DEVICE_A


def test_a_declared_oversized_body_is_refused_before_it_is_read(world):
    big = b"{" + b" " * (MAX_REQUEST_BYTES + 1) + b"}"
    r = world.client.post("/v1/users", content=big, headers={**world.auth(Role.ADMIN),
                                                              "Content-Type": "application/json"})
    assert r.status_code == 413 and str(MAX_REQUEST_BYTES) in r.json()["detail"]


def test_a_streamed_body_without_length_is_cut_at_the_limit(world):
    # Straight to the ASGI app (the test client would read the whole body first): 4 MiB offered in 64 KiB
    # chunks, no Content-Length; the app must answer 413 having pulled only what the limit allows.
    chunk, pulled, sent = 64 << 10, 0, []

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b" " * chunk, "more_body": pulled < 64}

    async def send(message):
        sent.append(message)

    token = world.tokens[Role.ADMIN].encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/users", "raw_path": b"/v1/users", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                         (b"authorization", b"Bearer " + token)],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {}}
    asyncio.run(world.client.app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert pulled <= MAX_REQUEST_BYTES // chunk + 1


def test_batches_keep_their_own_limit_and_answer_an_ack(world):
    r = world.client.post("/v1/batches", content=b"\0" * (MAX_REQUEST_BYTES + 10),
                          headers={"Content-Type": "application/octet-stream"})
    # the settings' batch limit (8 MiB) is larger: the blob is read and refused as unreadable, in ack form
    assert r.status_code == 400 and r.json()["status"] == "rejected"


def test_bad_input_is_a_4xx_naming_the_field(world):
    c, hdr = world.client, world.auth(Role.ADMIN)
    r = c.post("/v1/users", headers=hdr, json={"name": "ok", "role": "overlord"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "role"
    r = c.post("/v1/users", headers=hdr, json={"name": "has space", "role": "auditor"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "name"
    r = c.post("/v1/users", headers=hdr, json={"name": "x", "role": "dispatcher", "depots": []})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "depots"
    r = c.post("/v1/users/nobody/tokens", headers=hdr, json={"ttl_s": float("1e12")})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "ttl_s"
    r = c.post("/v1/users", headers=hdr, content=b"{not json")
    assert r.status_code == 422
    assert c.get("/v1/audit", headers=hdr, params={"after": "-1"}).status_code == 422


def test_an_unknown_query_parameter_is_refused_not_ignored(world):
    c, hdr = world.client, world.auth(Role.ADMIN)
    r = c.get(f"/v1/vehicles/{DEVICE_A}/positions", headers=hdr, params={"form": "0"})  # meant ?from=
    assert r.status_code == 422 and "'form'" in r.json()["detail"] and "from" in r.json()["detail"]
    assert c.get(f"/v1/vehicles/{DEVICE_A}/positions", headers=hdr, params={"from": "0"}).status_code == 200
    assert c.get("/healthz", params={"x": "1"}).status_code == 422
    assert c.get("/metrics", params={"format": "json"}).status_code == 200
