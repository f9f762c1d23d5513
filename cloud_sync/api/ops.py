"""Operational endpoints: ``GET /metrics`` (Prometheus text, or JSON with ``?format=json``) and ``GET /healthz``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import text

from cloud_sync.api.deps import ServicesDep

router = APIRouter(tags=["ops"])
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", summary="Ingest counters, rejections by reason",
            responses={200: {"content": {PROMETHEUS_TYPE: {}, "application/json": {}}}})
def metrics(services: ServicesDep,
            fmt: Annotated[Literal["prometheus", "json"], Query(alias="format")] = "prometheus") -> Response:
    if fmt == "json":
        return JSONResponse(services.ingestor.metrics.snapshot())
    return PlainTextResponse(services.ingestor.metrics.prometheus(), media_type=PROMETHEUS_TYPE)


@router.get("/healthz", summary="Liveness: the store answers")
def healthz(services: ServicesDep) -> dict[str, str]:
    with services.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}
