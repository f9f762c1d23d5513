"""Asking the vehicle during ``fleet-provision check``: which ECUs are on the bus and what VIN they report.

J1939: every extended frame's source address is a node; then one request (PGN 59904, J1939-21 5.4.2) each
for the address claims (PGN 60928, J1939-81 4.5.2: every node answers with its NAME), the vehicle
identification (PGN 65260, sent by BAM) and the engine hours (PGN 65253). The agent's own
``J1939Decoder`` decodes the answers (transport reassembly, VIN, scaled hours).

OBD-II: the agent's own ``ObdPoller`` (functional ``01 00`` discovery, then ``09 02`` for the VIN with the
flow control a multi-frame answer needs) and ``ObdDecoder``; the responders are the ECUs whose bitmaps came back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from edge_agent.counters import Counters
from edge_agent.decoding.catalog import SignalCatalog
from edge_agent.decoding.j1939.decoder import J1939Decoder
from edge_agent.decoding.obd.decoder import ObdDecoder
from edge_agent.decoding.obd.poller import ObdPoller, drive
from edge_agent.model import RawFrame, VehicleId
from edge_agent.sources import FrameSink, FrameSource
from firmware_profiles import Profile
from provisioning.checks import CheckResult, Progress, failed, passed

PGN_REQUEST = 59904  # J1939-21 5.4.2
PGN_ADDRESS_CLAIMED = 60928  # J1939-81 4.5.2
PGN_VI = 65260  # J1939-71: vehicle identification
PGN_HOURS = 65253  # J1939-71: engine hours, revolutions
REQUEST_PRIORITY = 6  # J1939-21: the default priority of a request
GLOBAL = 0xFF
#: Our source address while asking: 249, "off-board diagnostic-service tool #1" (J1939 Appendix B,
#: Table B2), which is what an installer's preflight is; the agent itself only listens on J1939. We do not
#: claim it first (J1939-81 expects a claim before other traffic): the check sends three requests and
#: leaves, and a service tool plugged in at the same time would see them as its own address's.
CHECK_ADDRESS = 0xF9
#: How long answers are collected. A node answers a request within Tr = 200 ms (J1939-21 5.12.3); a VIN
#: comes by BAM, its packets 50-200 ms apart (J1939-21 5.10.2.1), four packets for 17 characters and '*'.
ANSWER_WAIT_S = 1.5
#: Preferred addresses of common ECUs (J1939 Appendix B, Table B2), to name what was found.
PREFERRED = {0x00: "engine #1", 0x01: "engine #2", 0x03: "transmission #1", 0x0B: "brakes system controller",
             0x17: "instrument cluster #1", 0x21: "body controller", 0x31: "cab controller", 0xF9: "service tool #1"}
#: The profile signal of PGN 65253 that carries total engine hours.
ENGINE_HOURS = "engine_hours"
#: Longest the OBD-II probe runs: discovery, a few PID requests and the VIN take well under a second on a
#: vehicle that answers within P2 (50 ms, ISO 15765-4); the rest is room for slow gateways.
OBD_PROBE_S = 4.0
#: The poller is driven at least this often (it measures P2 on the times it is given).
OBD_STEP_S = 0.005


@dataclass
class BusFindings:
    protocol: str = ""
    ecus: list[dict[str, Any]] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    vin: str | None = None
    vin_source: str | None = None
    engine_hours: float | None = None
    error: str | None = None
    wrong_protocol: bool = False

    def result(self, profile: Profile) -> CheckResult:
        name = "vehicle protocol"
        details = {"protocol": self.protocol, "ecus": self.ecus, "answered": self.answered, "vin": self.vin,
                   "engine_hours": self.engine_hours}
        if self.error is not None:
            return failed(name, f"asking the vehicle failed: {self.error}", "re-run; if it persists, re-plug the "
                          "adapter", **details)
        if self.wrong_protocol:
            other = "light_obd2 (OBD-II)" if profile.protocol == "j1939" else "heavy_truck_j1939 (J1939)"
            return failed(name, f"the bus has traffic but no {profile.protocol.upper()} node answered",
                          f"is the profile right? this bus looks like {other}: enrol with that profile, or wire "
                          "the adapter to the bus the profile expects", **details)
        if not self.ecus:
            return failed(name, f"no {profile.protocol.upper()} ECU answered", "is the ignition on (not just "
                          "accessory)? some vehicles answer diagnostics only with the engine running", **details)
        ecus = ", ".join(e["label"] for e in self.ecus)
        asked = f"; answered: {', '.join(self.answered)}" if self.answered else "; no answer to requests"
        return passed(name, f"{self.protocol}: {len(self.ecus)} ECU(s): {ecus}{asked}", **details)


def request_frame(pgn: int) -> RawFrame:
    """A J1939 request for ``pgn`` to every node (PDU1: destination in PS)."""
    can_id = REQUEST_PRIORITY << 26 | (PGN_REQUEST >> 8) << 16 | GLOBAL << 8 | CHECK_ADDRESS
    return RawFrame(time.time(), can_id, pgn.to_bytes(3, "little"), True)


def parse_name(data: bytes) -> dict[str, int]:
    """The fields of a J1939 NAME (J1939-81 4.1.1) an installer may want: manufacturer and function."""
    name = int.from_bytes(data[:8].ljust(8, b"\xff"), "little")
    return {"manufacturer": name >> 21 & 0x7FF, "function": name >> 40 & 0xFF, "ecu_instance": name >> 32 & 0x7,
            "industry_group": name >> 60 & 0x7}


def probe_j1939(source: FrameSource, profile: Profile, seen: list[RawFrame], progress: Progress) -> BusFindings:
    assert isinstance(source, FrameSink)
    for pgn in (PGN_ADDRESS_CLAIMED, PGN_VI, PGN_HOURS):
        source.send(request_frame(pgn))
    answers: list[RawFrame] = []
    deadline = time.monotonic() + ANSWER_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        progress("asking the J1939 ECUs for address claims, VIN and engine hours...")
        answers.extend(source.read_batch(512, min(0.1, left)) or [])
    frames = [*seen, *answers]
    findings = BusFindings(protocol="J1939")
    extended = [f for f in frames if f.is_extended and f.arbitration_id & 0xFF != CHECK_ADDRESS]
    if not extended:
        findings.wrong_protocol = bool(frames)
        return findings
    claims: dict[int, dict[str, int]] = {}
    for f in extended:
        if f.arbitration_id >> 16 & 0xFF == PGN_ADDRESS_CLAIMED >> 8 and len(f.data) >= 8:
            claims[f.arbitration_id & 0xFF] = parse_name(f.data)
    addresses = sorted({f.arbitration_id & 0xFF for f in extended} - {0xFE})  # 254: the null address
    for sa in addresses:
        label = f"0x{sa:02X}" + (f" {PREFERRED[sa]}" if sa in PREFERRED else "")
        if sa in claims:
            label += f" (claimed, function {claims[sa]['function']}, manufacturer {claims[sa]['manufacturer']})"
        findings.ecus.append({"address": sa, "label": label, "name": claims.get(sa)})
    decoded = J1939Decoder(SignalCatalog.from_profile(profile), Counters()).decode_batch(frames)
    if claims:
        findings.answered.append(f"{len(claims)} address claim(s)")
    if decoded.vehicle_ids:
        vid = decoded.vehicle_ids[-1]
        findings.vin, findings.vin_source = vid.vin, vid.source
        findings.answered.append("VIN")
    hours = [s.value for s in decoded.samples if s.signal == ENGINE_HOURS]
    if hours:
        findings.engine_hours = float(hours[-1])
        findings.answered.append(f"engine hours {findings.engine_hours:g} h")
    return findings


def probe_obd(source: FrameSource, profile: Profile, progress: Progress) -> BusFindings:
    assert isinstance(source, FrameSink)
    poller = ObdPoller(profile, Counters(), ignition=True)  # ask for the VIN whether or not the engine runs
    decoder = ObdDecoder(profile, Counters())
    findings = BusFindings(protocol="OBD-II")
    vin: VehicleId | None = None
    extended_seen = False
    deadline = time.monotonic() + OBD_PROBE_S
    while time.monotonic() < deadline and not (poller.discovered and vin is not None):
        progress("asking the OBD-II ECUs (functional 01 00, then the VIN)...")
        frames = source.read_batch(256, OBD_STEP_S) or []
        for f in frames:
            extended_seen |= f.is_extended
            vin = next((r for r in decoder.feed(f) if isinstance(r, VehicleId)), vin)
        drive(poller, frames, source, time.time())
    for responder, pids in sorted(poller.supported_by.items()):
        ident = f"0x{responder:08X}" if responder > 0x7FF else f"0x{responder:03X}"
        findings.ecus.append({"address": responder, "label": f"{ident} ({len(pids)} PIDs)", "pids": sorted(pids)})
    if findings.ecus:
        findings.answered.append("01 00")
    if vin is not None:
        findings.vin, findings.vin_source = vin.vin, vin.source
        findings.answered.append("09 02 (VIN)")
    findings.wrong_protocol = not findings.ecus and extended_seen
    return findings
