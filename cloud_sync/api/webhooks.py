"""Webhook subscriptions, their delivery log, dead letters and replay (``cloud_sync.webhooks``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from cloud_sync.api.deps import ServicesDep
from cloud_sync.api.schemas import Message
from cloud_sync.webhooks import EVENT_TYPES, enqueue
from cloud_sync.webhooks.dispatcher import replay
from cloud_sync.webhooks.store import (
    DELIVERY_STATES,
    MAX_PAGE,
    Subscription,
    create_subscription,
    deactivate,
    deliveries,
    get_delivery,
    get_subscription,
    list_subscriptions,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message}}


class WebhookCreate(BaseModel):
    url: AnyHttpUrl = Field(description="HTTPS (or HTTP on a private network) endpoint that receives POSTs")
    event_types: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES),
                                   description="any of: " + ", ".join(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=200)

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {sorted(EVENT_TYPES)}")
        return value

    @field_validator("url")
    @classmethod
    def _length(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > 2000:
            raise ValueError("url longer than 2000 characters")
        return value


class WebhookPublic(BaseModel):
    id: int
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_at: float


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="HMAC-SHA256 key of the Fleet-Signature header; shown only once")


class DeliveryPublic(BaseModel):
    id: int
    event_type: str
    event_key: str
    device_id: str | None
    occurred_at: float
    state: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None
    payload: dict[str, Any]


class DeliveriesPublic(BaseModel):
    items: list[DeliveryPublic]
    next_after: int | None = Field(description="pass as after= for the next page; null at the end")


def _public(s: Subscription) -> WebhookPublic:
    return WebhookPublic(id=s.id, url=s.url, event_types=s.event_types, description=s.description, active=s.active,
                         created_at=s.created_at)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated, summary="Subscribe an endpoint")
def create_webhook(body: WebhookCreate, services: ServicesDep) -> WebhookCreated:
    with services.engine.begin() as conn:
        sub = create_subscription(conn, str(body.url), body.event_types, body.description)
    services.ingestor.invalidate_hooks()
    return WebhookCreated(**_public(sub).model_dump(), secret=sub.secret)


@router.get("", response_model=list[WebhookPublic], summary="List subscriptions")
def list_webhooks(services: ServicesDep) -> list[WebhookPublic]:
    with services.engine.connect() as conn:
        return [_public(s) for s in list_subscriptions(conn)]


@router.delete("/{webhook_id}", response_model=Message, responses=_NOT_FOUND, summary="Stop a subscription")
def delete_webhook(webhook_id: int, services: ServicesDep) -> Message:
    with services.engine.begin() as conn:
        if not deactivate(conn, webhook_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active webhook {webhook_id}")
    services.ingestor.invalidate_hooks()
    return Message(detail=f"webhook {webhook_id} stopped")


@router.post("/{webhook_id}/ping", status_code=status.HTTP_202_ACCEPTED, response_model=Message,
             responses=_NOT_FOUND, summary="Queue a signed test event to this endpoint")
def ping_webhook(webhook_id: int, services: ServicesDep) -> Message:
    import time

    now = time.time()
    with services.engine.begin() as conn:
        sub = get_subscription(conn, webhook_id)
        if sub is None or not sub.active:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active webhook {webhook_id}")
        enqueue(conn, "ping", "", f"ping:{webhook_id}:{now!r}", now, {"webhook_id": webhook_id}, now=now,
                subscriptions={"ping": [webhook_id]})
    return Message(detail="ping queued")


@router.get("/{webhook_id}/deliveries", response_model=DeliveriesPublic, responses=_NOT_FOUND,
            summary="Delivery log (state=dead: the dead-letter list)")
def list_deliveries(
    webhook_id: int, services: ServicesDep,
    state: Annotated[str | None, Query(description="pending | delivered | dead")] = None,
    after: Annotated[int, Query(ge=0, description="cursor: deliveries with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> DeliveriesPublic:
    if state is not None and state not in DELIVERY_STATES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"state must be one of {DELIVERY_STATES}")
    with services.engine.connect() as conn:
        if get_subscription(conn, webhook_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook {webhook_id}")
        rows = deliveries(conn, webhook_id, state, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [DeliveryPublic(id=r.id, event_type=r.event_type, event_key=r.event_key, device_id=r.device_id or None,
                            occurred_at=r.occurred_at, state=r.state, attempts=r.attempts,
                            next_attempt_at=r.next_attempt_at, last_status=r.last_status, last_error=r.last_error,
                            created_at=r.created_at, delivered_at=r.delivered_at, payload=r.payload) for r in rows]
    return DeliveriesPublic(items=items, next_after=rows[-1].id if more and rows else None)


@router.post("/deliveries/{delivery_id}/replay", response_model=Message,
             responses={404: {"model": Message}, 409: {"model": Message, "description": "not a dead delivery"}},
             summary="Send a dead letter again")
def replay_delivery(delivery_id: int, services: ServicesDep) -> Message:
    with services.engine.connect() as conn:
        row = get_delivery(conn, delivery_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no delivery {delivery_id}")
    if not replay(services.engine, delivery_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"delivery {delivery_id} is {row.state}, not dead")
    return Message(detail=f"delivery {delivery_id} queued again")
