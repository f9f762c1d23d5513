"""``POST /v1/batches``: the ingest pipeline over HTTP, for devices that cannot use MQTT.

The body is the sealed blob itself (``application/octet-stream``); the answer is always the ack JSON,
with an HTTP status that tells a generic client what kind of answer it is: 200 committed or duplicate,
400 unreadable, 403 not trusted, 409 out of sequence, 413 too large, 415 wrong media type, 422 unstorable,
503 store unavailable. The ack names the SHA-256 of the body it answers (``batch_hash``).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cloud_sync.api.deps import ServicesDep
from cloud_sync.api.schemas import AckPublic
from cloud_sync.ingest import STORE_UNAVAILABLE, UNREADABLE_DEVICE, unavailable_ack
from edge_agent.wire import Ack

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/batches", tags=["batches"])

MEDIA_TYPE = "application/octet-stream"
#: Rejection reason -> HTTP status (reasons are documented in ``cloud_sync.metrics.REJECT_REASONS``).
STATUS_BY_REASON = {
    "unknown_device": 403, "revoked": 403, "bad_signature": 403, "bad_key": 403,
    "replay": 409, "seq_reused": 409, "chain_broken": 409,
    "decompression_bomb": 413, "too_large": 413, "unstorable": 422, STORE_UNAVAILABLE: 503,
}
#: Seconds a client should wait after a 503 (as the app-wide store-unavailable handler in ``cloud_sync.main``).
RETRY_AFTER_S = 5


def _reply(ack: Ack, http_status: int | None = None) -> JSONResponse:
    if http_status is None:
        http_status = 200 if ack.status != "rejected" else STATUS_BY_REASON.get(ack.reason, 400)
    fields = {k: getattr(ack, k) for k in AckPublic.model_fields}
    fields["batch_hash"] = None if ack.batch_hash is None else ack.batch_hash.hex()
    headers = {"Retry-After": str(RETRY_AFTER_S)} if ack.reason == STORE_UNAVAILABLE else None
    return JSONResponse(AckPublic(**fields).model_dump(), status_code=http_status, headers=headers)


def _refuse(services: ServicesDep, reason: str, http_status: int) -> JSONResponse:
    services.ingestor.metrics.inc("batches_received")
    services.ingestor.metrics.rejected(reason)
    return _reply(Ack(UNREADABLE_DEVICE, 0, 0, "rejected", reason=reason), http_status)


_ack_responses: dict[int | str, dict[str, object]] = {
    code: {"model": AckPublic, "description": text} for code, text in {
        400: "rejected: not a readable batch (bad_magic, truncated, malformed, unknown_version, ...)",
        403: "rejected: unknown_device, revoked, bad_signature",
        409: "rejected: replay, seq_reused, chain_broken",
        413: "rejected: body larger than FLEET_CLOUD_MAX_BATCH_BYTES, or a decompression bomb",
        415: "rejected: the body must be application/octet-stream",
        422: "rejected: unstorable (verified, but the database refuses a value, e.g. NUL on PostgreSQL)",
        503: "rejected: store_unavailable (the store is down; send the batch again later)",
    }.items()
}


@router.post(
    "",
    summary="Submit one sealed batch",
    description="Body: the bytes of `edge_agent.wire.seal(batch, key)`. Verified (device known and not revoked, "
                "Ed25519 signature, sequence window, hash chain) before anything is stored; stored idempotently.",
    response_model=AckPublic,
    responses=_ack_responses,
    openapi_extra={"requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": {"type": "string",
                                                                                         "format": "binary"}}}}},
)
async def post_batch(request: Request, services: ServicesDep) -> JSONResponse:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != MEDIA_TYPE:
        return _refuse(services, "wrong_media_type", 415)
    limit = services.settings.max_batch_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _refuse(services, "too_large", 413)
    body = bytearray()
    async for chunk in request.stream():  # counted as it arrives: a lying or absent Content-Length is bounded too
        body += chunk
        if len(body) > limit:
            return _refuse(services, "too_large", 413)
    try:
        ack = await run_in_threadpool(services.ingestor.ingest, bytes(body))
    except Exception:  # the store is down: say so as an ack (transient; the device sends again)
        log.exception("ingest of a posted batch failed")
        services.ingestor.metrics.rejected(STORE_UNAVAILABLE)
        ack = unavailable_ack(bytes(body))
    return _reply(ack)
