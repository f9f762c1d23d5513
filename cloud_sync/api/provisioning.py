"""``POST /v1/installer-tokens`` (admin) and ``POST /v1/enroll`` (an installer's token is the credential)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from cloud_sync.api.deps import CallerDep, ServicesDep, check_depot
from cloud_sync.api.schemas import Message
from cloud_sync.enrollment import EnrollRefused, EnrollRequest, Provisioning, enroll
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

