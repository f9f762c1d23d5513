"""``fleet-cloud``: the cloud service's command line: ``serve``, ``migrate``, ``add-device``, ``revoke-device``
(and the provisioning commands of ``cloud_sync.provisioning_cli``: ``broker-config``, ``installer-token``; the
governance ones of ``cloud_sync.governance.cli``: users, API tokens, ``audit verify`` / ``audit export-head``;
``config push | show | reissue`` of ``cloud_sync.config_push.cli``).

Every command reads its settings from the ``FLEET_CLOUD_*`` environment (``cloud_sync.settings``);
``--database-url`` overrides ``FLEET_CLOUD_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_sync.compliance.cli import add_parsers as _add_compliance_commands
from cloud_sync.config_push.cli import add_parsers as _add_config_commands
from cloud_sync.governance.cli import GOVERNANCE_COMMANDS, audit_cli_action, run_governance_command
from cloud_sync.governance.cli import add_parsers as _add_governance_commands
from cloud_sync.provisioning_cli import PROVISIONING_COMMANDS, run_provisioning_command
from cloud_sync.provisioning_cli import add_parsers as _add_provisioning_commands
from cloud_sync.reports.cli import add_parsers as _add_report_commands
from cloud_sync.webhooks.cli import add_parsers as _add_webhook_commands
from cloud_sync.worker_options import add_arguments as add_worker_arguments
from edge_agent.errors import FleetError

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: Administrative commands defined here or in provisioning_cli, appended to the audit trail before they run.
AUDITED_COMMANDS = ("add-device", "revoke-device", "installer-token")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet-cloud", description="Fleet telematics cloud service")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: $FLEET_CLOUD_DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API under uvicorn (migrates first)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    sub.add_parser("migrate", help="create or upgrade the store's schema")
    add = sub.add_parser("add-device", help="register a device and its Ed25519 public key")
    add.add_argument("--id", required=True, help="device id (as in its batches)")
    add.add_argument("--public-key", required=True, type=Path, help="public key PEM file")
    add.add_argument("--vin", help="vehicle VIN")
    add.add_argument("--profile", help="vehicle family profile")
    add.add_argument("--depot", help="home depot")
    revoke = sub.add_parser("revoke-device", help="refuse a device's batches from now on")
    revoke.add_argument("--id", required=True)
    worker = sub.add_parser("worker", help="run an MQTT ingest worker (shared subscription; start more to scale out)",
                            description="Same as python -m cloud_sync.worker: verify and store batches from "
                                        "$share/ingest/fleet/v1/+/batch, ack each on fleet/v1/<device>/ack.")
    add_worker_arguments(worker, database_required=False)
    _add_provisioning_commands(sub)
    _add_governance_commands(sub)
    _add_webhook_commands(sub)
    _add_report_commands(sub)
    _add_config_commands(sub)
    _add_compliance_commands(sub)
    serve.add_argument("--no-webhooks", action="store_true",
                       help="do not deliver webhooks from this process (run `fleet-cloud webhooks dispatch` instead)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except FleetError as exc:
        print(f"fleet-cloud: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    # Imported here: `fleet-cloud --help` should not need a database driver or the web stack.
    from cloud_sync.settings import Settings
    from cloud_sync.store import make_engine, migrate

    settings = Settings.from_env()
    if args.database_url:
        settings = dataclasses.replace(settings, database_url=args.database_url)
    if args.command == "worker":
        from cloud_sync.worker import run as run_worker

        if args.database is None:
            args.database = settings.database_url
        if args.verbose:
            args.log_level = "DEBUG"
        return run_worker(args)
    engine = make_engine(settings.database_url)
    if args.command == "migrate":
        applied = migrate(engine)
        print(f"migrated: applied {applied}" if applied else "schema is current")
        return 0
    if args.command == "reports":
        from cloud_sync.reports.cli import run as run_reports

        return run_reports(args, engine)
    if args.command == "compliance":
        from cloud_sync.compliance.cli import run as run_compliance

        return run_compliance(args, engine)
    if args.command == "config":
        from cloud_sync.config_push.cli import run as run_config

        return run_config(args, engine, settings)
    if args.command == "webhooks":
        from cloud_sync.webhooks.cli import run as run_webhooks

        return run_webhooks(args, engine)
    if args.command in GOVERNANCE_COMMANDS:
        return run_governance_command(args, engine)
    if args.command in AUDITED_COMMANDS:
        migrate(engine)
        audit_cli_action(engine, args)
    if args.command in PROVISIONING_COMMANDS:
        return run_provisioning_command(args, engine)
    if args.command == "add-device":
        return _add_device(args, engine)
    if args.command == "revoke-device":
        from cloud_sync.store.devices import revoke_device

        with engine.begin() as conn:
            found = revoke_device(conn, args.id)
        if not found:
            print(f"fleet-cloud: no device {args.id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.id}")
        return 0
    import uvicorn

    from cloud_sync.main import create_app

    app = create_app(settings, engine)
    dispatcher = None
    if not args.no_webhooks:
        from cloud_sync.webhooks.dispatcher import Dispatcher

        dispatcher = Dispatcher(engine).start()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="debug" if args.verbose else "info")
    finally:
        if dispatcher is not None:
            dispatcher.stop()
    return 0


def _add_device(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.store import migrate
    from cloud_sync.store.devices import DeviceExists, add_device
    from edge_agent.wire.sign import load_public_key_pem

    try:
        pem = args.public_key.read_bytes()
        load_public_key_pem(pem)
    except (OSError, ValueError, TypeError) as exc:
        print(f"fleet-cloud: {args.public_key}: not a readable Ed25519 public key PEM: {exc}", file=sys.stderr)
        return 2
    migrate(engine)
    try:
        with engine.begin() as conn:
            add_device(conn, args.id, pem.decode("ascii"), vin=args.vin, profile=args.profile, depot=args.depot)
    except DeviceExists:
        print(f"fleet-cloud: device {args.id!r} is already registered", file=sys.stderr)
        return 1
    print(f"registered {args.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
