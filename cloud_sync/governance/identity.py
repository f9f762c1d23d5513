"""Staff identities: users (a name, one role, the depots they may see) and their API tokens, stored hashed.

A token is ``flt_`` + 256 random bits (``secrets.token_urlsafe``); only its SHA-256 is stored. A fast hash is
enough for a secret of that entropy: NIST SP 800-63B §5.1.2.2 (look-up secrets) asks for an approved one-way
function for secrets of at least 112 bits, and a salted slow KDF only below that, because a slow hash protects
guessable (human-chosen) secrets and nothing can enumerate 2**256. It also lets a request find its token by
an indexed equality on the hash. A copy of the database therefore authenticates nobody.

Users are never deleted (audit entries name them); they are disabled, which refuses all their tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    insert,
    select,
    update,
)

from cloud_sync.governance.roles import FLEET_WIDE, Role, parse_role
from cloud_sync.store import schema
from edge_agent.errors import FleetError

TOKEN_PREFIX = "flt_"  # lets secret scanners (and people) recognise a leaked token
TOKEN_BYTES = 32
TOKEN_ID_BYTES = 8
#: Longest an API token may live: staff tokens are rotated at least yearly.
MAX_TOKEN_TTL_S = 366 * 24 * 3600
MAX_NAME_CHARS = 128
MAX_DEPOT_CHARS = 128  # as ``devices.depot``
MAX_DEPOTS_PER_USER = 64
NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,128}$"

users = Table(
    "users",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME_CHARS), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("depots", JSON(none_as_null=True)),  # list of depot names, or NULL for all depots
    Column("created_at", Double, nullable=False),
    Column("disabled_at", Double),
)

api_tokens = Table(
    "api_tokens",
    schema.metadata,
    Column("id", String(2 * TOKEN_ID_BYTES), primary_key=True),  # public handle, for listing and revoking
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("label", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("revoked_at", Double),
)


class IdentityError(FleetError):
    """A user or token operation cannot be done; the message says why (unknown user, duplicate name, ...)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``actor`` is what the audit trail records (a user name, or ``settings:admin``)."""

    actor: str
    role: Role
    depots: frozenset[str] | None  # None: every depot
    user_id: int | None = None
    token_id: str | None = None

    def sees_depot(self, depot: str | None) -> bool:
        """May this principal see a vehicle of ``depot``? A vehicle with no depot only fleet-wide principals."""
        if self.depots is None:
            return True
        return depot is not None and depot in self.depots


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    depots: frozenset[str] | None
    created_at: float
    disabled_at: float | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    user: str
    label: str
    created_at: float
    expires_at: float
    revoked_at: float | None


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _depots(role: Role, depots: Iterable[str] | None) -> frozenset[str] | None:
    if depots is None or role in FLEET_WIDE:
        return None
    out = frozenset(depots)
    if not out:
        raise IdentityError("a depot-scoped user needs at least one depot (or none given: all depots)")
    if len(out) > MAX_DEPOTS_PER_USER or any(not d or len(d) > MAX_DEPOT_CHARS for d in out):
        raise IdentityError(f"depots: at most {MAX_DEPOTS_PER_USER} names of 1..{MAX_DEPOT_CHARS} characters")
    return out


def _user(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    depots = None if m["depots"] is None else frozenset(m["depots"])
    return User(m["id"], m["name"], Role(m["role"]), depots, m["created_at"], m["disabled_at"])


def add_user(conn: Connection, name: str, role: Role | str, depots: Iterable[str] | None = None, *,
             now: float | None = None) -> User:
    """Create a user; ``depots=None`` means all depots (admins and auditors are always fleet-wide)."""
    role = parse_role(role) if isinstance(role, str) else role
    if not name or len(name) > MAX_NAME_CHARS:
        raise IdentityError(f"user name must be 1..{MAX_NAME_CHARS} characters")
    scope = _depots(role, depots)
    if get_user(conn, name) is not None:
        raise IdentityError(f"user {name!r} already exists")
    created = time.time() if now is None else now
    stored = None if scope is None else sorted(scope)
    uid = conn.execute(insert(users).values(name=name, role=role.value, depots=stored, created_at=created,
                                            disabled_at=None).returning(users.c.id)).scalar_one()
    return User(uid, name, role, scope, created, None)


def get_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    return None if row is None else _user(row)


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]


def disable_user(conn: Connection, name: str, *, now: float | None = None) -> bool:
    """Refuse every token of the user from now on; False if there is no such (enabled) user."""
    result = conn.execute(update(users).where(users.c.name == name, users.c.disabled_at.is_(None))
                          .values(disabled_at=time.time() if now is None else now))
    return result.rowcount > 0


def create_token(conn: Connection, user_name: str, ttl_s: float, label: str = "", *,
                 now: float | None = None) -> tuple[str, TokenInfo]:
    """A new token for an enabled user: ``(token, info)``. The token is shown once; only its hash is stored."""
    if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
        raise IdentityError(f"token lifetime must be between 0 and {MAX_TOKEN_TTL_S} s, got {ttl_s}")
    user = get_user(conn, user_name)
    if user is None or user.disabled_at is not None:
        raise IdentityError(f"no enabled user {user_name!r}")
    created = time.time() if now is None else now
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    tid = secrets.token_hex(TOKEN_ID_BYTES)
    conn.execute(insert(api_tokens).values(id=tid, user_id=user.id, token_hash=hash_token(token), label=label[:128],
                                           created_at=created, expires_at=created + ttl_s, revoked_at=None))
    return token, TokenInfo(tid, user.name, label[:128], created, created + ttl_s, None)


def revoke_token(conn: Connection, token_id: str, *, now: float | None = None) -> bool:
    """Refuse the token from now on; False if there is no such unrevoked token."""
    result = conn.execute(update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                          .values(revoked_at=time.time() if now is None else now))
    return result.rowcount > 0


def list_tokens(conn: Connection, user_name: str | None = None) -> list[TokenInfo]:
    query = (select(api_tokens, users.c.name).join(users, users.c.id == api_tokens.c.user_id)
             .order_by(api_tokens.c.created_at))
    if user_name is not None:
        query = query.where(users.c.name == user_name)
    return [TokenInfo(r.id, r.name, r.label, r.created_at, r.expires_at, r.revoked_at) for r in conn.execute(query)]


def authenticate(conn: Connection, token: str, *, now: float | None = None) -> Principal | None:
    """The principal of a live token (known, unrevoked, unexpired, user enabled), else None."""
    at = time.time() if now is None else now
    row = conn.execute(
        select(api_tokens.c.id.label("token_id"), api_tokens.c.expires_at, api_tokens.c.revoked_at, users)
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= at or row.disabled_at is not None:
        return None
    user = _user(row)
    return Principal(user.name, user.role, user.depots, user.id, row.token_id)
