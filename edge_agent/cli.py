"""``fleet-agent``: the vehicle's command line: ``run`` (the daemon), ``status``, ``replay``, ``private``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edge_agent.errors import FleetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet-agent", description="Fleet telematics edge agent")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser(
        "replay",
        help="run captures through the agent's decoding and outbox, and print a summary",
        description="Replay CAN (candump .log, Vector .asc, .blf) and NMEA captures through the same "
        "sources, decoding and outbox the daemon uses.",
    )
    replay.add_argument("--profile", required=True, help="firmware profile name or folder")
    replay.add_argument("--can", type=Path, help="CAN capture (.log, .asc, .blf)")
    replay.add_argument("--gnss", type=Path, help="NMEA 0183 text capture")
    replay.add_argument("--db", type=Path, required=True, help="outbox SQLite file (created if absent)")
    replay.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    replay.add_argument(
        "--pace", choices=("fast", "realtime"), default="fast",
        help="as fast as possible (default) or at the captures' own pace",
    )
    replay.add_argument("--quota-bytes", type=int, help="outbox byte quota (default: the agent's)")
    replay.add_argument("--geofences", type=Path, help="GeoJSON geofences to detect crossings of")
    replay.add_argument("--no-detect", action="store_true", help="decode and store only; no detectors")
    run = sub.add_parser("run", help="run the agent unattended (systemd starts this)")
    run.add_argument("--config", required=True, help="agent.toml")
    status = sub.add_parser("status", help="show a running agent's counters and outbox")
    status.add_argument("--config", required=True, help="agent.toml of the agent to inspect")
    status.add_argument("--json", action="store_true", help="print the raw status JSON")
    private = sub.add_parser("private", help="the driver's private-mode switch (where fleet policy allows it)",
                             description="on: send no location; off: send it even outside working hours; "
                             "auto: follow the working-hours schedule of [privacy].")
    private.add_argument("mode", choices=("on", "off", "auto"))
    private.add_argument("--config", required=True, help="agent.toml of the agent")
    return parser


def _run(args: argparse.Namespace) -> int:
    from edge_agent.daemon import run_daemon

    return run_daemon(args.config)


def _private(args: argparse.Namespace) -> int:
    import time

    from edge_agent.config import load_config
    from edge_agent.privacy import write_switch

    config = load_config(args.config)
    if not config.privacy.allowed:
        print("fleet-agent private: refused: fleet policy does not allow private mode on this vehicle "
              "([privacy] allowed = false)", file=sys.stderr)
        return 1
    write_switch(config.data_dir, {"on": True, "off": False, "auto": None}[args.mode], time.time())
    print(f"private mode {args.mode}: the agent applies it within {config.status_interval_s:g} s")
    return 0


def _status(args: argparse.Namespace) -> int:
    from edge_agent.config import load_config
    from edge_agent.status import format_status, read_status

    config = load_config(args.config)
    try:
        status = read_status(config.status_path)
    except FileNotFoundError:
        print(f"fleet-agent status: no status at {config.status_path}: the agent has not run here", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"fleet-agent status: unreadable status file: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, sort_keys=True) if args.json else format_status(status))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from edge_agent.replay import ReplayOptions, format_summary, run_replay

    if args.can is None and args.gnss is None:
        print("fleet-agent replay: give --can FILE, --gnss FILE, or both", file=sys.stderr)
        return 2
    for path in (args.can, args.gnss, args.geofences):
        if path is not None and not path.is_file():
            print(f"fleet-agent replay: {path}: no such file", file=sys.stderr)
            return 2
    options = ReplayOptions(
        profile=args.profile, db=args.db, can=args.can, gnss=args.gnss, pace=args.pace,
        quota_bytes=args.quota_bytes, detect=not args.no_detect, geofences=args.geofences,
    )
    summary = run_replay(options)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(format_summary(summary))
    return 0


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: what journald and log shippers parse without guessing."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(verbose: bool, *, structured: bool) -> None:
    handler = logging.StreamHandler()
    if structured:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else (logging.INFO if structured else logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, structured=args.command == "run")
    try:
        if args.command == "replay":
            return _replay(args)
        if args.command == "run":
            return _run(args)
        if args.command == "status":
            return _status(args)
        if args.command == "private":
            return _private(args)
    except FleetError as exc:
        print(f"fleet-agent {args.command}: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
