"""Composition root of the cloud service: ``create_app(settings)`` wires store, ingest and API."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError

from cloud_sync.api import api_router
from cloud_sync.api.access import annotate_openapi
from cloud_sync.api.deps import Services, authorize
from cloud_sync.api.limits import BodyLimitMiddleware
from cloud_sync.api.schemas import Message
from cloud_sync.config_push import ConfigPush, lifespan
from cloud_sync.ingest import Ingestor
from cloud_sync.metrics import Metrics
from cloud_sync.settings import Settings
from cloud_sync.store import make_engine, migrate


def create_app(settings: Settings | None = None, engine: Engine | None = None, *, run_migrations: bool = True
               ) -> FastAPI:
    """The FastAPI app. ``engine`` defaults to one built from ``settings.database_url``; migrations run
    at creation unless ``run_migrations`` is False (``fleet-cloud migrate`` then owns them)."""
    settings = settings if settings is not None else Settings.from_env()
    engine = engine if engine is not None else make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    app = FastAPI(title="Fleet telematics cloud", version="1",
                  description="Signed store-and-forward ingest of vehicle batches, and the fleet staff API.",
                  dependencies=[Depends(authorize)],  # every route: cloud_sync.api.access.ACCESS, deny by default
                  responses={400: {"model": Message, "description": "the body cannot be read (not UTF-8 JSON)"},
                             401: {"model": Message, "description": "no or unknown bearer token"},
                             403: {"model": Message, "description": "the token's role may not call this route"},
                             413: {"model": Message, "description": "request body too large"}},
                  lifespan=lifespan)  # starts and stops the config publisher (if a broker is configured)
    app.add_middleware(BodyLimitMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = annotate_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.services = Services(settings, engine, Ingestor(engine, Metrics()))
    app.state.config_push = ConfigPush.from_settings(engine, settings)  # nothing created or connected yet
    app.include_router(api_router)
    app.add_exception_handler(OperationalError, _store_unavailable)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(OverflowError, _unstorable)  # SQLite's driver: an integer beyond 64 bits
    return app


async def _store_unavailable(_request: Request, _exc: Exception) -> JSONResponse:
    # Transient (database down, SQLite busy past its timeout): a device keeps its batch and retries.
    return JSONResponse({"detail": "store unavailable, retry later"}, status_code=503, headers={"Retry-After": "5"})


async def _unstorable(_request: Request, _exc: Exception) -> JSONResponse:
    # Defence in depth behind the schemas: a value the database refuses (out of range, NUL in text) is the
    # client's to fix, never a 500.
    return JSONResponse({"detail": "a value in the request cannot be stored (out of range or invalid text)"},
                        status_code=422)
