"""The MQTT ingest worker: batches from ``$share/ingest/fleet/v1/+/batch`` into ``Ingestor``, acks back.

Run it as ``fleet-cloud worker --broker HOST:PORT --database URL`` (or ``python -m cloud_sync.worker``
with the same options, ``cloud_sync.worker_options``); start more (on more machines) to split the
load: the MQTT v5 shared subscription (OASIS MQTT 5.0, 4.8.2) hands each batch to one worker of the
group. For every message the worker calls ``Ingestor.ingest`` and publishes the encoded ``Ack``
(QoS 1, naming the SHA-256 of the batch) to ``fleet/v1/<device>/ack``, the device named by the topic;
when the ingest raises (the store is down) the ack is a ``store_unavailable`` rejection, which the
device retries after its backoff.

The batch's own PUBACK is sent by hand, after the ack has been handed to paho, so the broker never
counts a batch as delivered that was not ingested. A PUBACK is only sent on the connection that
delivered the message (packet ids belong to a connection). What makes delivery reliable end to end
is the device: a batch whose ack does not come back (a worker killed mid-ingest, a broker restart)
is sent again after the device's ack timeout, and the ingest stores each record once. The session
therefore ends with the connection by default (see ``DEFAULT_SESSION_EXPIRY_S``).

The worker runs paho's network loop in its own thread and reconnects with tenacity (exponential
backoff with jitter, capped at ``RECONNECT_MAX_S``) rather than paho's built-in retry, whose delay
doubles from a whole second and which we saw stall under a broker killed every second. That thread
only queues messages; the ingest (SQLAlchemy) runs on the caller's thread.
The queue is bounded by the Receive Maximum we announce in CONNECT (MQTT v5 3.1.2.11.3): the broker
never has more unacknowledged batches in flight to us than that.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import queue
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_when_event_set, wait_exponential, wait_random

from cloud_sync.ingest import STORE_UNAVAILABLE, UNREADABLE_DEVICE, Ingestor, unavailable_ack
from cloud_sync.store import make_engine, migrate
from cloud_sync.worker_options import (
    DEFAULT_GROUP,
    DEFAULT_RECEIVE_MAXIMUM,
    DEFAULT_SESSION_EXPIRY_S,
    add_arguments,
)
from cloud_sync.worker_options import parse_broker as parse_broker  # re-exported: callers parse --broker here
from edge_agent.wire import Ack, WireError, encode_ack

log = logging.getLogger(__name__)

TOPIC_FILTER = "fleet/v1/+/batch"
KEEPALIVE_S = 30
#: Reconnect backoff: exponential between these, plus up to ``RECONNECT_JITTER_S``.
RECONNECT_MIN_S, RECONNECT_MAX_S, RECONNECT_JITTER_S = 0.1, 10.0, 0.2
#: Seconds to wait for CONNACK once the TCP connection is up.
CONNECT_TIMEOUT_S = 10.0
LOOP_TIMEOUT_S = 0.05


def shared_filter(group: str) -> str:
    return f"$share/{group}/{TOPIC_FILTER}"


def device_of(topic: str) -> str | None:
    """``fleet/v1/<device>/batch`` -> ``<device>``; None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["fleet", "v1"] and parts[3] == "batch" and parts[2]:
        return parts[2]
    return None


@dataclass(frozen=True, slots=True)
class _Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes
    connection: int


class IngestWorker:
    """One MQTT client in the shared-subscription group, feeding one ``Ingestor``."""

    def __init__(self, ingestor: Ingestor, host: str, port: int, *, client_id: str | None = None,
                 group: str = DEFAULT_GROUP, receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
                 session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S, tls_ca: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None) -> None:
        self.ingestor = ingestor
        self.host, self.port = host, port
        self.group = group
        self.receive_maximum = receive_maximum
        self.session_expiry_s = session_expiry_s
        self.client_id = client_id or f"fleet-ingest-{socket.gethostname()}-{os.getpid()}"
        self.subscribed = threading.Event()
        self.processed = 0
        self._inbox: queue.Queue[_Inbound] = queue.Queue()
        self._connection = 0
        self._connack: ReasonCode | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                                   manual_ack=True)
        if tls_ca is not None:
            self._client.tls_set(ca_certs=tls_ca, certfile=tls_cert, keyfile=tls_key, cert_reqs=ssl.CERT_REQUIRED,
                                 tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        # Every socket write on the network thread: paho (we drive ``loop()`` ourselves, no ``loop_start``)
        # otherwise writes a PUBACK or an ack publish on the calling thread while the network thread reads,
        # and one TLS connection used from two threads at once breaks (broker: "Protocol error"; the
        # worker reconnected every few seconds in a HIL run and lost a delivered batch with it).
        self._client.on_socket_register_write = lambda *_args: None

    def start(self) -> None:
        """Connect in the network thread (retrying until the broker is up); it subscribes on every connect."""
        self._thread = threading.Thread(target=self._network, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- network thread ----------------------------------------------------------------------------

    def _network(self) -> None:
        while not self._closed.is_set():
            retrying = Retrying(
                wait=wait_exponential(multiplier=RECONNECT_MIN_S, min=RECONNECT_MIN_S, max=RECONNECT_MAX_S)
                + wait_random(0, RECONNECT_JITTER_S),
                retry=retry_if_exception_type((ConnectionError, OSError, ssl.SSLError)),
                stop=stop_when_event_set(self._closed),
                sleep=self._sleep,
            )
            try:
                retrying(self._connect_once)
            except RetryError:
                break
            while not self._closed.is_set():
                if self._client.loop(timeout=LOOP_TIMEOUT_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        with contextlib.suppress(OSError):
            self._client.disconnect()
            self._client.loop(timeout=LOOP_TIMEOUT_S)

    def _sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def _connect_once(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        self._connack = None
        self._client.connect(self.host, self.port, keepalive=KEEPALIVE_S, clean_start=self.session_expiry_s == 0,
                             properties=props)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while self._connack is None:
            if self._client.loop(timeout=LOOP_TIMEOUT_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise ConnectionError("connection lost before CONNACK")
            if time.monotonic() > deadline or self._closed.is_set():
                self._client.disconnect()
                raise ConnectionError("no CONNACK")
        if self._connack.is_failure:
            self._client.disconnect()
            raise ConnectionError(f"broker refused the worker: {self._connack}")

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Ingest messages until ``stop`` is set."""
        while not stop.is_set():
            self.process_one(poll_s)

    def process_one(self, timeout: float) -> bool:
        """Ingest one queued message (waiting up to ``timeout``); False if none came."""
        try:
            msg = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return False
        device = device_of(msg.topic)
        try:
            ack = self.ingestor.ingest(msg.payload)
        except Exception:
            # The store is down or broken. The PUBACK still goes, or the batch would pin a Receive
            # Maximum slot, and the device hears "store_unavailable" (a transient reason: it keeps the
            # rows and sends them again after its backoff, rather than waiting out its ack timeout).
            log.exception("ingest of a batch on %s failed; the device will retry", msg.topic)
            ack = unavailable_ack(msg.payload)
            self.ingestor.metrics.rejected(STORE_UNAVAILABLE)
        try:
            self._answer(device, ack)
        except Exception:  # an ack that cannot be sent is made up for by the device's ack timeout
            log.exception("answering a batch on %s failed; the device will retry", msg.topic)
        self.processed += 1
        if msg.connection == self._connection:
            self._client.ack(msg.mid, msg.qos)
        return True

    def _answer(self, device: str | None, ack: Ack) -> None:
        if device is None:
            log.warning("batch on an unexpected topic; no ack sent")
            return
        if ack.device_id == UNREADABLE_DEVICE:
            try:
                ack = dataclasses.replace(ack, device_id=device)
            except WireError:
                log.warning("batch on topic of invalid device id %r; no ack sent", device)
                return
        elif ack.device_id != device:
            # The broker's ACL ties topics to devices; a batch signed for another id on this topic is
            # answered where it came from (and the device will not recognise the ack).
            log.warning("batch from %s published on the topic of %s", ack.device_id, device)
        self._client.publish(f"fleet/v1/{device}/ack", encode_ack(ack), qos=1)

    # -- paho callbacks (network thread: hand off only) --------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: ReasonCode,
                    _properties: Properties | None) -> None:
        self._connack = reason_code
        if reason_code.is_failure:
            log.error("broker %s:%d refused the worker: %s", self.host, self.port, reason_code)
            return
        self._connection += 1
        log.info("worker %s connected (session present: %s)", self.client_id, flags.session_present)
        client.subscribe(shared_filter(self.group), qos=1)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode,
                       _properties: Properties | None) -> None:
        self._connection += 1  # PUBACKs for messages of the old connection must not go out on the next one
        log.warning("worker %s disconnected: %s", self.client_id, reason_code)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reason_codes: list[ReasonCode],
                      _properties: Properties | None) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            self.subscribed.set()
        else:
            log.error("subscription to %s refused: %s", shared_filter(self.group), reason_codes)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(_Inbound(message.mid, message.qos, message.topic, bytes(message.payload), self._connection))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloud_sync.worker", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Ingest until SIGTERM or SIGINT (``fleet-cloud worker`` and ``python -m cloud_sync.worker``)."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(args.log_level.upper())  # fleet-cloud configured logging already
    engine = make_engine(args.database)
    migrate(engine)
    ingestor = Ingestor(engine)
    host, port = args.broker
    worker = IngestWorker(ingestor, host, port, client_id=args.client_id, group=args.group,
                          receive_maximum=args.receive_maximum, session_expiry_s=args.session_expiry,
                          tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    worker.start()
    announced = False
    while not stop.is_set():
        worker.process_one(0.2)
        if not announced and worker.subscribed.is_set():
            # One JSON line on stdout for supervisors and tests: the worker takes batches from now on.
            print(json.dumps({"event": "subscribed", "client_id": worker.client_id}), flush=True)
            announced = True
    worker.close()
    print(json.dumps({"event": "stopped", "processed": worker.processed,
                      "metrics": ingestor.metrics.snapshot()}), flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
