"""``fleet-provision``: what an installer runs on the device: ``init`` (keys, CSR) and ``enroll`` (certificate, config).

Exit codes: 0 done, 1 refused (by the cloud, or the device's state forbids it: the message says what
to do), 2 usage or local error, 3 the cloud could not be reached (re-run the same command to resume).
``--json`` prints one JSON object per command for scripts; otherwise lines for a person at a terminal.
``check`` (preflight of CAN, GNSS, clock, broker) is not implemented yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.errors import FleetError
from provisioning.enroll import DEFAULT_DATA_DIR, CloudUnreachable, Sources, enroll
from provisioning.identity import DEFAULT_DIR, init_identity, load_identity


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet-provision", description="Provision a fleet telematics device")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the device's keys and CSR (never overwrites existing keys)")
    init.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"identity directory (default {DEFAULT_DIR})")
    init.add_argument("--device-id", help="device id (default: derived from the signing key)")
    enr = sub.add_parser("enroll", help="enrol with the cloud using an installer token (re-run to resume)")
    enr.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"identity directory (default {DEFAULT_DIR})")
    enr.add_argument("--cloud", required=True, help="cloud API base URL, e.g. https://fleet.example.com")
    enr.add_argument("--token", required=True, help="installer token from the fleet admin")
    enr.add_argument("--vehicle", required=True, help="VIN of the vehicle the device is fitted to")
    enr.add_argument("--profile", required=True, help="vehicle family profile, e.g. heavy_truck_j1939")
    enr.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the agent's data directory")
    enr.add_argument("--can-interface", default="socketcan", help="python-can interface ('' for none)")
    enr.add_argument("--can-channel", default="can0", help="CAN channel (default can0)")
    enr.add_argument("--gnss-port", help="GNSS serial port, e.g. /dev/ttyS1")
    return parser


def _emit(args: argparse.Namespace, obj: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(obj))
    else:
        for line in lines:
            print(line)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            return _init(args)
        return _enroll(args)
    except CloudUnreachable as exc:
        code, kind, message = 3, "unreachable", str(exc)
    except FleetError as exc:  # CloudRefused, ProvisionError, ConfigError
        code, kind, message = 1, "refused", str(exc)
    except OSError as exc:
        code, kind, message = 2, "error", f"{exc.filename or ''}: {exc.strerror or exc}"
    if args.json:
        print(json.dumps({"ok": False, "error": kind, "message": message}))
    else:
        print(f"fleet-provision: {message}", file=sys.stderr)
    return code


def _init(args: argparse.Namespace) -> int:
    ident = init_identity(args.dir, args.device_id)
    lines = [f"device id: {ident.device_id}"]
    lines += [f"  created {args.dir / name}" for name in ident.created] or ["  keys and CSR already present: kept"]
    lines.append(f"next: fleet-provision enroll --dir {args.dir} --cloud URL --token TOKEN --vehicle VIN "
                 "--profile NAME")
    _emit(args, {"ok": True, "device_id": ident.device_id, "dir": str(args.dir), "created": list(ident.created)},
          lines)
    return 0


def _enroll(args: argparse.Namespace) -> int:
    ident = load_identity(args.dir)
    if not args.json:
        print(f"enrolling {ident.device_id} (VIN {args.vehicle}, profile {args.profile}) with {args.cloud} ...",
              flush=True)
    sources = Sources(args.can_interface or None, args.can_channel or None, args.gnss_port)
    result = enroll(ident, args.cloud, args.token, args.vehicle, args.profile, data_dir=args.data_dir,
                    sources=sources)
    if result.state == "already_enrolled":
        lines = [f"{result.device_id} is already enrolled (certificate valid until {result.not_after}); nothing to do"]
    else:
        lines = [f"enrolled {result.device_id}{' (resumed)' if result.resumed else ''}",
                 *(f"  wrote {args.dir / f}" for f in result.files),
                 f"  broker {result.broker}, certificate valid until {result.not_after}"]
    _emit(args, {"ok": True, "device_id": result.device_id, "state": result.state, "resumed": result.resumed,
                 "files": [str(args.dir / f) for f in result.files], "broker": result.broker,
                 "not_after": result.not_after}, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
