"""Enrolment: an installer token, a device's CSR and signing key in; a registered device and its certificate out.

``enroll`` does it in one store transaction: consume the token (single use, unexpired), register the
device (``store.devices.add_device``, the depot from the token), have the fleet CA sign the CSR with the
device id as identity, and record the certificate. Either all of it happens or none of it.

Resuming is idempotent: an installer whose first attempt lost the response re-runs the same command;
the same device id with the same keys and the same token gets the certificate already issued, without
a second token. The same id with other keys is refused: a device's identity is never silently replaced
(revoke it and enrol the new unit under a new id, or with its original keys).

What it needs (the CA directory, the broker address devices are told, certificate lifetimes) comes
from ``cloud_sync.settings.Settings`` through ``Provisioning.from_settings``, built once per app.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from cloud_sync.broker_config import DEFAULT_TLS_PORT
from cloud_sync.ca import (
    DEFAULT_DEVICE_VALIDITY,
    CaError,
    FleetCA,
    cert_pem,
    csr_public_key,
    load_or_create_ca,
)
from cloud_sync.settings import DEFAULT_RENEW_BEFORE_DAYS, Settings
from cloud_sync.store.devices import Device, DeviceExists, add_device, get_device, retired_keys
from cloud_sync.store.devices import rotate_signing_key as store_rotation
from cloud_sync.store.provisioning import (
    TokenRefused,
    add_certificate,
    consume_token,
    get_token,
    latest_certificate,
    lock_for_enrolment,
)
from edge_agent.wire.sign import load_public_key_pem, public_key_pem


class EnrollRefused(Exception):
    """The enrolment cannot proceed. ``status`` is the HTTP status that says why (401, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Provisioning:
    ca: FleetCA
    broker_host: str = "localhost"
    broker_port: int = DEFAULT_TLS_PORT
    device_validity: datetime.timedelta = DEFAULT_DEVICE_VALIDITY
    renew_before: datetime.timedelta = datetime.timedelta(days=DEFAULT_RENEW_BEFORE_DAYS)

    @classmethod
    def from_settings(cls, settings: Settings) -> Provisioning:
        """The CA from ``settings.ca_dir`` (created when the directory holds none) and the broker devices use."""
        return cls(load_or_create_ca(settings.ca_dir), settings.broker_host, settings.broker_port,
                   datetime.timedelta(days=settings.device_cert_days),
                   datetime.timedelta(days=settings.renew_before_days))


@dataclass(frozen=True)
class EnrollRequest:
    token: str
    device_id: str
    csr_pem: str
    signing_public_key_pem: str
    vin: str
    profile: str


@dataclass(frozen=True)
class Enrolled:
    device_id: str
    depot: str | None
    certificate_pem: str
    ca_chain_pem: str
    broker_host: str
    broker_port: int
    agent_config: dict[str, Any]
    resumed: bool


def _result(prov: Provisioning, req: EnrollRequest, depot: str | None, certificate: str, resumed: bool) -> Enrolled:
    # What the cloud knows of the agent's configuration; the device adds its own paths and sources.
    config = {"agent": {"device_id": req.device_id, "profile": req.profile},
              "uplink": {"host": prov.broker_host, "port": prov.broker_port}}
    return Enrolled(req.device_id, depot, certificate, prov.ca.cert_pem.decode("ascii"), prov.broker_host,
                    prov.broker_port, config, resumed)


def enroll(engine: Engine, prov: Provisioning, req: EnrollRequest) -> Enrolled:
    """Enrol (or resume the enrolment of) a device; ``EnrollRefused`` says why not."""
    try:
        tls_key = csr_public_key(req.csr_pem.encode("ascii"))
    except (CaError, UnicodeEncodeError) as exc:
        raise EnrollRefused(422, f"csr_pem: {exc}") from None
    try:
        signing = load_public_key_pem(req.signing_public_key_pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise EnrollRefused(422, f"signing_public_key_pem: not an Ed25519 public key PEM: {exc}") from None
    signing_pem = public_key_pem(signing).decode("ascii")  # canonical form, compared on resume
    try:
        with engine.begin() as conn:
            lock_for_enrolment(conn, req.token)
            existing = get_device(conn, req.device_id)
            if existing is not None:
                return _resume(conn, prov, req, existing, signing_pem, tls_key)
            try:
                token = consume_token(conn, req.token, req.device_id)
            except TokenRefused as exc:
                raise EnrollRefused(409 if exc.reason == "used" else 401, str(exc)) from None
            add_device(conn, req.device_id, signing_pem, vin=req.vin, profile=req.profile, depot=token.depot)
            cert = prov.ca.issue_device_cert(req.csr_pem.encode("ascii"), req.device_id, prov.device_validity)
            add_certificate(conn, req.device_id, cert)
    except (DeviceExists, IntegrityError):  # a concurrent enrolment of the same id won the race
        raise EnrollRefused(409, f"device {req.device_id!r} is being enrolled by another request; "
                                 "re-run to resume") from None
    return _result(prov, req, token.depot, cert_pem(cert).decode("ascii"), resumed=False)


def _resume(conn: Connection, prov: Provisioning, req: EnrollRequest, existing: Device, signing_pem: str,
            tls_key: ec.EllipticCurvePublicKey) -> Enrolled:
    if existing.revoked_at is not None:
        raise EnrollRefused(409, f"device {req.device_id!r} is revoked; enrol the unit under a new device id")
    latest = latest_certificate(conn, req.device_id)
    same_keys = (public_key_pem(load_public_key_pem(existing.public_key_pem.encode("ascii"))).decode("ascii")
                 == signing_pem and latest is not None and latest.public_key() == tls_key)
    if not same_keys:
        raise EnrollRefused(409, f"device {req.device_id!r} is already enrolled with different keys; its identity "
                                 "is not replaced (use the device's original keys, or revoke it and enrol a new id)")
    token = get_token(conn, req.token)
    if token is None or token.used_by != req.device_id:
        raise EnrollRefused(409, f"device {req.device_id!r} is already enrolled with another installer token; "
                                 "re-run with that token to resume")
    assert latest is not None
    return _result(prov, req, existing.depot, cert_pem(latest).decode("ascii"), resumed=True)


#: The ``type`` of a signing-key rotation statement: the statement is JSON, a batch starts with ``FTWB``, so
#: a signature over one can never be taken for a signature over the other.
ROTATION_TYPE = "fleet-key-rotation/v1"
#: A statement is small: two PEM keys and a few fields.
MAX_STATEMENT_BYTES = 4096


@dataclass(frozen=True)
class Rotated:
    device_id: str
    fingerprint: str  # of the key now current
    retired: str  # fingerprint of the key retired
    sealed_before: float
    resumed: bool


def key_fingerprint(public_pem: str) -> str:
    """SHA-256 hex of the key's DER SubjectPublicKeyInfo (independent of PEM line breaks)."""
    key = load_public_key_pem(public_pem.encode("ascii"))
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise EnrollRefused(422, f"{what}: not base64") from None


def rotate_signing_key(engine: Engine, device_id: str, statement: str, old_signature: str, new_signature: str
                       ) -> Rotated:
    """Verify a rotation statement (signed by the device's current key, counter-signed by the new one) and make
    the new key current; the old one stays valid for batches sealed up to the statement's ``issued_at``.

    Re-sending the statement that already took effect answers the same result (``resumed``); any other
    statement whose old key is not the current key is refused, so an old statement cannot be replayed."""
    raw = statement.encode("utf-8")
    if len(raw) > MAX_STATEMENT_BYTES:
        raise EnrollRefused(422, f"statement larger than {MAX_STATEMENT_BYTES} bytes")
    try:
        doc = json.loads(raw)
        old_pem, new_pem, issued_at = str(doc["old_key"]), str(doc["new_key"]), float(doc["issued_at"])
        kind, named = doc["type"], doc["device_id"]
        old_key, new_key = load_public_key_pem(old_pem.encode("ascii")), load_public_key_pem(new_pem.encode("ascii"))
    except (ValueError, KeyError, TypeError, UnicodeEncodeError) as exc:
        raise EnrollRefused(422, f"statement: {exc!r}") from None
    if kind != ROTATION_TYPE or named != device_id or not math.isfinite(issued_at):
        raise EnrollRefused(422, f"statement: not a {ROTATION_TYPE} statement for {device_id!r}")
    old_fp, new_fp = key_fingerprint(old_pem), key_fingerprint(new_pem)
    if old_fp == new_fp:
        raise EnrollRefused(422, "statement: the new key is the old key")
    try:  # the new key proves possession first: it costs nothing to check before touching the store
        new_key.verify(_b64(new_signature, "new_signature"), raw)
    except InvalidSignature:
        raise EnrollRefused(403, "new_signature does not verify with the statement's new key") from None
    with engine.begin() as conn:
        device = get_device(conn, device_id, for_update=True)
        if device is None:
            raise EnrollRefused(404, f"no device {device_id!r}")
        if device.revoked_at is not None:
            raise EnrollRefused(403, f"device {device_id!r} is revoked")
        current_fp = key_fingerprint(device.public_key_pem)
        if current_fp == new_fp:
            done = [k for k in retired_keys(conn, device_id) if k.fingerprint == old_fp and k.statement == statement]
            if done:
                return Rotated(device_id, new_fp, old_fp, done[0].sealed_before, resumed=True)
        if current_fp != old_fp:
            raise EnrollRefused(409, "the statement's old key is not the device's current signing key")
        try:
            old_key.verify(_b64(old_signature, "old_signature"), raw)
        except InvalidSignature:
            raise EnrollRefused(403, "old_signature does not verify with the device's current key") from None
        store_rotation(conn, device_id, old_fp, public_key_pem(new_key).decode("ascii"), new_fp,
                       statement=statement, old_signature=old_signature, new_signature=new_signature,
                       sealed_before=issued_at)
    return Rotated(device_id, new_fp, old_fp, issued_at, resumed=False)


#: The ``type`` of a certificate renewal request (JSON, signed by the device's current signing key).
RENEWAL_TYPE = "fleet-cert-renewal/v1"


@dataclass(frozen=True)
class Renewed:
    device_id: str
    certificate_pem: str
    ca_chain_pem: str
    renewed: bool  # False: the latest certificate still had more than ``renew_before`` left and is answered


def renew_certificate(engine: Engine, prov: Provisioning, device_id: str, request: str, signature: str,
                      now: float | None = None) -> Renewed:
    """A new certificate for the device's TLS key when its latest one is inside the renewal window (or for
    another key), else the latest one again: running a renewal twice issues one certificate."""
    raw = request.encode("utf-8")
    if len(raw) > MAX_STATEMENT_BYTES * 4:
        raise EnrollRefused(422, "request too large")
    try:
        doc = json.loads(raw)
        kind, named, csr_pem = doc["type"], doc["device_id"], str(doc["csr_pem"])
        tls_key = csr_public_key(csr_pem.encode("ascii"))
    except (ValueError, KeyError, TypeError, UnicodeEncodeError, CaError) as exc:
        raise EnrollRefused(422, f"request: {exc}") from None
    if kind != RENEWAL_TYPE or named != device_id:
        raise EnrollRefused(422, f"request: not a {RENEWAL_TYPE} request for {device_id!r}")
    at = time.time() if now is None else now
    with engine.begin() as conn:
        device = get_device(conn, device_id, for_update=True)
        if device is None:
            raise EnrollRefused(404, f"no device {device_id!r}")
        if device.revoked_at is not None:
            raise EnrollRefused(403, f"device {device_id!r} is revoked; a revoked device gets no certificate")
        try:
            load_public_key_pem(device.public_key_pem.encode("ascii")).verify(_b64(signature, "signature"), raw)
        except InvalidSignature:
            raise EnrollRefused(403, "signature does not verify with the device's signing key") from None
        latest = latest_certificate(conn, device_id)
        if (latest is not None and latest.public_key() == tls_key
                and latest.not_valid_after_utc.timestamp() - at > prov.renew_before.total_seconds()):
            return Renewed(device_id, cert_pem(latest).decode("ascii"), prov.ca.cert_pem.decode("ascii"), False)
        cert = prov.ca.issue_device_cert(csr_pem.encode("ascii"), device_id, prov.device_validity)
        add_certificate(conn, device_id, cert, now=at)
    return Renewed(device_id, cert_pem(cert).decode("ascii"), prov.ca.cert_pem.decode("ascii"), True)
