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

import datetime
from dataclasses import dataclass
from typing import Any

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
from cloud_sync.store.devices import Device, DeviceExists, add_device, get_device
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
