"""``fleet-provision check``: the installer's preflight of an enrolled device, one pass/fail line per check.

In order: CAN interface, CAN traffic (bitrate guessed when wrong), vehicle protocol (J1939 or OBD-II
ECUs), VIN (read from the vehicle, against the enrolled one), GNSS fix and its quality, clock (against
the cloud's Date header and GNSS time), device certificate, broker (mutual TLS with the device's
certificate) and a signed test batch the cloud must acknowledge. Each failure carries its fix. It
reads what enrolment wrote (``enrolment.json``, ``agent.toml``) and uses the agent's own sources,
decoders and wire code (see ``check_can``, ``check_bus``, ``check_gnss``, ``check_cloud``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import AgentConfig, load_config
from firmware_profiles import load_profile
from provisioning.check_can import check_can
from provisioning.check_cloud import check_broker, check_certificate, check_clock
from provisioning.check_gnss import check_gnss
from provisioning.checks import CheckResult, Progress, failed, passed, skipped
from provisioning.enroll import AGENT_TOML, MARKER
from provisioning.identity import ProvisionError, load_identity

#: Default waits (seconds): CAN traffic at the configured bitrate (J1939 ECUs broadcast every 20-100 ms
#: with the ignition on), a GNSS fix (a warm receiver fixes within about 30 s; cold starts can need
#: longer, hence the option), and the cloud's ack of the test batch.
DEFAULT_TRAFFIC_WAIT_S = 5.0
DEFAULT_FIX_WAIT_S = 90.0
DEFAULT_ACK_WAIT_S = 20.0
GROUPS = ("can", "gnss", "cloud")


@dataclass(frozen=True)
class CheckOptions:
    traffic_wait_s: float = DEFAULT_TRAFFIC_WAIT_S
    fix_wait_s: float = DEFAULT_FIX_WAIT_S
    ack_wait_s: float = DEFAULT_ACK_WAIT_S
    groups: tuple[str, ...] = GROUPS


@dataclass(frozen=True)
class Enrolment:
    device_id: str
    vin: str
    cloud: str | None
    config: AgentConfig


def load_enrolment(directory: Path) -> Enrolment:
    ident = load_identity(directory)
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ProvisionError(f"{ident.device_id} is not enrolled ({directory / MARKER} missing): run "
                             f"`fleet-provision enroll --dir {directory} ...` first") from None
    return Enrolment(ident.device_id, str(marker["vin"]), marker.get("cloud"), load_config(directory / AGENT_TOML))


def run_checks(directory: Path, options: CheckOptions, progress: Progress,
               on_result: Progress | None = None) -> tuple[str, list[CheckResult]]:
    """Every check in order; ``on_result`` is called with each rendered line as soon as it is known."""
    from provisioning.checks import render_line

    enrolment = load_enrolment(directory)
    config = enrolment.config
    results: list[CheckResult] = []

    def add(*new: CheckResult) -> None:
        for r in new:
            results.append(r)
            if on_result is not None:
                on_result(render_line(r))

    holder = _agent_holding_ports(config)
    if holder is not None:
        add(holder)
    serial_can = config.can is not None and config.can.interface == "slcan"
    if "can" in options.groups and holder is not None and serial_can:
        add(*(skipped(n, "the running agent holds the adapter") for n in ("CAN traffic", "vehicle protocol", "VIN")))
    elif "can" in options.groups:
        can = check_can(config, load_profile(config.profile), options.traffic_wait_s, progress)
        add(*can.results)
        if not any(r.name == "VIN" for r in can.results):
            add(_vin(enrolment.vin, can.vin, can.vin_source))
    gnss_offset = None
    if "gnss" in options.groups and holder is not None and config.gnss is not None:
        add(skipped("GNSS fix", "the running agent holds the receiver's port"))
    elif "gnss" in options.groups:
        gnss = check_gnss(config, options.fix_wait_s, progress)
        add(gnss.result)
        gnss_offset = gnss.clock_offset_s
    if "cloud" in options.groups:
        add(check_clock(enrolment.cloud, gnss_offset))
        if config.uplink is None:
            add(skipped("broker", "agent.toml has no [uplink] section"))
        else:
            add(check_certificate(config.uplink))
            add(*check_broker(enrolment.device_id, config.uplink, options.ack_wait_s, progress).results)
    return enrolment.device_id, results


def _agent_holding_ports(config: AgentConfig) -> CheckResult | None:
    """A running agent reads the same serial ports (slcan adapter, GNSS receiver): two readers of one tty each
    get part of the bytes, so the check would see garbage. SocketCAN is shared by the kernel and is fine."""
    if not ((config.can is not None and config.can.interface == "slcan") or config.gnss is not None):
        return None
    try:
        pid = int(json.loads(config.status_path.read_text(encoding="utf-8"))["pid"])
        os.kill(pid, 0)
    except PermissionError:
        pass  # alive, under the agent's own user
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no status, or its process is gone: nobody holds the ports
    return failed("agent stopped", f"fleet-agent (pid {pid}) is running and reads the serial ports the check needs",
                  "stop it for the check (`systemctl stop fleet-agent`), then start it again")


def _vin(enrolled: str, read: str | None, source: str | None) -> CheckResult:
    if read is None:
        return failed("VIN", f"the vehicle did not report its VIN (enrolled: {enrolled})",
                      "turn the ignition on and re-run; if this vehicle never sends its VIN, compare the VIN "
                      "plate by eye with the enrolled one", enrolled=enrolled)
    if read.strip().upper() != enrolled.upper():
        return failed("VIN", f"the vehicle reports {read} (from {source}), the device is enrolled for {enrolled}",
                      "is the device in the right vehicle? if the enrolled VIN was mistyped, ask an admin to "
                      f"revoke this device and enrol the unit again with --vehicle {read}", enrolled=enrolled,
                      read=read, source=source)
    return passed("VIN", f"{read} (from {source}) matches the enrolment", enrolled=enrolled, read=read, source=source)
