"""The vehicle's mobile link, as a TCP relay between one agent and the broker that the rig can cut.

``NetworkLink`` listens on a free loopback port and relays each connection to the broker byte for
byte (TLS passes through untouched: the agent still checks the broker's certificate, the broker the
agent's). ``set_down(True)`` is the modem losing its carrier: every open connection is reset at once
and new ones are accepted and reset straight away (as a host whose route is gone answers), so the
agent's MQTT client sees a dead link, keeps its records in the outbox and retries with back-off.
``set_down(False)`` restores the link; the next reconnect gets through and the backlog drains.

One thread runs a ``selectors`` loop for all connections; the rig only flips the flag.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading

#: Bytes read from one side per readiness event; MQTT batches are tens of kB, TLS records 16 kB.
CHUNK = 65536
#: A peer that takes longer than this (s) to accept relayed bytes is treated as gone.
SEND_TIMEOUT_S = 5.0
#: How often (s) the relay loop looks at the down flag and the stop flag when nothing moves.
POLL_S = 0.05


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped link does: the peer sees ECONNRESET, not a clean FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class NetworkLink:
    """A cuttable relay ``127.0.0.1:port`` -> ``target``; see the module docstring."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._down = threading.Event()
        self._stop = threading.Event()
        #: connections relayed, and connections reset by a drop (for the report)
        self.connections = self.resets = 0
        self._thread = threading.Thread(target=self._run, name="hil-network-link", daemon=True)
        self._thread.start()

    @property
    def down(self) -> bool:
        return self._down.is_set()

    def set_down(self, down: bool) -> None:
        if down:
            self._down.set()
        else:
            self._down.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    # -- the relay thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._down.is_set() and self._peer:
                    self.resets += len(self._peer) // 2
                    for sock in list(self._peer):
                        self._drop(sock)
                for key, _ in self._sel.select(POLL_S):
                    obj = key.fileobj
                    if obj is self._listener:
                        self._accept()
                    elif isinstance(obj, socket.socket) and obj in self._peer:
                        self._relay(obj)
        finally:
            for sock in list(self._peer):
                self._drop(sock)
            self._sel.close()
            self._listener.close()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if self._down.is_set():
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            _reset(client)  # broker not there: the agent sees what it would see without the relay
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peer[client], self._peer[upstream] = upstream, client
        self._sel.register(client, selectors.EVENT_READ, None)
        self._sel.register(upstream, selectors.EVENT_READ, None)
        self.connections += 1

    def _relay(self, sock: socket.socket) -> None:
        other = self._peer[sock]
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            # Loopback to one agent or its broker: a short blocking send is simpler than per-socket buffers.
            other.settimeout(SEND_TIMEOUT_S)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        other = self._peer.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self._peer.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            _reset(s)
