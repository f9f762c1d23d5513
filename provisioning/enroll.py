"""``fleet-provision enroll``: trade an installer token, the CSR and the signing key for a certificate and config.

Resumable, and never half a device. The cloud's answer is written to a staging directory
(``<dir>/.enroll-staging``), each file fsynced, then moved into place with ``os.replace``; the marker
``enrolment.json`` moves last. A device is enrolled exactly when that marker exists and names files
that are all present. A run that died anywhere (no answer from the cloud, killed mid-write, a staging
directory left behind) is finished by running the same command again: the staging directory is
discarded, and the cloud answers a repeated enrolment with the same keys and token with the
certificate it already issued (``resumed``), without needing a new token.
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from edge_agent.config import parse_config
from edge_agent.errors import ConfigError
from edge_agent.wire.sign import load_public_key_pem
from provisioning.identity import Identity, ProvisionError, write_public

TLS_CERT = "tls.crt"
CA_CHAIN = "ca.pem"
AGENT_TOML = "agent.toml"
#: The fleet's config-signing public key, pinned by the agent for signed config pushes (``[config_push]``).
FLEET_CONFIG_KEY = "fleet-config.pub"
MARKER = "enrolment.json"
STAGING = ".enroll-staging"
#: Seconds to wait for the cloud's answer; the cloud signs one certificate, so long waits mean trouble.
HTTP_TIMEOUT_S = 30.0
DEFAULT_DATA_DIR = Path("/var/lib/fleet-agent")


class CloudRefused(ProvisionError):
    """The cloud answered with an error (``status``); retrying the same request will not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"the cloud refused the enrolment (HTTP {status}): {detail}")
        self.status = status


class CloudUnreachable(ProvisionError):
    """No answer from the cloud (network, DNS, timeout, 5xx): re-run the same command to resume."""


@dataclass(frozen=True)
class Sources:
    """What the agent reads on this vehicle; the cloud does not know the wiring, the installer does."""

    can_interface: str | None = "socketcan"
    can_channel: str | None = "can0"
    gnss_port: str | None = None


@dataclass(frozen=True)
class Result:
    device_id: str
    state: str  # enrolled | already_enrolled
    resumed: bool
    files: tuple[str, ...]
    broker: str
    not_after: str


def post_json(url: str, body: Mapping[str, Any], timeout: float = HTTP_TIMEOUT_S) -> dict[str, Any]:
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        if exc.code >= 500:
            raise CloudUnreachable(f"the cloud is unavailable (HTTP {exc.code}: {detail}); re-run to resume") from None
        raise CloudRefused(exc.code, detail if isinstance(detail, str) else json.dumps(detail)) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CloudUnreachable(f"cannot reach the cloud at {url}: {reason}; re-run the same command to resume"
                               ) from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(doc: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document of flat tables (all ``agent.toml`` needs here)."""
    parts = ["# Written by `fleet-provision enroll`."]
    for section, table in doc.items():
        parts.append(f"\n[{section}]")
        parts += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(parts) + "\n"


def agent_config(cloud_config: Mapping[str, Any], ident: Identity, data_dir: Path, sources: Sources
                 ) -> dict[str, dict[str, Any]]:
    """The cloud's part (ids, broker) plus the device's (paths, sources); checked by the agent's own parser."""
    agent, uplink = cloud_config.get("agent"), cloud_config.get("uplink")
    if not isinstance(agent, dict) or not isinstance(uplink, dict):
        raise ProvisionError("the cloud's agent_config lacks its agent or uplink table")
    d = ident.dir.resolve()
    doc: dict[str, dict[str, Any]] = {
        "agent": {"device_id": agent["device_id"], "profile": agent["profile"], "data_dir": str(data_dir)}}
    if sources.can_interface and sources.can_channel:
        doc["can"] = {"interface": sources.can_interface, "channel": sources.can_channel}
    if sources.gnss_port:
        doc["gnss"] = {"port": sources.gnss_port}
    # Absolute paths: the agent resolves relative ones from its data_dir, which is elsewhere.
    doc["uplink"] = {"host": uplink["host"], "port": uplink["port"], "signing_key": str(d / ident.signing_key.name),
                     "tls_ca": str(d / CA_CHAIN), "tls_cert": str(d / TLS_CERT), "tls_key": str(d / ident.tls_key.name)}
    if fleet_config_key(cloud_config) is not None:
        doc["config_push"] = {"fleet_key": str(d / FLEET_CONFIG_KEY)}
    return doc


def fleet_config_key(cloud_config: Mapping[str, Any]) -> bytes | None:
    """The fleet config-signing public key the cloud sent (PEM), checked; None from a cloud that sends none."""
    push = cloud_config.get("config_push")
    if push is None:
        return None
    try:
        pem = str(push["fleet_key_pem"]).encode("ascii")
        load_public_key_pem(pem)
    except (KeyError, TypeError, ValueError, UnicodeEncodeError) as exc:
        raise ProvisionError(f"the cloud's config_push.fleet_key_pem is not an Ed25519 public key: {exc}") from None
    return pem


def enrolled(ident: Identity) -> dict[str, Any] | None:
    """The marker of a finished enrolment whose files are all in place, or None."""
    try:
        marker: dict[str, Any] = json.loads((ident.dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if marker.get("device_id") != ident.device_id or not all((ident.dir / f).exists() for f in marker["files"]):
        return None
    return marker


def enroll(ident: Identity, cloud: str, token: str, vin: str, profile: str, *, data_dir: Path = DEFAULT_DATA_DIR,
           sources: Sources | None = None) -> Result:
    """Enrol the device (or finish an interrupted enrolment); see the module docstring."""
    sources = sources or Sources()
    done = enrolled(ident)
    if done is not None:
        if (done["vin"], done["profile"]) != (vin, profile):
            raise ProvisionError(f"{ident.device_id} is already enrolled for VIN {done['vin']} with profile "
                                 f"{done['profile']!r}; an enrolment is not changed in place")
        return Result(ident.device_id, "already_enrolled", False, tuple(done["files"]), done["broker"],
                      done["not_after"])
    staging = ident.dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # whatever an interrupted run left: redone from the cloud's answer
    answer = post_json(cloud.rstrip("/") + "/v1/enroll", {
        "token": token, "device_id": ident.device_id, "csr_pem": ident.csr.read_text(encoding="ascii"),
        "signing_public_key_pem": ident.signing_public_pem(), "vin": vin, "profile": profile})
    cert = _check_answer(answer, ident)
    doc = agent_config(answer["agent_config"], ident, data_dir, sources)
    text = dumps_toml(doc)
    try:
        parse_config(tomllib.loads(text), ident.dir / AGENT_TOML)
    except ConfigError as exc:
        raise ProvisionError(f"the agent would refuse the configuration the cloud sent: {exc}") from None
    broker = f"{answer['broker_host']}:{answer['broker_port']}"
    not_after = cert.not_valid_after_utc.isoformat(timespec="seconds")
    fleet_key = fleet_config_key(answer["agent_config"])
    files = (TLS_CERT, CA_CHAIN, AGENT_TOML) + ((FLEET_CONFIG_KEY,) if fleet_key is not None else ())
    staging.mkdir(mode=0o700)
    write_public(staging / TLS_CERT, answer["certificate_pem"].encode("ascii"))
    write_public(staging / CA_CHAIN, answer["ca_chain_pem"].encode("ascii"))
    write_public(staging / AGENT_TOML, text.encode("utf-8"))
    if fleet_key is not None:
        write_public(staging / FLEET_CONFIG_KEY, fleet_key)
    marker = {"device_id": ident.device_id, "vin": vin, "profile": profile, "cloud": cloud, "broker": broker,
              "depot": answer.get("depot"), "not_after": not_after, "enrolled_at": time.time(), "files": list(files)}
    write_public(staging / MARKER, json.dumps(marker, indent=2).encode("utf-8"))
    for name in (*files, MARKER):  # the marker last: its presence means every other file is in place
        (staging / name).replace(ident.dir / name)
    staging.rmdir()
    return Result(ident.device_id, "enrolled", bool(answer.get("resumed")), files, broker, not_after)


def _check_answer(answer: Mapping[str, Any], ident: Identity) -> x509.Certificate:
    """The certificate must be for our key and chain to the CA sent with it; anything else is not stored."""
    try:
        cert = x509.load_pem_x509_certificate(str(answer["certificate_pem"]).encode("ascii"))
        ca = x509.load_pem_x509_certificate(str(answer["ca_chain_pem"]).encode("ascii"))
        csr = x509.load_pem_x509_csr(ident.csr.read_bytes())
    except (KeyError, ValueError, TypeError) as exc:
        raise ProvisionError(f"the cloud's answer holds no usable certificate: {exc}") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ProvisionError(f"the certificate does not verify against the CA chain sent with it: {exc!r}") from None
    if cert.public_key() != csr.public_key():
        raise ProvisionError("the cloud's certificate is not for this device's TLS key")
    return cert
