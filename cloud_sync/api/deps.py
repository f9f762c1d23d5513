"""Dependencies shared by the routers (``Annotated`` aliases, as in the FastAPI full-stack template).

The app state holds one ``Services`` (settings, engine, ingestor); ``create_app`` puts it there.
Authentication for now is a bearer token: the admin token for writes, the admin or staff token for
reads (role-based access arrives with the staff accounts).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine

from cloud_sync.ingest import Ingestor
from cloud_sync.settings import Settings


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


def _matches(given: HTTPAuthorizationCredentials | None, *tokens: str | None) -> bool:
    if given is None:
        return False
    supplied = given.credentials.encode()
    # compare_digest: no timing hint about how much of a token was right
    return any(t is not None and hmac.compare_digest(supplied, t.encode()) for t in tokens)


def _unauthorised() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                         headers={"WWW-Authenticate": "Bearer"})


def require_admin(services: ServicesDep, creds: BearerDep) -> None:
    if not _matches(creds, services.settings.admin_token):
        raise _unauthorised()


def require_staff(services: ServicesDep, creds: BearerDep) -> None:
    if not _matches(creds, services.settings.admin_token, services.settings.staff_token):
        raise _unauthorised()


AdminDep = Annotated[None, Depends(require_admin)]
StaffDep = Annotated[None, Depends(require_staff)]
