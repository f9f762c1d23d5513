"""Governance routes: staff users and their API tokens (admin), the audit trail and its verification
(admin, auditor), a driver's data export and erasure (admin; ``cloud_sync.governance.subjects``).
Who may call each is declared in ``cloud_sync.api.access.ACCESS``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cloud_sync.api.deps import CallerDep, ConnDep, ServicesDep
from cloud_sync.api.schemas import Message
from cloud_sync.governance import audit, identity, subjects
from cloud_sync.governance.identity import MAX_DEPOT_CHARS, MAX_DEPOTS_PER_USER, NAME_PATTERN, IdentityError
from cloud_sync.governance.roles import Role
from cloud_sync.store.engine import tag_non_finite

router = APIRouter(prefix="/v1", tags=["governance"])
DEFAULT_TOKEN_TTL_S = 90 * 24 * 3600
NameParam = Annotated[str, Path(pattern=NAME_PATTERN, description="user name")]
_errors: dict[int | str, dict[str, Any]] = {401: {"model": Message}, 403: {"model": Message}}


class UserCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    depots: list[Annotated[str, Field(min_length=1, max_length=MAX_DEPOT_CHARS)]] | None = Field(
        None, min_length=1, max_length=MAX_DEPOTS_PER_USER,
        description="depots the user may see; null: every depot (admins and auditors are always fleet-wide)")


class UserPublic(BaseModel):
    name: str
    role: Role
    depots: list[str] | None
    created_at: float
    disabled_at: float | None


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class TokenCreate(BaseModel):
    ttl_s: float = Field(DEFAULT_TOKEN_TTL_S, gt=0, le=identity.MAX_TOKEN_TTL_S, allow_inf_nan=False)
    label: str = Field("", max_length=128)


class TokenPublic(BaseModel):
    id: str = Field(description="handle for revoking; not a credential")
    user: str
    label: str
    created_at: float
    expires_at: float
    token: str = Field(description="the bearer token, shown once: only its SHA-256 is stored")


class AuditEntryPublic(BaseModel):
    seq: int
    at: float
    actor: str
    role: str
    action: str
    subject: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    data: list[AuditEntryPublic]
    next_after: int | None = Field(description="pass as ?after= for the next page; null on the last page")


class AuditVerdictPublic(BaseModel):
    ok: bool
    count: int = Field(description="entries verified before the first broken link (all when ok)")
    head_seq: int
    head_hash: str
    broken_seq: int | None = Field(description="the first broken link, when not ok")
    reason: str


def _user(u: identity.User) -> UserPublic:
    return UserPublic(name=u.name, role=u.role, depots=None if u.depots is None else sorted(u.depots),
                      created_at=u.created_at, disabled_at=u.disabled_at)


@router.post("/users", summary="Create a staff user", status_code=status.HTTP_201_CREATED, response_model=UserPublic,
             responses={**_errors, 409: {"model": Message, "description": "name taken"}})
def create_user(body: UserCreate, services: ServicesDep, _caller: CallerDep) -> UserPublic:
    try:
        with services.engine.begin() as conn:
            user = identity.add_user(conn, body.name, body.role, body.depots)
    except IdentityError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _user(user)


@router.get("/users", summary="Staff users", response_model=UsersPublic, responses=_errors)
def list_users(conn: ConnDep, _caller: CallerDep) -> UsersPublic:
    items = [_user(u) for u in identity.list_users(conn)]
    return UsersPublic(data=items, count=len(items))


@router.post("/users/{name}/tokens", summary="Create an API token for a user", status_code=status.HTTP_201_CREATED,
             response_model=TokenPublic, responses={**_errors, 404: {"model": Message}})
def create_token(name: NameParam, body: TokenCreate, services: ServicesDep, _caller: CallerDep) -> TokenPublic:
    try:
        with services.engine.begin() as conn:
            token, info = identity.create_token(conn, name, body.ttl_s, body.label)
    except IdentityError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return TokenPublic(id=info.id, user=info.user, label=info.label, created_at=info.created_at,
                       expires_at=info.expires_at, token=token)


@router.delete("/tokens/{token_id}", summary="Revoke an API token", response_model=Message,
               responses={**_errors, 404: {"model": Message}})
def revoke_token(token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")], services: ServicesDep,
                 _caller: CallerDep) -> Message:
    with services.engine.begin() as conn:
        if not identity.revoke_token(conn, token_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no live token {token_id!r}")
    return Message(detail=f"revoked {token_id}")


@router.get("/audit", summary="Audit trail entries, oldest first", response_model=AuditPage, responses=_errors)
def list_audit(conn: ConnDep, _caller: CallerDep, after: Annotated[int, Query(ge=0, le=2**62)] = 0,
               limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100) -> AuditPage:
    entries = audit.page(conn, after, limit)
    data = [AuditEntryPublic(seq=e.seq, at=e.at, actor=e.actor, role=e.role, action=e.action, subject=e.subject,
                             detail=dict(e.detail), prev_hash=e.prev_hash.hex(), hash=e.hash.hex()) for e in entries]
    return AuditPage(data=data, next_after=entries[-1].seq if len(entries) == limit else None)


@router.get("/audit/verify", summary="Verify the audit trail's hash chain; names the first broken link",
            response_model=AuditVerdictPublic, responses=_errors)
def verify_audit(conn: ConnDep, _caller: CallerDep) -> AuditVerdictPublic:
    v = audit.verify(conn)
    return AuditVerdictPublic(ok=v.ok, count=v.count, head_seq=v.head.seq, head_hash=v.head.hash.hex(),
                              broken_seq=v.broken_seq, reason=v.reason)


DriverParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:@-]{1,64}$", description="driver id")]


@router.get("/subjects/drivers/{driver}/export", summary="Everything held about a driver (GDPR Art. 15/20)",
            responses={**_errors, 404: {"model": Message}, 200: {"content": {"application/json": {}}}})
def export_driver(driver: DriverParam, conn: ConnDep, _caller: CallerDep) -> JSONResponse:
    try:
        data = subjects.export_driver(conn, driver)
    except subjects.UnknownSubject as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return JSONResponse(tag_non_finite(data), headers={"Content-Disposition": f'attachment; filename="{driver}.json"'})


@router.post("/subjects/drivers/{driver}/erase", summary="Erase or pseudonymise a driver's data (GDPR Art. 17), "
             "keeping the records the law requires", responses={**_errors, 404: {"model": Message}})
def erase_driver(driver: DriverParam, services: ServicesDep, caller: CallerDep) -> dict[str, int]:
    try:
        with services.engine.begin() as conn:
            return subjects.erase_driver(conn, driver, caller.actor, caller.role.value)
    except subjects.UnknownSubject as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
