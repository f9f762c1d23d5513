"""Composition root of the cloud service: ``create_app(settings)`` wires store, ingest and API."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from cloud_sync.api import api_router
from cloud_sync.api.deps import Services, authorize
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
                  lifespan=lifespan)  # starts and stops the config publisher (if a broker is configured)
    app.state.services = Services(settings, engine, Ingestor(engine, Metrics()))
    app.state.config_push = ConfigPush.from_settings(engine, settings)  # nothing created or connected yet
    app.include_router(api_router)
    app.add_exception_handler(OperationalError, _store_unavailable)
    return app


async def _store_unavailable(_request: Request, _exc: Exception) -> JSONResponse:
    # Transient (database down, SQLite busy past its timeout): a device keeps its batch and retries.
    return JSONResponse({"detail": "store unavailable, retry later"}, status_code=503, headers={"Retry-After": "5"})
