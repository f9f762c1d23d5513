"""The MQTT v5 transport: the only module that touches paho. Its thread only hands work off.

``MqttTransport`` runs one thread that connects (tenacity: exponential backoff with jitter, retried
for as long as the transport is open), drives paho's network loop, and turns every paho callback
into an event on a bounded queue: ``Connected``, ``Disconnected``, ``PubAck``, ``AckMessage``. The
daemon thread drains the queue with ``poll`` and does all the work (SQLite included) there.

The session is persistent (clean_start False, an explicit Session Expiry Interval): acks the cloud
publishes while the vehicle is offline wait at the broker, and paho re-sends unacknowledged batches
after a reconnect. The ack subscription is renewed on every connect, since a broker that lost its
state (a crash between autosaves) comes back without it.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)

from edge_agent.counters import Counters
from edge_agent.uplink.settings import UplinkSettings, ack_topic

log = logging.getLogger(__name__)

#: Events waiting for the daemon thread. Bounded by what the broker can send us (acks for our
#: in-flight batches, plus stale ones from an old session); beyond it events are counted and dropped,
#: which only delays rows until their ack timeout.
EVENT_QUEUE_MAX = 1024
#: How long one paho ``loop`` call waits for socket activity (bounds how fast ``close`` is served).
LOOP_TIMEOUT_S = 0.05


@dataclass(frozen=True, slots=True)
class Connected:
    """CONNACK accepted. ``max_packet_size`` is the broker's Maximum Packet Size, if it sent one."""

    max_packet_size: int | None
    session_present: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class PubAck:
    """The broker's PUBACK of a published batch; ``reason_code`` >= 0x80 is a failure (MQTT v5 3.4.2.1)."""

    mid: int
    reason_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class AckMessage:
    """A message on our ack topic (the cloud's ``Ack``, still encoded)."""

    payload: bytes


Event = Connected | Disconnected | PubAck | AckMessage


@runtime_checkable
class Transport(Protocol):
    """What ``Uplink`` needs from a transport (``MqttTransport`` is the one; tests use it against Mosquitto)."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def publish(self, topic: str, payload: bytes) -> int | None: ...

    def poll(self) -> list[Event]: ...

    def close(self) -> None: ...


class ConnectFailed(Exception):
    """One connection attempt failed (refused, timed out, CONNACK with a failure reason)."""


class _Closed(Exception):
    pass


class MqttTransport:
    """A paho client for one device (client id = device id): ``start``, ``publish``, ``poll``, ``close``."""

    def __init__(self, settings: UplinkSettings, device_id: str, counters: Counters | None = None) -> None:
        self.settings = settings
        self.device_id = device_id
        self.counters = counters if counters is not None else Counters()
        self._events: queue.Queue[Event] = queue.Queue(EVENT_QUEUE_MAX)
        self._closed = threading.Event()
        self._connected = threading.Event()
        self._connack: Connected | ReasonCode | None = None
        self._connections = 0
        self._thread: threading.Thread | None = None
        self._routes: dict[str, Callable[[bytes], None]] = {}
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(s.max_queued)
        if s.tls_ca is not None:
            client.tls_set(ca_certs=str(s.tls_ca), certfile=str(s.tls_cert) if s.tls_cert else None,
                           keyfile=str(s.tls_key) if s.tls_key else None, cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        # Every socket write on the network thread: paho (we drive ``loop()`` ourselves, no ``loop_start``)
        # otherwise writes a publish on the calling thread while the network thread reads, and one TLS
        # connection used from two threads at once breaks (see cloud_sync/worker.py, found by the HIL demo).
        client.on_socket_register_write = lambda *_args: None
        return client

    def route(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Also subscribe to ``topic`` (QoS 1, on every connect) and pass its messages to ``handler`` on the
        network thread, which must only hand them off (the signed config pushes use it). Call before ``start``."""
        self._routes[topic] = handler

    # -- daemon thread -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.device_id}", daemon=True)
            self._thread.start()

    def publish(self, topic: str, payload: bytes) -> int | None:
        """Hand a QoS 1 message to paho; its mid, or None if paho's queue is full (``max_queued``)."""
        info = self._client.publish(topic, payload, qos=1)
        # Only a full queue means paho dropped the message. With any other code (NO_CONN, CONN_LOST
        # while writing, ...) paho keeps a QoS 1 message in its session and sends it after the
        # reconnect, so it counts as published; the ack timeout covers a message that never arrives.
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            return None
        return info.mid

    def poll(self) -> list[Event]:
        """Every event waiting, oldest first, without blocking."""
        out: list[Event] = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Disconnect cleanly (the session stays at the broker until it expires) and stop the thread."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- network thread ----------------------------------------------------------------------------

    def _put(self, event: Event) -> None:
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.counters.inc("uplink_events_dropped")

    def _run(self) -> None:
        s = self.settings
        while not self._closed.is_set():
            retrying = Retrying(
                wait=wait_exponential(multiplier=s.reconnect_min_s, min=s.reconnect_min_s, max=s.reconnect_max_s)
                + wait_random(0, s.reconnect_jitter_s),
                retry=retry_if_exception_type((ConnectFailed, OSError, ssl.SSLError)),
                stop=stop_when_event_set(self._closed),
                sleep=self._sleep,
                before_sleep=self._log_retry,
                reraise=False,
            )
            try:
                retrying(self._connect_once)
            except (RetryError, _Closed):
                break
            self._serve()
        self._shutdown()

    def _sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)  # close() cuts a backoff short

    def _log_retry(self, state: Any) -> None:
        self.counters.inc("mqtt_connect_failures")
        exc = state.outcome.exception() if state.outcome is not None else None
        level = logging.WARNING if state.attempt_number in (1, 10) or state.attempt_number % 100 == 0 else logging.DEBUG
        log.log(level, "mqtt %s:%d: connect attempt %d failed (%s); retrying in %.1f s", self.settings.host,
                self.settings.port, state.attempt_number, exc, state.next_action.sleep if state.next_action else 0)

    def _connect_once(self) -> None:
        if self._closed.is_set():
            raise _Closed
        s = self.settings
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry_s
        self._connack = None
        self._client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props)
        waited = 0.0
        while self._connack is None:
            rc = self._client.loop(timeout=LOOP_TIMEOUT_S)
            waited += LOOP_TIMEOUT_S
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise ConnectFailed(f"connection lost before CONNACK ({mqtt.error_string(rc)})")
            if waited >= s.connect_timeout_s:
                self._client.disconnect()
                raise ConnectFailed(f"no CONNACK within {s.connect_timeout_s} s")
            if self._closed.is_set():
                raise _Closed
        if isinstance(self._connack, ReasonCode):
            # A refusal (bad credentials, not authorised, server busy): logged loudly, retried with backoff.
            log.error("mqtt %s:%d refused the connection: %s", s.host, s.port, self._connack)
            self._client.disconnect()
            raise ConnectFailed(str(self._connack))

    def _serve(self) -> None:
        """Run paho's loop until the connection drops or the transport closes."""
        while not self._closed.is_set():
            rc = self._client.loop(timeout=LOOP_TIMEOUT_S)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if self._connected.is_set():
            self._connected.clear()
            self._put(Disconnected("network loop ended"))

    def _shutdown(self) -> None:
        try:
            if self._connected.is_set():
                self._client.disconnect()
                for _ in range(20):  # let the DISCONNECT leave
                    if self._client.loop(timeout=LOOP_TIMEOUT_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
        except OSError:
            pass
        self._connected.clear()

    # -- paho callbacks (network thread: hand off only) --------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._connack = reason_code
            return
        max_packet = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        event = Connected(int(max_packet) if max_packet else None, bool(getattr(flags, "session_present", False)))
        client.subscribe(ack_topic(self.device_id), qos=1)
        for topic in self._routes:
            client.subscribe(topic, qos=1)
        self._connections += 1
        if self._connections > 1:
            self.counters.inc("mqtt_reconnects")
        log.info("mqtt %s:%d connected (session present: %s, max packet: %s)", self.settings.host,
                 self.settings.port, event.session_present, event.max_packet_size)
        self._connack = event
        self._connected.set()
        self._put(event)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode,
                       _properties: Properties | None) -> None:
        if self._connected.is_set():
            self._connected.clear()
            log.warning("mqtt %s:%d disconnected: %s", self.settings.host, self.settings.port, reason_code)
            self._put(Disconnected(str(reason_code)))

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason_code: ReasonCode,
                    _properties: Properties | None) -> None:
        self._put(PubAck(mid, int(reason_code.value), str(reason_code)))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        handler = self._routes.get(message.topic)
        if handler is not None:
            handler(bytes(message.payload))
            return
        self._put(AckMessage(bytes(message.payload)))
