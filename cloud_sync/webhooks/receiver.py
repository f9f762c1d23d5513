"""A webhook receiver that verifies ``Fleet-Signature``: for integrators trying a subscription out
(``fleet-cloud webhooks receive --secret S``) and for our own tests (the real HTTP twin of a customer's endpoint).

It answers 401 to a request whose signature does not verify, 400 to a body that is not JSON, and 204
after recording a verified event; ``fail_next`` makes it answer 503 to the next N requests (a receiver
that is down), to exercise retries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloud_sync.webhooks.signing import SIGNATURE_HEADER, SignatureError, verify

#: Largest body the receiver reads (a webhook body is a few kB).
MAX_BODY_BYTES = 1 << 20


class WebhookReceiver:
    def __init__(self, secret: str, host: str = "127.0.0.1", port: int = 0,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.secret = secret
        self.events: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.fail_next = 0
        self.on_event = on_event
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._answer(413, "body too large")
                    return
                body = self.rfile.read(length)
                status, text = receiver._handle(self.headers.get(SIGNATURE_HEADER), body)
                self._answer(status, text)

            def _answer(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-receiver",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def _handle(self, header: str | None, body: bytes) -> tuple[int, str]:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, "receiver unavailable (scripted)"
        try:
            verify(self.secret, header, body, time.time())
        except SignatureError as exc:
            with self._lock:
                self.refused.append(str(exc))
            return 401, str(exc)
        try:
            event = json.loads(body)
        except ValueError:
            return 400, "body is not JSON"
        with self._lock:
            self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        return 204, ""

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()
