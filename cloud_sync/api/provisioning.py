"""Provisioning routes: ``POST /v1/installer-tokens`` (staff), ``POST /v1/enroll`` (an installer's token is the
credential), and the device's own ``POST /v1/devices/{id}/signing-key`` (rotation) and
``POST /v1/devices/{id}/certificate`` (renewal), whose credential is the device's signing key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from cloud_sync.api.deps import CallerDep, ServicesDep, check_depot
from cloud_sync.api.schemas import Message
from cloud_sync.enrollment import (
    MAX_STATEMENT_BYTES,
    RENEWAL_TYPE,
    ROTATION_TYPE,
    EnrollRefused,
    EnrollRequest,
    Provisioning,
    enroll,
    renew_certificate,
    rotate_signing_key,
)
from cloud_sync.store.provisioning import MAX_TOKEN_TTL_S, create_token
from edge_agent.wire.model import DEVICE_ID_RE

router = APIRouter(prefix="/v1", tags=["provisioning"])
#: ISO 3779: 17 characters, letters I, O and Q never used (confusable with 1 and 0).
VIN_PATTERN = r"^[A-HJ-NPR-Z0-9]{17}$"


class InstallerTokenCreate(BaseModel):
    depot: str = Field(min_length=1, max_length=128)
    ttl_s: float = Field(3600.0, gt=0, le=MAX_TOKEN_TTL_S, description="seconds until the token expires")


class InstallerTokenPublic(BaseModel):
    token: str = Field(description="shown once: only its hash is stored")
    depot: str
    expires_at: float


class EnrollCreate(BaseModel):
    token: str = Field(min_length=1, max_length=256)
    device_id: str = Field(pattern=f"^{DEVICE_ID_RE.pattern}$")
    csr_pem: str = Field(min_length=1, max_length=8192, description="PKCS#10 CSR of the device's P-256 TLS key")
    signing_public_key_pem: str = Field(min_length=1, max_length=4096, description="Ed25519 batch-signing key")
    vin: str = Field(pattern=VIN_PATTERN)
    profile: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class EnrollPublic(BaseModel):
    device_id: str
    depot: str | None
    certificate_pem: str
    ca_chain_pem: str
    broker_host: str
    broker_port: int
    agent_config: dict[str, Any]
    resumed: bool = Field(description="true when this repeats an enrolment already done (same keys and token)")


def get_provisioning(request: Request, services: ServicesDep) -> Provisioning:
    # Built on first use: an app that never enrols anyone needs no CA directory.
    prov: Provisioning | None = getattr(request.app.state, "provisioning", None)
    if prov is None:
        prov = request.app.state.provisioning = Provisioning.from_settings(services.settings)
    return prov


ProvisioningDep = Annotated[Provisioning, Depends(get_provisioning)]


@router.post("/installer-tokens", summary="Create a single-use installer token", status_code=201,
             response_model=InstallerTokenPublic, responses={401: {"model": Message}})
def create_installer_token(body: InstallerTokenCreate, services: ServicesDep, caller: CallerDep
                           ) -> InstallerTokenPublic:
    check_depot(caller, body.depot)
    with services.engine.begin() as conn:
        token, expires = create_token(conn, body.depot, body.ttl_s)
    return InstallerTokenPublic(token=token, depot=body.depot, expires_at=expires)


@router.post("/enroll", summary="Enrol a device with an installer token", response_model=EnrollPublic,
             responses={401: {"model": Message, "description": "unknown or expired token"},
                        409: {"model": Message, "description": "token used, or device enrolled with other keys"},
                        422: {"description": "CSR or key not acceptable"}})
def enroll_device(request: Request, body: EnrollCreate, services: ServicesDep, prov: ProvisioningDep
                  ) -> EnrollPublic:
    req = EnrollRequest(body.token, body.device_id, body.csr_pem, body.signing_public_key_pem, body.vin, body.profile)
    try:
        done = enroll(services.engine, prov, req)
    except EnrollRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    # The fleet's config-signing public key, which the device pins for signed config pushes (cloud_sync.config_push).
    fleet_key = request.app.state.config_push.enrolment_key_pem()
    agent_config = {**done.agent_config, **({"config_push": {"fleet_key_pem": fleet_key}} if fleet_key else {})}
    return EnrollPublic(device_id=done.device_id, depot=done.depot, certificate_pem=done.certificate_pem,
                        ca_chain_pem=done.ca_chain_pem, broker_host=done.broker_host, broker_port=done.broker_port,
                        agent_config=agent_config, resumed=done.resumed)


class SigningKeyRotation(BaseModel):
    statement: str = Field(min_length=1, max_length=MAX_STATEMENT_BYTES,
                           description=f"JSON: type {ROTATION_TYPE!r}, device_id, old_key, new_key (PEM), issued_at "
                                       "(device clock, s): batches the old key sealed up to then stay accepted")
    old_signature: str = Field(min_length=1, max_length=256, description="base64 Ed25519 signature of the statement "
                               "by the device's current key: the credential")
    new_signature: str = Field(min_length=1, max_length=256, description="base64 signature by the new key (possession)")


class SigningKeyPublic(BaseModel):
    device_id: str
    fingerprint: str = Field(description="SHA-256 of the current key's DER")
    retired: str = Field(description="fingerprint of the key retired by this rotation")
    sealed_before: float
    resumed: bool = Field(description="true when this statement had already taken effect")


class CertificateRenewal(BaseModel):
    request: str = Field(min_length=1, max_length=MAX_STATEMENT_BYTES * 4,
                         description=f"JSON: type {RENEWAL_TYPE!r}, device_id, csr_pem, issued_at")
    signature: str = Field(min_length=1, max_length=256, description="base64 Ed25519 signature of the request by "
                           "the device's signing key: the credential")


class CertificatePublic(BaseModel):
    device_id: str
    certificate_pem: str
    ca_chain_pem: str
    renewed: bool = Field(description="false: the latest certificate is far from expiry and is answered again")


_DEVICE_PATH = Path(pattern=f"^{DEVICE_ID_RE.pattern}$")


@router.post("/devices/{device_id}/signing-key", summary="Rotate a device's batch-signing key",
             response_model=SigningKeyPublic,
             responses={403: {"model": Message, "description": "a signature does not verify, or the device is revoked"},
                        404: {"model": Message}, 409: {"model": Message, "description": "old key not current"}})
def rotate_key(device_id: Annotated[str, _DEVICE_PATH], body: SigningKeyRotation, services: ServicesDep
               ) -> SigningKeyPublic:
    try:
        done = rotate_signing_key(services.engine, device_id, body.statement, body.old_signature, body.new_signature)
    except EnrollRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return SigningKeyPublic(device_id=done.device_id, fingerprint=done.fingerprint, retired=done.retired,
                            sealed_before=done.sealed_before, resumed=done.resumed)


@router.post("/devices/{device_id}/certificate", summary="Renew a device's TLS certificate",
             response_model=CertificatePublic,
             responses={403: {"model": Message}, 404: {"model": Message}, 422: {"description": "bad request or CSR"}})
def renew(device_id: Annotated[str, _DEVICE_PATH], body: CertificateRenewal, services: ServicesDep,
          prov: ProvisioningDep) -> CertificatePublic:
    try:
        done = renew_certificate(services.engine, prov, device_id, body.request, body.signature)
    except EnrollRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return CertificatePublic(device_id=done.device_id, certificate_pem=done.certificate_pem,
                             ca_chain_pem=done.ca_chain_pem, renewed=done.renewed)
