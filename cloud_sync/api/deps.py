"""Dependencies shared by the routers (``Annotated`` aliases, as in the FastAPI full-stack template).

The app state holds one ``Services`` (settings, engine, ingestor); ``create_app`` puts it there.

``authorize`` is the one dependency that enforces the access table ``cloud_sync.api.access.ACCESS``;
``create_app`` installs it on the whole app. Routes that need to know who calls take ``caller: CallerDep``.
``AdminDep`` and ``StaffDep`` are the same ``CallerDep`` (older routers import them): which roles may call a
route is decided by its line in ``ACCESS``, never by the dependency a route happens to name.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine

from cloud_sync.api.access import ACCESS, LOCATION, route_key
from cloud_sync.governance import audit, identity, subjects
from cloud_sync.governance.identity import Principal
from cloud_sync.governance.roles import SEES_LOCATION, Role
from cloud_sync.ingest import Ingestor
from cloud_sync.settings import Settings
from cloud_sync.store.devices import get_device

log = logging.getLogger(__name__)
#: Query values longer than this are cut in audit entries (the entry records what was asked, not a payload).
MAX_AUDIT_VALUE_CHARS = 200
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass
class Services:
    settings: Settings
    engine: Engine
    ingestor: Ingestor


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_conn(services: ServicesDep) -> Iterator[Connection]:
    with services.engine.connect() as conn:
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]
_bearer = HTTPBearer(auto_error=False)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _bootstrap(settings: Settings, token: str) -> Principal | None:
    supplied = token.encode()
    # compare_digest: no timing hint about how much of a token was right
    if hmac.compare_digest(supplied, settings.admin_token.encode()):
        return Principal("settings:admin", Role.ADMIN, None)
    if settings.staff_token is not None and hmac.compare_digest(supplied, settings.staff_token.encode()):
        return Principal("settings:staff", Role.DISPATCHER, None)
    return None


def _unauthorised() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                         headers={"WWW-Authenticate": "Bearer"})


def check_depot(caller: Principal, depot: str | None) -> None:
    """403 unless ``caller`` may act on ``depot`` (``scope=ROUTE`` routes with a depot in the body)."""
    if not caller.sees_depot(depot):
        where = "no depot (fleet-wide)" if depot is None else f"depot {depot!r}"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{caller.actor} may not act on {where}")


def _time(request: Request, name: str) -> float | None:
    try:
        value = float(request.query_params.get(name, "nan"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cut(value: str) -> str:
    return value if len(value) <= MAX_AUDIT_VALUE_CHARS else value[:MAX_AUDIT_VALUE_CHARS] + "…"


def _audit_detail(conn: Connection, caller: Principal, request: Request, subject: str | None,
                  category: str | None) -> tuple[str | None, dict[str, Any]]:
    detail: dict[str, Any] = {"path": {k: _cut(str(v)) for k, v in request.path_params.items()},
                              "query": {k: _cut(v) for k, v in request.query_params.items()}}
    if category is not None:
        detail["personal"] = category
    if category == LOCATION and subject is not None:  # whose location: the drivers of the vehicle in that range
        detail["drivers"] = subjects.drivers_on(conn, subject, _time(request, "from"), _time(request, "to"))
    if caller.depots is not None:
        detail["depots"] = sorted(caller.depots)
    if caller.token_id is not None:
        detail["token"] = caller.token_id
    if subject is None and request.path_params:  # whose data: the route's first path parameter (a driver, ...)
        subject = _cut(str(next(iter(request.path_params.values()))))
    return subject, detail


def authorize(request: Request, services: ServicesDep, creds: BearerDep) -> Iterator[Principal | None]:
    """Authenticate, check ``ACCESS`` (deny by default), scope by depot, audit; ``None`` on public routes.

    An administrative action (not GET/HEAD) is audited twice: before the route runs (so a failed append stops
    it), and after, with its outcome (``done``, or the HTTP status of the error it raised)."""
    caller, entry = _admit(request, services, creds)
    if entry is None or request.method in READ_METHODS:
        yield caller
        return
    try:
        yield caller
    except HTTPException as exc:
        _outcome(services, entry, str(exc.status_code))
        raise
    except Exception:
        _outcome(services, entry, "500")
        raise
    _outcome(services, entry, "done")


def _outcome(services: Services, entry: audit.Entry, outcome: str) -> None:
    with services.engine.begin() as conn:
        audit.append(conn, entry.actor, entry.role, f"{entry.action} -> {outcome}", entry.subject,
                     {"outcome": outcome, "request_entry": entry.seq})


def _refuse_unknown_query(request: Request, route: APIRoute) -> None:
    """422 for a query parameter the route does not take: a mistyped ``?form=`` must not silently widen a
    range to everything. The names are the route's documented ones (its OpenAPI operation)."""
    if not request.query_params:
        return
    known: dict[tuple[str, str], frozenset[str] | None] | None = getattr(request.app.state, "query_names", None)
    if known is None:
        known = request.app.state.query_names = {}
    slot = (request.method, route.path)
    if slot not in known:
        op = request.app.openapi().get("paths", {}).get(route.path, {}).get(request.method.lower())
        known[slot] = None if op is None else frozenset(
            p["name"] for p in op.get("parameters", []) if p.get("in") == "query")
    names = known[slot]
    unknown = sorted(set(request.query_params) - names) if names is not None else []
    if unknown:
        takes = ", ".join(sorted(names or ())) or "none"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"unknown query parameter(s) {', '.join(map(repr, unknown))}; this route takes: {takes}")


def _admit(request: Request, services: Services, creds: HTTPAuthorizationCredentials | None
           ) -> tuple[Principal | None, audit.Entry | None]:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):  # only APIRoutes run dependencies: reaching here is a wiring bug
        raise HTTPException(status.HTTP_403_FORBIDDEN, "route is not declared in cloud_sync/api/access.py")
    key = route_key(request.method, route.path)
    _refuse_unknown_query(request, route)
    rule = ACCESS.get(key)
    if rule is None:
        log.warning("refused %s: not declared in cloud_sync/api/access.py (deny by default)", key)
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"route {key!r} is not declared in cloud_sync/api/access.py (deny by default)")
    if rule.public:
        return None, None
    if creds is None:
        raise _unauthorised()
    caller = _bootstrap(services.settings, creds.credentials)
    # Reads first, in their own transaction; the audit append then opens a write transaction whose first
    # statement takes the lock (a SQLite transaction that read first cannot become a writer if another
    # writer, e.g. ingest, committed meanwhile).
    with services.engine.connect() as conn:
        if caller is None:
            caller = identity.authenticate(conn, creds.credentials)
        if caller is None:
            raise _unauthorised()
        if caller.role not in rule.roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {caller.role.value} may not call {key}")
        subject = None
        if rule.device is not None:
            subject = str(request.path_params.get(rule.device, ""))
            device = get_device(conn, subject)
            if device is None or not caller.sees_depot(device.depot):  # 404 either way: existence is not told
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {subject!r}")
        category = rule.personal
        if category == LOCATION and caller.role not in SEES_LOCATION:
            category = None  # the route serves this role no location (the vehicle list without positions)
        if category is None and request.method in READ_METHODS:
            return caller, None
        subject, detail = _audit_detail(conn, caller, request, subject, category)
    with services.engine.begin() as conn:
        entry = audit.append(conn, caller.actor, caller.role.value, key, subject, detail)
    return caller, entry


def current_caller(caller: Annotated[Principal | None, Depends(authorize)]) -> Principal:
    if caller is None:  # a public route asked who calls: a declaration error in ACCESS, not the client's
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this route is declared public and has no caller")
    return caller


CallerDep = Annotated[Principal, Depends(current_caller)]
AdminDep = CallerDep
StaffDep = CallerDep
