"""``fleet-cloud webhooks dispatch`` (the delivery loop, also run inside ``fleet-cloud serve``) and
``fleet-cloud webhooks receive`` (a signature-checking receiver that prints what it gets, to try a
subscription out)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine


def add_parsers(sub: Any) -> None:
    hooks = sub.add_parser("webhooks", help="deliver webhooks, or receive them to try a subscription out")
    actions = hooks.add_subparsers(dest="webhooks_action", required=True)
    actions.add_parser("dispatch", help="deliver queued webhooks until stopped (serve runs this too)")
    receive = actions.add_parser("receive", help="print verified webhook events POSTed to this port")
    receive.add_argument("--secret", required=True, help="the subscription's secret (whsec_...)")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=8900)


def run(args: argparse.Namespace, engine: Engine) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.webhooks_action == "receive":
        from cloud_sync.webhooks.receiver import WebhookReceiver

        receiver = WebhookReceiver(args.secret, args.host, args.port,
                                   on_event=lambda e: print(json.dumps(e), flush=True)).start()
        print(f"receiving on {receiver.url} (any path); Ctrl-C stops", flush=True)
        stop.wait()
        receiver.close()
        return 0
    from cloud_sync.store import migrate
    from cloud_sync.webhooks.dispatcher import Dispatcher

    migrate(engine)
    dispatcher = Dispatcher(engine).start()
    print("dispatching webhooks; Ctrl-C stops", flush=True)
    stop.wait()
    dispatcher.stop()
    return 0
