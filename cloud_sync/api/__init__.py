"""The HTTP API: one router per resource, combined in ``api_router`` (mounted by ``cloud_sync.main``)."""

from fastapi import APIRouter

from cloud_sync.api import (
    batches,
    compliance,
    config,
    devices,
    governance,
    maintenance,
    ops,
    provisioning,
    reports,
    vehicles,
    webhooks,
)

api_router = APIRouter()
for _module in (batches, devices, vehicles, ops, provisioning, governance, webhooks, reports, config, compliance,
                maintenance):
    api_router.include_router(_module.router)

__all__ = ["api_router"]
