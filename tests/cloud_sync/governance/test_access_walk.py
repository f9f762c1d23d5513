"""Walk every route of the app with every role (and with no token): what ``ACCESS`` allows is reachable,
everything else is refused, and a route missing from ``ACCESS`` fails this test (and 403s in production)."""

from __future__ import annotations

import re

import fastapi.routing
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from cloud_sync.api.access import ACCESS, DOCS_ROUTES, LOCATION, LOCATION_STRIPPED, route_key
from cloud_sync.governance.roles import FLEET_WIDE, SEES_LOCATION, Role
from tests.cloud_sync.governance.conftest import ADMIN_TOKEN, DEVICE_A, DEVICE_B, STAFF_TOKEN

#: Values for path parameters: a device the depot-A users may see; otherwise values that pass the usual patterns.
SAMPLE_PARAMS = {"device": DEVICE_A, "token_id": "0" * 16, "name": "nobody"}
FALLBACK_PARAM = "1"


def _flat_routes(app) -> list[tuple[str, BaseRoute]]:
    """(effective path, route) of every route: newer FastAPI keeps included routers nested in ``app.routes``."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:
        return [(getattr(r, "path", ""), r) for r in app.routes]
    return [(ctx.path or "", ctx.original_route) for ctx in iter_contexts(app.routes)]


def _api_routes(app) -> list[tuple[str, str, APIRoute]]:
    out: list[tuple[str, str, APIRoute]] = []
    for path, route in _flat_routes(app):
        if isinstance(route, APIRoute):
            # authorize() keys on the route's own path: an include_router(prefix=...) would make them differ
            assert route.path == path, f"{path}: declare routes with their full path (no include prefix)"
            out.extend((method, path, route) for method in sorted(route.methods or ()))
    return out


def _concrete(path: str, **override: str) -> str:
    values = {**SAMPLE_PARAMS, **override}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), FALLBACK_PARAM), path)


def test_every_route_is_declared_and_every_declaration_is_a_route(world):
    app = world.client.app
    routes: set[str] = {route_key(m, p) for m, p, _ in _api_routes(app)}
    assert sorted(routes - set(ACCESS)) == [], "declare these routes in cloud_sync/api/access.py ACCESS"
    assert sorted(set(ACCESS) - routes) == [], "ACCESS names routes the app does not have (stale lines)"
    others = [(path, r) for path, r in _flat_routes(app) if not isinstance(r, APIRoute)]
    assert {path for path, _ in others} <= DOCS_ROUTES, "only the schema and its viewers may bypass authorize"
    assert all(isinstance(r, Route) for _, r in others)  # no mounts: a mounted app would bypass authorize


def test_every_route_with_every_role_allowed_and_denied_both_ways(world):
    client = world.client
    checked = 0
    for method, path, _route in _api_routes(client.app):
        rule = ACCESS[route_key(method, path)]
        url = _concrete(path)
        anonymous = client.request(method, url)
        if rule.public:
            assert anonymous.status_code not in (401, 403), (method, path, anonymous.text)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        wrong = client.request(method, url, headers={"Authorization": "Bearer flt_not-a-token"})
        assert wrong.status_code == 401, (method, path)
        for role in Role:
            r = client.request(method, url, headers=world.auth(role))
            if role in rule.roles:
                assert r.status_code not in (401, 403), (role, method, path, r.text)
            else:
                assert r.status_code == 403 and r.json()["detail"].startswith(f"role {role.value} "), (
                    role, method, path, r.text)
            checked += 1
        # the bootstrap tokens from the settings: a fleet-wide admin and a fleet-wide dispatcher
        for token, role in ((ADMIN_TOKEN, Role.ADMIN), (STAFF_TOKEN, Role.DISPATCHER)):
            r = client.request(method, url, headers={"Authorization": f"Bearer {token}"})
            assert (r.status_code not in (401, 403)) == (role in rule.roles), (token, method, path, r.text)
    assert checked >= len(Role) * 5  # the walk really walked


def test_a_route_missing_from_the_table_is_refused_even_to_admins(world):
    app = world.client.app

    def undeclared() -> dict[str, str]:
        return {"secret": "leaked"}

    app.router.add_api_route("/v1/undeclared", undeclared, methods=["GET"])
    r = world.client.get("/v1/undeclared", headers=world.auth(Role.ADMIN))
    assert r.status_code == 403 and "not declared in cloud_sync/api/access.py" in r.text
    assert "leaked" not in r.text
    r = world.client.get("/v1/undeclared")
    assert r.status_code == 403


def test_routes_addressing_a_device_hide_other_depots_vehicles_from_every_depot_scoped_role(world):
    client, checked = world.client, 0
    for method, path, _route in _api_routes(client.app):
        rule = ACCESS[route_key(method, path)]
        if rule.device is None:
            continue
        for role in rule.roles - FLEET_WIDE:  # the fixture's users of these roles see depot A only
            r = client.request(method, _concrete(path, **{rule.device: DEVICE_B}), headers=world.auth(role))
            assert r.status_code == 404 and DEVICE_B in r.json()["detail"], (role, method, path, r.text)
            checked += 1
    assert checked > 10


def test_only_roles_that_may_see_location_are_served_it():
    for key, rule in ACCESS.items():
        if rule.personal == LOCATION and key not in LOCATION_STRIPPED:
            assert rule.roles <= SEES_LOCATION, f"{key}: {sorted(rule.roles - SEES_LOCATION)} may not see location"
    assert Role.TECHNICIAN not in SEES_LOCATION


def test_read_only_roles_change_nothing():
    for key, rule in ACCESS.items():
        if not key.startswith(("GET ", "HEAD ")):
            assert not rule.roles & {Role.EXECUTIVE, Role.AUDITOR}, f"{key}: executives and auditors only read"
