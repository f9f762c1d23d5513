"""Request body size limit: a small ASGI middleware in front of every route.

A body is refused with 413 when its ``Content-Length`` says it is too large (before anything is read), or as
soon as the bytes received pass the limit (a missing or lying ``Content-Length`` is bounded too), so one
request can never make the service buffer more than ``MAX_REQUEST_BYTES``. Paths in ``SELF_LIMITED`` bound
their own bodies with their own limit and answer in their own format: ``POST /v1/batches`` reads up to
``FLEET_CLOUD_MAX_BATCH_BYTES`` and answers an ack with reason ``too_large``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The largest JSON body a staff or enrolment route takes is an enrolment (CSR <= 8 KiB, key <= 4 KiB) or a
#: configuration push of a few kB; 1 MiB leaves ample headroom while bounding what one request can pin in memory.
MAX_REQUEST_BYTES = 1 << 20
SELF_LIMITED = frozenset({"/v1/batches"})


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BYTES,
                 exempt: frozenset[str] = SELF_LIMITED) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _refuse(send, self.limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # FastAPI passes an HTTPException raised while reading the body through as the response.
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
