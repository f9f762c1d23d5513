"""Provisioning tables: installer tokens (hashed, single use, expiring) and the device certificates the CA issued.

``installer_tokens`` keeps only the SHA-256 of a token: the token is 256 random bits, so a fast hash
is enough (nothing to brute-force), and a copy of the database does not enrol anything. A token is
consumed by one conditional ``UPDATE`` (unused and unexpired, in the same statement), so two
installers racing with one token cannot both win, on SQLite or PostgreSQL.

``device_certificates`` records every certificate issued (serial as hex: random serials are up to
159 bits, wider than any SQL integer); the broker's CRL lists those of revoked devices.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import time
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import (
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    insert,
    or_,
    select,
    update,
)

from cloud_sync.store import schema

#: Longest an installer token may live: a token is for one fitting session, not a standing credential.
MAX_TOKEN_TTL_S = 7 * 24 * 3600
TOKEN_BYTES = 32
#: Installer tokens start with this: a bare token_urlsafe value starts with "-" one time in 64, which
#: `fleet-provision enroll --token <value>` (argparse) then reads as an option and refuses.
TOKEN_PREFIX = "fit_"

installer_tokens = Table(
    "installer_tokens",
    schema.metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("depot", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("used_at", Double),
    Column("used_by", schema.DeviceId),
)

device_certificates = Table(
    "device_certificates",
    schema.metadata,
    Column("serial", String(40), primary_key=True),
    Column("device_id", schema.DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("cert_pem", Text, nullable=False),
    Column("issued_at", Double, nullable=False),
    Column("not_after", Double, nullable=False),
    Column("revoked_at", Double),
)
Index("device_certificates_by_device", device_certificates.c.device_id, device_certificates.c.issued_at)


class TokenRefused(Exception):
    """An installer token cannot enrol: ``reason`` is ``unknown``, ``used`` or ``expired``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InstallerToken:
    depot: str
    created_at: float
    expires_at: float
    used_at: float | None
    used_by: str | None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def create_token(conn: Connection, depot: str, ttl_s: float, *, now: float | None = None) -> tuple[str, float]:
    """A new token for ``depot`` valid ``ttl_s`` seconds: ``(token, expires_at)``. Only its hash is stored."""
    if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
        raise ValueError(f"ttl must be between 0 and {MAX_TOKEN_TTL_S} s, got {ttl_s}")
    created = time.time() if now is None else now
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    conn.execute(insert(installer_tokens).values(token_hash=token_hash(token), depot=depot, created_at=created,
                                                 expires_at=created + ttl_s, used_at=None, used_by=None))
    return token, created + ttl_s


def lock_for_enrolment(conn: Connection, token: str) -> None:
    """Serialise enrolments on SQLite: a no-op write as the transaction's first statement takes the database's
    write lock before anything is read (a deferred transaction that read first could not upgrade and would
    fail at once with "database is locked"). PostgreSQL needs nothing: the consuming UPDATE locks the row."""
    if conn.dialect.name == "sqlite":
        conn.execute(update(installer_tokens).where(installer_tokens.c.token_hash == token_hash(token))
                     .values(token_hash=installer_tokens.c.token_hash))


def get_token(conn: Connection, token: str) -> InstallerToken | None:
    row = conn.execute(select(installer_tokens).where(installer_tokens.c.token_hash == token_hash(token))).first()
    if row is None:
        return None
    m = row._mapping
    return InstallerToken(m["depot"], m["created_at"], m["expires_at"], m["used_at"], m["used_by"])


def consume_token(conn: Connection, token: str, device_id: str, *, now: float | None = None) -> InstallerToken:
    """Mark the token used by ``device_id``; ``TokenRefused`` says why not (in the caller's transaction)."""
    at = time.time() if now is None else now
    result = conn.execute(update(installer_tokens)
                          .where(installer_tokens.c.token_hash == token_hash(token),
                                 installer_tokens.c.used_at.is_(None), installer_tokens.c.expires_at > at)
                          .values(used_at=at, used_by=device_id))
    found = get_token(conn, token)
    if result.rowcount == 1 and found is not None:
        return found
    if found is None:
        raise TokenRefused("unknown", "unknown installer token (mistyped, or issued by another cloud)")
    if found.used_at is not None:
        used = _utc(found.used_at)
        raise TokenRefused("used", f"installer token already used (by device {found.used_by!r} at {used}); "
                                   "ask an admin for a new one")
    raise TokenRefused("expired", f"installer token expired at {_utc(found.expires_at)}; ask an admin for a new one")


def _utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="seconds")


def add_certificate(conn: Connection, device_id: str, cert: x509.Certificate, *, now: float | None = None) -> None:
    from cryptography.hazmat.primitives import serialization

    conn.execute(insert(device_certificates).values(
        serial=format(cert.serial_number, "x"), device_id=device_id,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        issued_at=time.time() if now is None else now, not_after=cert.not_valid_after_utc.timestamp(),
        revoked_at=None))


def latest_certificate(conn: Connection, device_id: str) -> x509.Certificate | None:
    row = conn.execute(select(device_certificates.c.cert_pem).where(device_certificates.c.device_id == device_id)
                       .order_by(device_certificates.c.issued_at.desc()).limit(1)).first()
    return None if row is None else x509.load_pem_x509_certificate(row[0].encode("ascii"))


def revoked_certificates(conn: Connection) -> list[tuple[int, datetime.datetime]]:
    """``(serial, revoked at)`` of every unexpired certificate that is revoked itself or whose device is."""
    when = schema.devices.c.revoked_at
    rows = conn.execute(
        select(device_certificates.c.serial, device_certificates.c.revoked_at, when)
        .join(schema.devices, schema.devices.c.id == device_certificates.c.device_id)
        .where(or_(device_certificates.c.revoked_at.is_not(None), when.is_not(None)),
               device_certificates.c.not_after > time.time())
        .order_by(device_certificates.c.serial))
    out = []
    for serial, cert_revoked, device_revoked in rows:
        t = min(x for x in (cert_revoked, device_revoked) if x is not None)
        out.append((int(serial, 16), datetime.datetime.fromtimestamp(t, datetime.UTC)))
    return out
