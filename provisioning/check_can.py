"""Preflight of the CAN side: the interface opens, traffic is seen (the bitrate guessed when it is wrong),
the vehicle answers J1939 or OBD-II, which ECUs are there, and the VIN they report.

The agent's own sources open the bus (``edge_agent.app.build_can``: slcan in bursts, python-can for the
rest), so the check sees what the agent will see. Listening comes first and is passive: an slcan adapter
is opened listen-only while bitrates are tried, because a node transmitting at the wrong bitrate turns
every frame on the bus into an error frame. On OBD-II a silent bus is normal (many vehicles gate the
diagnostic connector), so there each bitrate also gets one functional ``01 00`` request, as the
ISO 15765-4 initialisation sequence does (500 kbit/s first, then 250 kbit/s).

The bitrate can only be changed where the driver sets it on open (slcan, and python-can's hardware
drivers); SocketCAN's is set by the system (``ip link``), so there only the configured rate is tried and
the fix names the commands. The protocol probes live in ``check_bus``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_agent.app import build_can
from edge_agent.config import AgentConfig
from edge_agent.counters import Counters
from edge_agent.decoding.obd.isotp import single_frame
from edge_agent.errors import FleetError
from edge_agent.model import RawFrame
from edge_agent.sources import FrameSink, FrameSource
from firmware_profiles import Profile
from provisioning.check_bus import BusFindings, probe_j1939, probe_obd
from provisioning.checks import CheckResult, Progress, failed, passed, skipped

#: Bitrates tried when the configured one shows no traffic: J1939-11 250 kbit/s, J1939-14 and ISO 15765-4
#: 500 kbit/s (ISO 15765-4 also allows 250 kbit/s), and 1 Mbit/s used on some off-highway buses.
COMMON_BITRATES = (250_000, 500_000, 1_000_000)
#: The protocol's usual rate, tried first when agent.toml names none.
PROTOCOL_BITRATE = {"j1939": 250_000, "obd2": 500_000}
#: Interfaces whose bitrate is not set by the driver when the bus opens (the system or nothing sets it).
FIXED_BITRATE = frozenset({"socketcan", "virtual", "udp_multicast", "socketcand"})
#: After the first frame, keep listening this long: every J1939 ECU sends something at least once a
#: second (DM1 is broadcast every second, J1939-73 5.7.1), so one second shows the nodes on the bus.
SETTLE_S = 1.0
#: Frames read per call while listening.
READ_FRAMES = 512


@dataclass
class CanOutcome:
    results: list[CheckResult] = field(default_factory=list)
    vin: str | None = None
    vin_source: str | None = None


def _kbit(bitrate: int | None) -> str:
    return "the adapter's own bitrate" if bitrate is None else f"{bitrate // 1000} kbit/s"


def candidates(interface: str, configured: int | None, protocol: str) -> list[int | None]:
    """Bitrates to try, the configured one (as the agent will open it) first."""
    if interface in FIXED_BITRATE:
        return [configured]
    preferred = PROTOCOL_BITRATE.get(protocol, COMMON_BITRATES[0])
    out: list[int | None] = [configured]
    for b in (preferred, *COMMON_BITRATES):
        if b not in out:
            out.append(b)
    return out


def open_bus(config: AgentConfig, bitrate: int | None, listen_only: bool, counters: Counters) -> FrameSource:
    assert config.can is not None
    options = dict(config.can.options)
    if config.can.interface == "slcan" and options.get("driver", "burst") != "python-can":
        options["listen_only"] = listen_only
    can = replace(config.can, bitrate=bitrate, options=options)
    source = build_can(replace(config, can=can), counters)
    assert source is not None
    return source


def listen(source: FrameSource, seconds: float, progress: Progress, label: str) -> list[RawFrame]:
    """Frames seen within ``seconds`` (or ``SETTLE_S`` after the first one), with progress while silent."""
    start = time.monotonic()
    deadline = start + seconds
    frames: list[RawFrame] = []
    while (now := time.monotonic()) < deadline:
        progress(f"waiting for CAN traffic {label}: {now - start:.0f} s of {seconds:.0f} s")
        batch = source.read_batch(READ_FRAMES, min(0.1, deadline - now)) or []
        if batch and not frames:
            deadline = min(deadline, time.monotonic() + SETTLE_S)
        frames.extend(batch)
    return frames


def _interface_state(channel: str) -> str | None:
    """SocketCAN: the kernel's operstate of the interface (``up``, ``down``, ``unknown`` for vcan), or None."""
    try:
        return Path("/sys/class/net", channel, "operstate").read_text().strip()
    except OSError:
        return None


def check_can(config: AgentConfig, profile: Profile, traffic_wait_s: float, progress: Progress) -> CanOutcome:
    out = CanOutcome()
    if config.can is None:
        out.results.append(skipped("CAN interface", "no [can] section in agent.toml (a GNSS-only install)"))
        return out
    can = config.can
    where = f"{can.interface} {can.channel}"
    if can.interface == "socketcan" and _interface_state(can.channel) == "down":
        out.results.append(failed("CAN interface", f"{where} is down",
                                  f"bring it up: ip link set {can.channel} up type can bitrate "
                                  f"{can.bitrate or PROTOCOL_BITRATE.get(profile.protocol, 250_000)}"))
        return out
    counters = Counters()
    found: tuple[int | None, list[RawFrame]] | None = None
    tried: list[str] = []
    for i, bitrate in enumerate(candidates(can.interface, can.bitrate, profile.protocol)):
        # On OBD-II a request is part of the probe, so the adapter cannot stay listen-only.
        listen_only = profile.protocol != "obd2"
        try:
            source = open_bus(config, bitrate, listen_only, counters)
        except FleetError as exc:
            out.results.append(failed("CAN interface", f"cannot open {where}: {exc}", _open_fix(can.interface,
                                                                                                can.channel)))
            return out
        try:
            if i == 0:
                out.results.append(passed("CAN interface", f"{where} opened", interface=can.interface,
                                          channel=can.channel))
            wait = traffic_wait_s if i == 0 else max(traffic_wait_s / 2, SETTLE_S)
            if profile.protocol == "obd2":
                _obd_knock(source, profile)
            frames = listen(source, wait, progress, f"on {where} at {_kbit(bitrate)}")
        except FleetError as exc:
            out.results.append(failed("CAN traffic", f"reading {where} failed: {exc}",
                                      "check the adapter's USB/cable; unplugged adapters end the read"))
            return out
        finally:
            source.close()
        tried.append(_kbit(bitrate))
        if frames:
            found = (bitrate, frames)
            break
    if found is None:
        out.results.append(failed("CAN traffic", f"no frames on {where} at {', '.join(tried)}",
                                  _silent_fix(config, profile)))
        out.results += [skipped(n, "needs CAN traffic") for n in ("vehicle protocol", "VIN")]
        return out
    bitrate, frames = found
    ids = {f.arbitration_id for f in frames}
    details = {"bitrate": bitrate, "frames": len(frames), "distinct_ids": len(ids)}
    if bitrate != can.bitrate:
        out.results.append(failed(
            "CAN traffic", f"no traffic at {_kbit(can.bitrate)}, but {len(frames)} frames at {_kbit(bitrate)}",
            f"set `bitrate = {bitrate}` in the [can] section of agent.toml ({config.source})", **details))
    else:
        out.results.append(passed("CAN traffic", f"{len(frames)} frames ({len(ids)} ids) at {_kbit(bitrate)}",
                                  **details))
    _probe(config, profile, bitrate, frames, out, counters, progress)
    return out


def _obd_knock(source: FrameSource, profile: Profile) -> None:
    """One functional ``01 00``, as the ISO 15765-4 initialisation sequence sends at each bitrate."""
    assert profile.obd is not None and isinstance(source, FrameSink)
    source.send(RawFrame(time.time(), profile.obd.request_id, single_frame(bytes([0x01, 0x00])),
                         profile.obd.request_id > 0x7FF))


def _probe(config: AgentConfig, profile: Profile, bitrate: int | None, frames: list[RawFrame], out: CanOutcome,
           counters: Counters, progress: Progress) -> None:
    try:
        source = open_bus(config, bitrate, False, counters)
    except FleetError as exc:
        out.results.append(failed("vehicle protocol", f"cannot reopen the bus to ask the vehicle: {exc}",
                                  "re-run; if it persists, re-plug the adapter"))
        return
    try:
        findings = (probe_obd(source, profile, progress) if profile.protocol == "obd2"
                    else probe_j1939(source, profile, frames, progress))
    except FleetError as exc:
        findings = BusFindings(error=str(exc))
    finally:
        source.close()
    out.results.append(findings.result(profile))
    out.vin, out.vin_source = findings.vin, findings.vin_source


def _open_fix(interface: str, channel: str) -> str:
    if interface == "socketcan":
        return (f"does {channel} exist (`ip link show {channel}`)? load the driver of the CAN hat/adapter, or "
                f"use interface = \"slcan\" with the adapter's serial port")
    if interface == "slcan":
        return (f"is the adapter plugged in at {channel}? (`ls -l /dev/serial/by-id/`); the agent's user needs the "
                f"dialout group")
    return f"check that the python-can interface {interface!r} is installed and the channel {channel!r} exists"


def _silent_fix(config: AgentConfig, profile: Profile) -> str:
    assert config.can is not None
    pins = ("the 9-pin Deutsch connector's CAN-H/CAN-L (pins C and D) or the engine ECU's J1939 backbone"
            if profile.protocol == "j1939" else "the OBD-II connector's CAN-H/CAN-L (pins 6 and 14)")
    text = f"is the ignition on? is the adapter wired to {pins}, not swapped?"
    if config.can.interface in FIXED_BITRATE:
        others = "/".join(str(b) for b in COMMON_BITRATES)
        text += (f" the bitrate of {config.can.channel} is set by the system: try "
                 f"`ip link set {config.can.channel} down && ip link set {config.can.channel} type can bitrate "
                 f"<{others}> && ip link set {config.can.channel} up`")
    return text
