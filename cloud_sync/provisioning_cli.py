"""The provisioning subcommands of ``fleet-cloud``: ``broker-config`` and ``installer-token``.

Kept out of ``cloud_sync.cli`` so that module stays small; it registers these parsers and hands the
parsed arguments here. Imports of the store and the CA happen inside the commands, as in ``cli``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

PROVISIONING_COMMANDS = ("broker-config", "installer-token")
_TTL_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d`` -> seconds."""
    m = _TTL_RE.match(text.strip())
    if m is None or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 15m, 1h or 2d, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = sub.add_parser("broker-config", help="write the Mosquitto TLS + ACL + CRL configuration")
    broker.add_argument("--out", required=True, type=Path, help="directory for mosquitto.conf and its files")
    broker.add_argument("--ca-dir", type=Path, help="fleet CA directory (default: $FLEET_CLOUD_CA_DIR or ./fleet-ca)")
    broker.add_argument("--port", type=int, default=8883, help="TLS listener port (default 8883)")
    broker.add_argument("--bind", default="0.0.0.0", help="listener address (default 0.0.0.0)")
    broker.add_argument("--host", action="append", dest="hosts",
                        help="broker host name or IP for its certificate (repeat; default localhost, 127.0.0.1)")
    broker.add_argument("--user", help="system user Mosquitto drops to (it must read the key files)")
    token = sub.add_parser("installer-token", help="create a single-use installer token for a depot")
    token.add_argument("--depot", required=True, help="depot the enrolled devices belong to")
    token.add_argument("--ttl", type=parse_ttl, default=3600.0, help="lifetime, e.g. 30m, 1h, 2d (default 1h)")
    token.add_argument("--json", action="store_true", help="print a JSON object instead of text")


def run_provisioning_command(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.store import migrate

    migrate(engine)
    if args.command == "broker-config":
        return _broker_config(args, engine)
    return _installer_token(args, engine)


def _broker_config(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.broker_config import write_broker_config
    from cloud_sync.ca import load_or_create_ca
    from cloud_sync.settings import Settings
    from cloud_sync.store.provisioning import revoked_certificates

    ca = load_or_create_ca(args.ca_dir or Settings.from_env().ca_dir)
    with engine.connect() as conn:
        revoked = revoked_certificates(conn)
    files = write_broker_config(args.out, ca, revoked, hosts=args.hosts or ("localhost", "127.0.0.1"),
                                port=args.port, bind=args.bind, run_as_user=args.user)
    print(f"wrote {files.conf} ({len(revoked)} revoked certificate(s) in {files.crl.name}); "
          f"reload the broker (SIGHUP or restart) to apply")
    return 0


def _installer_token(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.store.provisioning import create_token

    try:
        with engine.begin() as conn:
            token, expires = create_token(conn, args.depot, args.ttl)
    except ValueError as exc:
        print(f"fleet-cloud: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"token": token, "depot": args.depot, "expires_at": expires}))
    else:
        import datetime

        when = datetime.datetime.fromtimestamp(expires, datetime.UTC).isoformat(timespec="seconds")
        print(f"installer token for depot {args.depot!r}, single use, expires {when}:\n{token}")
    return 0
