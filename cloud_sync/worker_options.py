"""The ingest worker's command-line options, shared by ``fleet-cloud worker`` and ``python -m cloud_sync.worker``.

Light on purpose (no paho, no SQLAlchemy): ``fleet-cloud`` registers these arguments on every run,
``--help`` included. The worker's defaults live here for that reason; ``cloud_sync.worker`` imports them.
"""

from __future__ import annotations

import argparse

DEFAULT_GROUP = "ingest"
#: Batches the broker may have in flight to one worker (CONNECT Receive Maximum).
DEFAULT_RECEIVE_MAXIMUM = 32
#: Session Expiry Interval 0: a worker's session ends with its connection. A persistent session would
#: outlive a dead worker, and Mosquitto keeps handing that offline session its share of the group's
#: batches (we measured half the traffic parked on a SIGKILLed worker). Batches in flight to a worker
#: that dies are sent again by their devices after the ack timeout, so nothing needs the session.
DEFAULT_SESSION_EXPIRY_S = 0


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--broker must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def add_arguments(parser: argparse.ArgumentParser, *, database_required: bool = True) -> None:
    """The worker's arguments; without ``database_required`` a missing ``--database`` is left None
    (``fleet-cloud`` then takes ``--database-url`` or ``$FLEET_CLOUD_DATABASE_URL``)."""
    parser.add_argument("--broker", type=parse_broker, required=True, help="MQTT broker HOST:PORT")
    parser.add_argument("--database", required=database_required,
                        help="store URL: sqlite:///path or postgresql://..."
                        + ("" if database_required else " (default: --database-url, $FLEET_CLOUD_DATABASE_URL)"))
    parser.add_argument("--client-id", help="MQTT client id (stable across restarts keeps the session)")
    parser.add_argument("--group", default=DEFAULT_GROUP, help=f"shared subscription group (default: {DEFAULT_GROUP})")
    parser.add_argument("--receive-maximum", type=int, default=DEFAULT_RECEIVE_MAXIMUM,
                        help=f"batches in flight to this worker at most (default {DEFAULT_RECEIVE_MAXIMUM})")
    parser.add_argument("--session-expiry", type=int, default=DEFAULT_SESSION_EXPIRY_S,
                        help="MQTT session expiry in seconds (default 0: the session ends with the connection)")
    parser.add_argument("--tls-ca", help="CA file of the broker's certificate (turns TLS on)")
    parser.add_argument("--tls-cert", help="the worker's client certificate (PEM)")
    parser.add_argument("--tls-key", help="the worker's client key (PEM)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
