"""Who may call which route: the ONE table (``ACCESS``) and the ONE dependency that enforces it
(``cloud_sync.api.deps.authorize``).

``create_app`` installs ``authorize`` on the whole app, so it runs before every route. It looks the matched
route up in ``ACCESS`` by ``"METHOD /path/template"``; a route that is not declared is refused with 403
(deny by default), whatever its own dependencies say. ``tests/cloud_sync/governance/test_access_walk.py`` walks
every route of the app with every role and fails on a route missing here.

How to declare a new route (one line in ``ACCESS``, next to its siblings)::

    "GET /v1/work-orders/{order_id}": allow(TECHNICIAN, FLEET_MANAGER, ADMIN, scope=ROUTE),
    "GET /v1/vehicles/{device}/trips": allow(*SEES_LOCATION, device="device", personal=LOCATION),
    "POST /v1/config-pushes": allow(ADMIN, FLEET_MANAGER, scope=ROUTE),
    "GET /v1/things": allow(*EVERY_ROLE),   # fleet-wide data that is not about a depot

- ``device="<path param>"``: the path parameter holding a device id; ``authorize`` resolves it to the vehicle's
  depot and answers 404 (not 403: the id's existence is not revealed) when the caller may not see that depot,
  or when there is no such device.
- ``scope=ROUTE``: the data is per depot but not addressed by a device path parameter (a list, an id of a work
  order, a depot in the body): the route takes ``caller: CallerDep`` and filters with ``caller.sees_depot(d)``
  or calls ``check_depot(caller, d)``. ``scope=FLEET`` (the default): the route's data belongs to no depot.
- ``personal=LOCATION`` (or another category): the route reads personal data; every call is appended to the
  audit trail (who, which subject, which query) BEFORE the route runs, and the route fails if that append fails.
- Every authenticated call that is not GET/HEAD (an administrative action) is appended to the audit trail too,
  before the route runs and again with its outcome (``"POST /v1/users -> done"``, ``"... -> 409"``).
- ``public("why")``: no token (the credential is something else, e.g. a device signature); say why.

In the route, ``caller: CallerDep`` (from ``deps``) gives the ``Principal`` (``actor``, ``role``, ``depots``).
``AdminDep`` and ``StaffDep`` are now the same ``CallerDep``, kept so older routers still import: the table decides.

Tokens: a staff API token (``fleet-cloud create-token``), or the bootstrap tokens from the settings:
``FLEET_CLOUD_ADMIN_TOKEN`` is a fleet-wide admin (``settings:admin``), ``FLEET_CLOUD_STAFF_TOKEN`` a fleet-wide
dispatcher (``settings:staff``), as they were before users existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud_sync.governance.roles import SEES_LOCATION, Role

ADMIN, FLEET_MANAGER, DISPATCHER, TECHNICIAN = Role.ADMIN, Role.FLEET_MANAGER, Role.DISPATCHER, Role.TECHNICIAN
COMPLIANCE_OFFICER, INSTALLER, AUDITOR, EXECUTIVE = (Role.COMPLIANCE_OFFICER, Role.INSTALLER, Role.AUDITOR,
                                                     Role.EXECUTIVE)
EVERY_ROLE: tuple[Role, ...] = tuple(Role)
FLEET, ROUTE = "fleet", "route"
LOCATION = "location"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    public: bool = False
    scope: str = FLEET  # FLEET | ROUTE; a device path parameter implies depot scope
    device: str | None = None  # path parameter that holds a device id, resolved to its depot
    personal: str | None = None  # category of personal data read (audited), e.g. LOCATION
    why: str = ""

    @property
    def depot_scoped(self) -> bool:
        return self.device is not None or self.scope == ROUTE


def allow(*roles: Role, scope: str = FLEET, device: str | None = None, personal: str | None = None) -> Rule:
    if not roles:
        raise ValueError("allow() needs at least one role; use public() for routes without a token")
    if scope not in (FLEET, ROUTE):
        raise ValueError(f"scope must be FLEET or ROUTE, not {scope!r}")
    return Rule(frozenset(roles), scope=scope, device=device, personal=personal)


def public(why: str) -> Rule:
    return Rule(frozenset(), public=True, why=why)


_READERS = (ADMIN, FLEET_MANAGER, DISPATCHER, TECHNICIAN, COMPLIANCE_OFFICER, INSTALLER, EXECUTIVE)
#: Maintenance: technicians and managers work issues and work orders; dispatchers and executives see them.
_MAINT_READERS = (ADMIN, FLEET_MANAGER, TECHNICIAN, DISPATCHER, EXECUTIVE)
_MAINT_WRITERS = (ADMIN, FLEET_MANAGER, TECHNICIAN)
#: Compliance: drivers' hours and DVIRs. Technicians certify repairs; dispatchers enter duty events and reports.
_COMPL_READERS = (ADMIN, FLEET_MANAGER, COMPLIANCE_OFFICER, DISPATCHER)
_COMPL_WRITERS = (ADMIN, FLEET_MANAGER, COMPLIANCE_OFFICER, DISPATCHER)
DRIVING_HOURS = "driving_hours"

#: Every route of the app: "METHOD /path/template" -> who may call it. Keep sorted by path within a block.
ACCESS: dict[str, Rule] = {
    # operations and device-facing routes (no staff token)
    "GET /healthz": public("liveness probe; says only that the store answers"),
    "GET /metrics": public("Prometheus scrape; ingest counters only, no vehicle data"),
    "POST /v1/batches": public("devices: the Ed25519 signature of the batch is the credential"),
    "POST /v1/enroll": public("devices: the single-use installer token in the body is the credential"),
    "POST /v1/devices/{device_id}/certificate": public("devices: the renewal request signed by the device's "
                                                       "signing key is the credential"),
    "POST /v1/devices/{device_id}/signing-key": public("devices: the rotation statement signed by the device's "
                                                       "current signing key is the credential"),
    # provisioning
    "POST /v1/devices": allow(ADMIN, INSTALLER, scope=ROUTE),
    "POST /v1/installer-tokens": allow(ADMIN, FLEET_MANAGER, scope=ROUTE),
    # vehicles: the list shows last positions only to SEES_LOCATION roles (the route strips them otherwise)
    "GET /v1/vehicles": allow(*_READERS, scope=ROUTE, personal=LOCATION),
    "GET /v1/vehicles/{device}/events": allow(*SEES_LOCATION, device="device", personal=LOCATION),
    "GET /v1/vehicles/{device}/health": allow(*_READERS, device="device"),
    "GET /v1/vehicles/{device}/positions": allow(*SEES_LOCATION, device="device", personal=LOCATION),
    # signed config pushes (cloud_sync.api.config): geofences are depot places, not anyone's location
    "GET /v1/config-signing-key": public("the fleet's config-signing PUBLIC key, which devices pin"),
    "GET /v1/vehicles/{device}/config": allow(*_READERS, device="device"),
    "PUT /v1/vehicles/{device}/config": allow(ADMIN, FLEET_MANAGER, device="device"),
    "POST /v1/vehicles/{device}/config/publish": allow(ADMIN, FLEET_MANAGER, device="device"),
    # governance: users, tokens, audit trail
    "GET /v1/audit": allow(ADMIN, AUDITOR),
    "GET /v1/audit/verify": allow(ADMIN, AUDITOR),
    "DELETE /v1/tokens/{token_id}": allow(ADMIN),
    "GET /v1/users": allow(ADMIN, AUDITOR),
    "POST /v1/users": allow(ADMIN),
    "POST /v1/users/{name}/tokens": allow(ADMIN),
    # data subject rights (cloud_sync.governance.subjects): a driver's whole record, their locations included
    "GET /v1/subjects/drivers/{driver}/export": allow(ADMIN, personal=LOCATION),
    "POST /v1/subjects/drivers/{driver}/erase": allow(ADMIN),
    # reports: KPIs per vehicle and depot (no location); depot-scoped callers see their depots only
    "GET /v1/reports/kpis": allow(ADMIN, FLEET_MANAGER, EXECUTIVE, DISPATCHER, TECHNICIAN, COMPLIANCE_OFFICER,
                                  scope=ROUTE),
    # webhooks: endpoints, secrets and delivery payloads are fleet-wide integration settings
    "GET /v1/webhooks": allow(ADMIN),
    "POST /v1/webhooks": allow(ADMIN),
    "DELETE /v1/webhooks/{webhook_id}": allow(ADMIN),
    "GET /v1/webhooks/{webhook_id}/deliveries": allow(ADMIN),
    "POST /v1/webhooks/{webhook_id}/ping": allow(ADMIN),
    "POST /v1/webhooks/deliveries/{delivery_id}/replay": allow(ADMIN),
    # maintenance (cloud_sync.api.maintenance): programs are fleet-wide; issues, work orders and fleet lists
    # are scoped by the vehicle's depot in the route (scope=ROUTE); no location is served
    "GET /v1/maintenance/config": allow(*_MAINT_READERS),
    "PUT /v1/maintenance/config": allow(ADMIN),
    "POST /v1/maintenance/derive": allow(ADMIN),
    "GET /v1/maintenance/issues": allow(*_MAINT_READERS, scope=ROUTE),
    "GET /v1/maintenance/issues/{issue_id}": allow(*_MAINT_READERS, scope=ROUTE),
    "POST /v1/maintenance/issues/{issue_id}/acknowledge": allow(*_MAINT_WRITERS, scope=ROUTE),
    "POST /v1/maintenance/issues/{issue_id}/dismiss": allow(*_MAINT_WRITERS, scope=ROUTE),
    "GET /v1/maintenance/issues/{issue_id}/evidence": allow(*_MAINT_READERS, scope=ROUTE),
    "GET /v1/maintenance/programs": allow(*_MAINT_READERS, scope=ROUTE),
    "POST /v1/maintenance/programs": allow(ADMIN, FLEET_MANAGER),
    "GET /v1/maintenance/programs/{program_id}": allow(*_MAINT_READERS, scope=ROUTE),
    "POST /v1/maintenance/programs/{program_id}/tasks": allow(ADMIN, FLEET_MANAGER),
    "POST /v1/maintenance/programs/{program_id}/vehicles": allow(ADMIN, FLEET_MANAGER, scope=ROUTE),
    "GET /v1/maintenance/risk": allow(*_MAINT_READERS, scope=ROUTE),
    "GET /v1/maintenance/services": allow(*_MAINT_READERS, scope=ROUTE),
    "GET /v1/maintenance/work-orders": allow(*_MAINT_READERS, scope=ROUTE),
    "POST /v1/maintenance/work-orders": allow(*_MAINT_WRITERS, scope=ROUTE),
    "GET /v1/maintenance/work-orders/{order_id}": allow(*_MAINT_READERS, scope=ROUTE),
    "POST /v1/maintenance/work-orders/{order_id}/complete": allow(*_MAINT_WRITERS, scope=ROUTE),
    "POST /v1/maintenance/work-orders/{order_id}/lines": allow(*_MAINT_WRITERS, scope=ROUTE),
    "POST /v1/maintenance/work-orders/{order_id}/start": allow(*_MAINT_WRITERS, scope=ROUTE),
    "GET /v1/vehicles/{device}/meters": allow(*_MAINT_READERS, device="device"),
    "POST /v1/vehicles/{device}/meters": allow(*_MAINT_WRITERS, device="device"),
    "POST /v1/vehicles/{device}/meters/{reading_id}/void": allow(*_MAINT_WRITERS, device="device"),
    "GET /v1/vehicles/{device}/risk/reviews": allow(*_MAINT_READERS, device="device"),
    "POST /v1/vehicles/{device}/risk/reviews": allow(*_MAINT_WRITERS, device="device"),
    "GET /v1/vehicles/{device}/services": allow(*_MAINT_READERS, device="device"),
    "POST /v1/vehicles/{device}/services/{task_id}/snooze": allow(*_MAINT_WRITERS, device="device"),
    "DELETE /v1/vehicles/{device}/services/{task_id}/snooze": allow(*_MAINT_WRITERS, device="device"),
    # compliance (cloud_sync.api.compliance): a driver's duty events and hours are personal data (audited);
    # driver routes check the driver's depot themselves (scope=ROUTE)
    "GET /v1/compliance/hours": allow(*_COMPL_READERS, scope=ROUTE, personal=DRIVING_HOURS),
    "GET /v1/compliance/rule-packs": allow(*EVERY_ROLE),
    "POST /v1/drivers": allow(ADMIN, FLEET_MANAGER, COMPLIANCE_OFFICER, scope=ROUTE),
    "GET /v1/drivers/{driver}/duty-events": allow(*_COMPL_READERS, scope=ROUTE, personal=DRIVING_HOURS),
    "POST /v1/drivers/{driver}/duty-events": allow(*_COMPL_WRITERS, scope=ROUTE),
    "GET /v1/drivers/{driver}/hours": allow(*_COMPL_READERS, scope=ROUTE, personal=DRIVING_HOURS),
    "GET /v1/vehicles/{device}/dvirs": allow(*_COMPL_READERS, TECHNICIAN, device="device"),
    "POST /v1/vehicles/{device}/dvirs": allow(*_COMPL_WRITERS, device="device"),
    "POST /v1/vehicles/{device}/dvirs/{report_id}/certify": allow(ADMIN, FLEET_MANAGER, TECHNICIAN, device="device"),
    "POST /v1/vehicles/{device}/dvirs/{report_id}/review": allow(*_COMPL_WRITERS, device="device"),
    "GET /v1/vehicles/{device}/safety": allow(*_READERS, device="device"),
}

#: LOCATION routes open to roles outside ``SEES_LOCATION`` because the route strips the location for them.
LOCATION_STRIPPED = frozenset({"GET /v1/vehicles"})

#: Routes Starlette serves itself (no FastAPI dependencies run there): the schema and its viewers.
#: They describe the API, never data. The walking test checks nothing else bypasses ``authorize``.
DOCS_ROUTES = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def route_key(method: str, path: str) -> str:
    return f"{method} {path}"


def annotate_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Write each operation's line of ``ACCESS`` into the OpenAPI schema (in place): who may call it, and
    ``security: []`` on public operations (the app-wide bearer scheme does not apply to them)."""
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            rule = ACCESS.get(route_key(method.upper(), path))
            if rule is None:
                continue
            if rule.public:
                op["security"] = []
                op.get("responses", {}).pop("401", None)
                note = f"Access: public ({rule.why})."
            else:
                note = f"Access: {', '.join(sorted(r.value for r in rule.roles))}"
                if rule.depot_scoped:
                    note += "; limited to the caller's depots"
                if rule.personal:
                    note += f"; reads personal data ({rule.personal}): every call is audited"
                note += "."
            op["description"] = f"{op.get('description', '')}\n\n{note}".strip()
    # A 422 is a list of field errors (pydantic) or one sentence (a route's own check, e.g. an unreadable key):
    # say so, so that clients and the schemathesis fuzz test hold the API to what it really answers.
    validation = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
    if validation is not None and "detail" in validation.get("properties", {}):
        detail = validation["properties"]["detail"]
        validation["properties"]["detail"] = {"title": "Detail", "anyOf": [
            {k: v for k, v in detail.items() if k != "title"}, {"type": "string"}]}
        # ... on every route, also where a route documented its own 422 as a plain message
        for operations in schema.get("paths", {}).values():
            for op in operations.values():
                unprocessable = op.get("responses", {}).get("422")
                if unprocessable is not None:
                    unprocessable["content"] = {"application/json": {"schema": {
                        "$ref": "#/components/schemas/HTTPValidationError"}}}
    return schema
