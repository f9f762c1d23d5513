"""``fleet-cloud reports send`` (the scheduled summary as a ``report.ready`` webhook) and
``fleet-cloud reports export`` (the KPI report as CSV on stdout)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine


def add_parsers(sub: Any) -> None:
    reports = sub.add_parser("reports", help="KPI reports: export as CSV, or send the scheduled summary")
    actions = reports.add_subparsers(dest="reports_action", required=True)
    send = actions.add_parser("send", help="queue the last complete period's summary as a report.ready webhook")
    send.add_argument("--period", choices=("day", "week"), default="day")
    send.add_argument("--fuel-price", type=float, help="price per litre for idle fuel cost")
    send.add_argument("--every", type=float, metavar="SECONDS",
                      help="keep running, checking this often (each period is sent once provisional, once final)")
    export = actions.add_parser("export", help="print the KPI report for a period as CSV")
    export.add_argument("--from", dest="start", type=float, required=True, help="period start, unix seconds")
    export.add_argument("--to", dest="end", type=float, required=True, help="period end (exclusive)")
    export.add_argument("--depot", help="one depot only")
    export.add_argument("--fuel-price", type=float)


def run(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.store import migrate

    migrate(engine)
    if args.reports_action == "export":
        from cloud_sync.reports import build_report
        from cloud_sync.reports.csv_export import to_csv

        if args.end <= args.start:
            print("fleet-cloud reports export: --to must be after --from", file=sys.stderr)
            return 2
        with engine.connect() as conn:
            report = build_report(conn, args.start, args.end, depots=None if args.depot is None else [args.depot],
                                  fuel_price=args.fuel_price)
        sys.stdout.write(to_csv(report))
        return 0
    from cloud_sync.reports.schedule import send_due

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        sent = send_due(engine, args.period, fuel_price=args.fuel_price, now=time.time())
        state = "final" if sent.final else "provisional"
        print(f"{args.period} from {sent.period_start:.0f} to {sent.period_end:.0f} ({state}): "
              f"{sent.queued} webhook deliveries queued", flush=True)
        if args.every is None or stop.wait(args.every):
            return 0
