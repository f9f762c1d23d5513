"""Preflight of the way to the cloud: the clock, the broker over mutual TLS, and a signed test batch acked.

The broker is reached exactly as the agent reaches it (host, port, CA, the device's certificate and key
from agent.toml), but with its own MQTT client id (``<device>-check``) and a clean session: the agent's
persistent session (and the acks queued in it) is never taken over, even with the agent running. That
is why this module drives paho itself instead of ``edge_agent.uplink.MqttTransport``, which is the
agent's session and retries forever; it makes one attempt and says why it failed.

The test batch is sealed by the agent's wire code with the device's signing key, in a boot epoch of its
own (``uplink.identity.draw_epoch``, sequence 0, genesis ``prev_hash``), so it never touches the agent's
chain, and it carries no records: the cloud verifies, commits and acks it like any batch (it counts in
the device's health as a committed batch) but it adds nothing to positions, samples or events.
"""

from __future__ import annotations

import email.utils
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_agent.uplink.identity import draw_epoch
from edge_agent.uplink.settings import UplinkSettings, ack_topic, batch_topic
from edge_agent.wire import GENESIS_HASH, Batch, WireError, batch_hash, decode_ack, load_private_key, seal
from provisioning.checks import CheckResult, Progress, failed, passed, skipped

#: Clock skew tolerated. The cloud's Date header has one-second resolution (RFC 9110 5.6.7) and a
#: receiver emits its NMEA sentences up to about a second after the epoch they describe.
MAX_CLOCK_SKEW_S = 5.0
#: A certificate with less than this left is reported (renew with ``fleet-provision renew``).
RENEW_WARNING_DAYS = 30
CLIENT_SUFFIX = "-check"
CONNECT_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0
#: MQTT v5 reason codes of 0x80 and above are failures (OASIS MQTT 5.0, 2.4).
REASON_FAILURE = 0x80
ACK_FIXES = {
    "unknown_device": "the cloud does not know this device: was it enrolled with this cloud? (enrolment.json "
                      "names the cloud); re-run `fleet-provision enroll`",
    "revoked": "this device is revoked at the cloud; an admin must enrol the unit under a new identity",
    "bad_signature": "the signing key does not match the key the cloud holds for this device; if a "
                     "`fleet-provision rotate-key` was interrupted, re-run it to finish",
}


def check_clock(cloud_url: str | None, gnss_offset_s: float | None) -> CheckResult:
    name = "clock"
    offsets: dict[str, float] = {}
    problems: list[str] = []
    if cloud_url:
        try:
            offsets["cloud"] = _cloud_offset(cloud_url)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            problems.append(f"cloud Date header unavailable ({exc})")
    if gnss_offset_s is not None:
        offsets["gnss"] = gnss_offset_s
    if not offsets:
        return skipped(name, "no reference: " + ("; ".join(problems) or "no cloud and no GNSS fix"))
    worst = max(offsets.items(), key=lambda kv: abs(kv[1]))
    shown = ", ".join(f"{k} {v:+.1f} s" for k, v in offsets.items())
    details = {f"offset_vs_{k}_s": round(v, 3) for k, v in offsets.items()}
    if abs(worst[1]) <= MAX_CLOCK_SKEW_S:
        return passed(name, f"system clock within {MAX_CLOCK_SKEW_S:g} s ({shown})", **details)
    return failed(name, f"system clock is off by {worst[1]:+.0f} s against the {worst[0]} ({shown})",
                  "enable time sync (`timedatectl set-ntp true`, or chrony with the GNSS receiver as a source) "
                  "and re-run; TLS certificates and every record's time depend on it", **details)


def _cloud_offset(cloud_url: str) -> float:
    before = time.time()
    try:
        with urllib.request.urlopen(cloud_url.rstrip("/") + "/healthz", timeout=HTTP_TIMEOUT_S) as response:
            date = response.headers.get("Date")
    except urllib.error.HTTPError as exc:  # any answer carries a Date header
        date = exc.headers.get("Date")
    after = time.time()
    if not date:
        raise ValueError("the cloud sent no Date header")
    cloud = email.utils.parsedate_to_datetime(date).timestamp()
    # The header is truncated to the second: the cloud's clock was in [cloud, cloud + 1) at the answer.
    return (before + after) / 2 - (cloud + 0.5)


@dataclass
class BrokerOutcome:
    results: list[CheckResult] = field(default_factory=list)


def check_certificate(uplink: UplinkSettings) -> CheckResult:
    name = "device certificate"
    if uplink.tls_cert is None:
        return skipped(name, "agent.toml has no uplink.tls_cert (a broker without TLS)")
    try:
        cert = x509.load_pem_x509_certificate(Path(uplink.tls_cert).read_bytes())
    except (OSError, ValueError) as exc:
        return failed(name, f"cannot read {uplink.tls_cert}: {exc}", "re-run `fleet-provision enroll` to restore it")
    left_days = (cert.not_valid_after_utc.timestamp() - time.time()) / 86400
    until = cert.not_valid_after_utc.isoformat(timespec="seconds")
    if left_days <= 0:
        return failed(name, f"expired at {until}", "run `fleet-provision renew`", not_after=until)
    if left_days < RENEW_WARNING_DAYS:
        return failed(name, f"expires in {left_days:.0f} days ({until})", "run `fleet-provision renew`",
                      not_after=until)
    return passed(name, f"valid until {until} ({left_days:.0f} days)", not_after=until)


def check_broker(device_id: str, uplink: UplinkSettings, ack_wait_s: float, progress: Progress) -> BrokerOutcome:
    """The broker over TLS with the device's certificate, then the test batch; two results."""
    out = BrokerOutcome()
    where = f"{uplink.host}:{uplink.port}"
    probe = _tls_probe(uplink)
    if probe is not None:
        out.results.append(probe)
        out.results.append(skipped("test batch", "needs the broker"))
        return out
    client = _client(device_id, uplink)
    state: dict[str, Any] = {"connack": None, "suback": None, "puback": {}, "acks": []}
    client.on_connect = lambda _c, _u, _f, rc, _p: state.__setitem__("connack", rc)
    client.on_subscribe = lambda _c, _u, _mid, rcs, _p: state.__setitem__("suback", rcs)
    client.on_publish = lambda _c, _u, mid, rc, _p: state["puback"].__setitem__(mid, rc)
    client.on_message = lambda _c, _u, msg: state["acks"].append(bytes(msg.payload))
    try:
        client.connect(uplink.host, uplink.port, keepalive=30, clean_start=True)
        if not _loop_until(client, lambda: state["connack"] is not None, CONNECT_TIMEOUT_S):
            alert = _tls_probe(uplink, read_alert=True)
            out.results.append(alert or failed("broker", f"{where}: no CONNACK within {CONNECT_TIMEOUT_S:g} s",
                                               "is this port the fleet broker's MQTT TLS listener?"))
            out.results.append(skipped("test batch", "needs the broker"))
            return out
        if state["connack"].is_failure:
            out.results.append(failed("broker", f"{where} refused the connection: {state['connack']}",
                                      "the broker does not accept this device: regenerate its configuration "
                                      "(`fleet-cloud broker-config`) and reload it"))
            out.results.append(skipped("test batch", "needs the broker"))
            return out
        out.results.append(passed("broker", f"{where} accepted the device's certificate over TLS", broker=where))
        out.results.append(_test_batch(client, state, device_id, uplink, ack_wait_s, progress))
    except (OSError, ssl.SSLError) as exc:
        out.results.append(failed("broker", f"{where}: {exc}", "re-run; check the network"))
        out.results.append(skipped("test batch", "needs the broker"))
    finally:
        try:
            client.disconnect()
            client.loop(0.05)
        except OSError:
            pass
    return out


def _client(device_id: str, uplink: UplinkSettings) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id + CLIENT_SUFFIX, protocol=mqtt.MQTTv5)
    if uplink.tls_ca is not None:
        client.tls_set(ca_certs=str(uplink.tls_ca), certfile=str(uplink.tls_cert) if uplink.tls_cert else None,
                       keyfile=str(uplink.tls_key) if uplink.tls_key else None, cert_reqs=ssl.CERT_REQUIRED,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return client


def _loop_until(client: mqtt.Client, done: Any, timeout_s: float, progress: Progress | None = None,
                what: str = "") -> bool:
    start = time.monotonic()
    while not done():
        elapsed = time.monotonic() - start
        if elapsed >= timeout_s:
            return False
        if progress is not None:
            progress(f"waiting for {what}: {elapsed:.0f} s of {timeout_s:.0f} s")
        if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return bool(done())
    return True


def _test_batch(client: mqtt.Client, state: dict[str, Any], device_id: str, uplink: UplinkSettings,
                ack_wait_s: float, progress: Progress) -> CheckResult:
    name = "test batch"
    if uplink.signing_key is None:
        return skipped(name, "agent.toml names no uplink.signing_key")
    try:
        key = load_private_key(uplink.signing_key)
    except (OSError, ValueError) as exc:
        return failed(name, f"cannot load the signing key {uplink.signing_key}: {exc}",
                      "restore the key of this device's identity (it never leaves the device)")
    topic = ack_topic(device_id)
    client.subscribe(topic, qos=1)
    if not _loop_until(client, lambda: state["suback"] is not None, CONNECT_TIMEOUT_S):
        return failed(name, f"no SUBACK for {topic}", "re-run; check the network")
    if state["suback"][0].value >= REASON_FAILURE:
        return failed(name, f"the broker refused the subscription to {topic}: {state['suback'][0]}",
                      "the broker's ACL does not match this device: regenerate it (`fleet-cloud broker-config`)")
    batch = Batch(device_id, draw_epoch(int(time.time() * 1000)), 0, GENESIS_HASH, time.time(), ())
    blob = seal(batch, key)
    info = client.publish(batch_topic(device_id), blob, qos=1)
    if not _loop_until(client, lambda: info.mid in state["puback"], CONNECT_TIMEOUT_S):
        return failed(name, "no PUBACK for the test batch", "re-run; check the network")
    if state["puback"][info.mid].value >= REASON_FAILURE:
        return failed(name, f"the broker refused the batch: {state['puback'][info.mid]}",
                      "the broker's ACL does not match this device: regenerate it (`fleet-cloud broker-config`)")
    ack = None

    def acked() -> bool:
        nonlocal ack
        for payload in state["acks"]:
            try:
                candidate = decode_ack(payload)
            except WireError:
                continue
            mine = getattr(candidate, "batch_hash", None) in (None, b"", batch_hash(blob))
            if (candidate.boot_epoch, candidate.seq) == (batch.boot_epoch, batch.seq) and mine:
                ack = candidate
        return ack is not None

    if not _loop_until(client, acked, ack_wait_s, progress, "the cloud's ack of the test batch"):
        return failed(name, f"the broker took the test batch but the cloud sent no ack within {ack_wait_s:g} s",
                      "is the cloud's ingest worker running and connected to this broker? re-run with a longer "
                      "--ack-wait if the cloud is busy")
    assert ack is not None
    details = {"boot_epoch": batch.boot_epoch, "seq": 0, "status": ack.status, "reason": ack.reason}
    if ack.releases_rows:
        return passed(name, f"signed test batch {ack.status} by the cloud (carries no records)", **details)
    return failed(name, f"the cloud rejected the test batch: {ack.reason}",
                  ACK_FIXES.get(ack.reason, "see the cloud's log for this device"), **details)


def _tls_probe(uplink: UplinkSettings, read_alert: bool = False) -> CheckResult | None:
    """TCP, then the TLS handshake with the device's certificate; a failed ``broker`` result, or None.

    ``read_alert``: after the handshake, wait briefly for the server's alert. With TLS 1.3 a server that
    refuses the client certificate (unknown CA, revoked) says so only after the client's handshake ends."""
    where = f"{uplink.host}:{uplink.port}"
    try:
        sock = socket.create_connection((uplink.host, uplink.port), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        return failed("broker", f"cannot reach {where}: {exc}",
                      f"outbound TCP to {where} must be open (firewall, APN, VPN); is the broker running?")
    if uplink.tls_ca is None:
        sock.close()
        return None
    try:
        context = ssl.create_default_context(cafile=str(uplink.tls_ca))
        if uplink.tls_cert is not None and uplink.tls_key is not None:
            context.load_cert_chain(str(uplink.tls_cert), str(uplink.tls_key))
        with context.wrap_socket(sock, server_hostname=uplink.host) as tls:
            if read_alert:
                tls.settimeout(1.0)
                try:
                    tls.recv(1)
                except TimeoutError:
                    return None
    except ssl.SSLCertVerificationError as exc:
        clock = "not yet valid" in str(exc) or "expired" in str(exc)
        return failed("broker", f"{where}: the broker's certificate does not verify: {exc.verify_message}",
                      "fix the system clock first" if clock else "the broker's certificate is not from the fleet "
                      "CA in ca.pem: wrong broker address, or a broker not configured by `fleet-cloud broker-config`")
    except ssl.SSLError as exc:
        return failed("broker", f"{where}: TLS refused: {exc.reason or exc}",
                      "the broker does not accept this device's certificate: revoked, or issued by another cloud's "
                      "CA; ask an admin (a revoked device is enrolled again under a new identity)")
    except OSError as exc:
        return failed("broker", f"{where}: connection dropped during TLS: {exc}",
                      "the broker closed the connection: is this its TLS port?")
    finally:
        sock.close()
    return None
