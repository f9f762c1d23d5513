"""``fleet-provision``: what an installer runs on the device: ``init`` (keys, CSR) and ``enroll`` (certificate, config).

Exit codes: 0 done, 1 refused (by the cloud, or the device's state forbids it: the message says what
to do), 2 usage or local error, 3 the cloud could not be reached (re-run the same command to resume).
``--json`` prints one JSON object per command for scripts; otherwise lines for a person at a terminal.
``check`` (``provisioning.check``) exits 0 when every check passed and 1 when any failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.errors import FleetError
from provisioning.check import (
    DEFAULT_ACK_WAIT_S,
    DEFAULT_FIX_WAIT_S,
    DEFAULT_TRAFFIC_WAIT_S,
    GROUPS,
    CheckOptions,
    run_checks,
)
from provisioning.checks import TerminalProgress, as_json, render_summary
from provisioning.enroll import DEFAULT_DATA_DIR, CloudUnreachable, Sources, enroll
from provisioning.identity import DEFAULT_DIR, init_identity, load_identity
from provisioning.keys import renew, rotate_key

#: Longest any wait of ``check`` may be set to: an installer re-runs rather than waits longer.
MAX_WAIT_S = 1800.0


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
    rot = sub.add_parser("rotate-key", help="roll the batch-signing key (the old key signs the new one); resumable")
    rot.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"identity directory (default {DEFAULT_DIR})")
    ren = sub.add_parser("renew", help="renew the device's TLS certificate before it expires; idempotent")
    ren.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"identity directory (default {DEFAULT_DIR})")
    chk = sub.add_parser("check", help="preflight: CAN, vehicle, VIN, GNSS, clock, broker, a test batch")
    chk.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"identity directory (default {DEFAULT_DIR})")
    chk.add_argument("--traffic-wait", type=_seconds, default=DEFAULT_TRAFFIC_WAIT_S, metavar="S",
                     help=f"seconds to wait for CAN traffic (default {DEFAULT_TRAFFIC_WAIT_S:g})")
    chk.add_argument("--fix-wait", type=_seconds, default=DEFAULT_FIX_WAIT_S, metavar="S",
                     help=f"seconds to wait for a GNSS fix (default {DEFAULT_FIX_WAIT_S:g})")
    chk.add_argument("--ack-wait", type=_seconds, default=DEFAULT_ACK_WAIT_S, metavar="S",
                     help=f"seconds to wait for the cloud's ack of the test batch (default {DEFAULT_ACK_WAIT_S:g})")
    chk.add_argument("--only", type=_groups, default=GROUPS, metavar="GROUPS",
                     help=f"comma-separated subset of {','.join(GROUPS)} (default: all)")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_WAIT_S:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and {MAX_WAIT_S:g}, got {text!r}")
    return value


def _groups(text: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in text.split(",") if g.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"groups are {', '.join(GROUPS)}; got {text!r}")
    return groups


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
        if args.command == "check":
            return _check(args)
        if args.command == "rotate-key":
            return _rotate(args)
        if args.command == "renew":
            return _renew(args)
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


def _rotate(args: argparse.Namespace) -> int:
    ident = load_identity(args.dir)
    done = rotate_key(ident)
    when = datetime.datetime.fromtimestamp(done.sealed_before, datetime.UTC).isoformat(timespec="seconds")
    resumed = " (resumed)" if done.resumed else ""
    lines = [f"{done.device_id}: signing key rotated{resumed}; now {done.fingerprint[:16]}",
             f"  batches the old key sealed up to {when} (device clock) are still accepted",
             "  a running agent signs with the new key from its next batch (no restart needed)"]
    _emit(args, {"ok": True, "device_id": done.device_id, "fingerprint": done.fingerprint,
                 "sealed_before": done.sealed_before, "resumed": done.resumed}, lines)
    return 0


def _renew(args: argparse.Namespace) -> int:
    ident = load_identity(args.dir)
    done = renew(ident)
    lines = [f"{done.device_id}: " + (f"new certificate, valid until {done.not_after}; restart the agent to use it"
                                      if done.renewed else f"certificate valid until {done.not_after}; not yet due "
                                      "for renewal (nothing changed)")]
    _emit(args, {"ok": True, "device_id": done.device_id, "renewed": done.renewed, "not_after": done.not_after},
          lines)
    return 0


def _check(args: argparse.Namespace) -> int:
    progress = TerminalProgress(quiet=args.json)

    def show(line: str) -> None:
        progress.clear()
        if not args.json:
            print(line, flush=True)

    options = CheckOptions(args.traffic_wait, args.fix_wait, args.ack_wait, args.only)
    device_id, results = run_checks(args.dir, options, progress, show)
    progress.clear()
    if args.json:
        print(json.dumps(as_json(device_id, results)))
    else:
        print(render_summary(results))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
