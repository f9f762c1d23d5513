"""``fleet-cloud compliance alerts``: queue driving-hours violations as ``violation`` webhooks (see ``alerts``)."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine


def add_parsers(sub: Any) -> None:
    compliance = sub.add_parser("compliance", help="driving-hours violation alerts")
    actions = compliance.add_subparsers(dest="compliance_action", required=True)
    alerts = actions.add_parser("alerts", help="evaluate every driver and queue new violations as webhooks")
    alerts.add_argument("--pack", required=True,
                        help="rule pack of the fleet (us_fmcsa_property, eu_561_2006; GET /v1/compliance/rule-packs)")
    alerts.add_argument("--every", type=float, metavar="SECONDS", help="keep running, checking this often")


def run(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.compliance.alerts import queue_violations
    from cloud_sync.store import migrate

    migrate(engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        result = queue_violations(engine, args.pack, now=time.time())
        print(f"{result.drivers} drivers, {result.violations} violations, {result.queued} newly queued", flush=True)
        if args.every is None or stop.wait(args.every):
            return 0
