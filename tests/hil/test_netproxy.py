"""The vehicle's cuttable link (``hil.netproxy.NetworkLink``): relays bytes both ways; a drop resets the
open connection and refuses new ones until the link is restored."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from hil.netproxy import NetworkLink


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5.0)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):  # the link's reset reaches us too
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    server.close()


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_relays_then_drops_then_restores(echo_server: tuple[str, int]) -> None:
    link = NetworkLink(echo_server)
    try:
        client = socket.create_connection(("127.0.0.1", link.port), timeout=5.0)
        big = bytes(range(256)) * 1024  # larger than one relay chunk
        assert _roundtrip(client, big) == big
        link.set_down(True)
        with pytest.raises(OSError):  # the open connection is reset (ECONNRESET), not closed cleanly
            for _ in range(50):
                if not _roundtrip(client, b"ping"):
                    raise ConnectionResetError("closed")
        client.close()
        # Reset at once: while connecting, or on the first read.
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", link.port), timeout=5.0) as refused:
            if not _roundtrip(refused, b"anyone?"):
                raise ConnectionResetError("closed")
        link.set_down(False)
        again = socket.create_connection(("127.0.0.1", link.port), timeout=5.0)
        assert _roundtrip(again, b"back") == b"back"
        again.close()
        assert link.connections == 2 and link.resets == 1
    finally:
        link.close()
