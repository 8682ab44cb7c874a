"""Outcome webhooks: the endpoints an app registers, and each event's deliveries to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald_api.schemas import Body, Out
from herald_api.schemas.brands import http_url
from herald_common.webhooks import EVENT_TYPES

#: One of EVENT_TYPES (a Literal of the tuple, so the document lists each).
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]

_EVENTS = "Event types to receive: " + ", ".join(f"`{e}`" for e in EVENT_TYPES) + "."


class WebhookCreate(Body):
    """Register an endpoint of the app."""

    url: str = Field(
        max_length=2000,
        description="Where events are POSTed (public hosts only); signed as approval webhooks "
        "are: `X-Herald-Signature` with the tenant's key (`GET /v1/webhooks/signing-key`).",
    )
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES), description=_EVENTS)
    description: str | None = Field(default=None, max_length=500)

    _url = field_validator("url")(http_url)


class WebhookUpdate(Body):
    """Change an endpoint; `enabled: true` turns one that was disabled back on."""

    url: str | None = Field(default=None, max_length=2000)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=len(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None

    _url = field_validator("url")(http_url)


class WebhookOut(Out):
    """A registered endpoint."""

    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why Herald turned it off (its deliveries kept failing); null when enabled."
    )
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookList(Out):
    """The tenant's endpoints."""

    data: list[WebhookOut]


class DeliveryQuery(BaseModel):
    """Query parameters of an endpoint's deliveries."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["pending", "succeeded", "failed"] | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


class DeliveryTry(Out):
    """One try of a delivery."""

    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    error: str | None
    ms: int = Field(description="How long the try took, in milliseconds.")


class DeliveryOut(Out):
    """One event's delivery to one endpoint, and every try."""

    id: str
    endpoint_id: str
    event_id: str = Field(description="The event's id: the same on every try, for dedupe.")
    event_type: str
    payload: dict[str, Any] = Field(description="The event as sent.")
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    retry_until: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[DeliveryTry]


class DeliveryPage(Out):
    """A page of deliveries, newest first."""

    data: list[DeliveryOut]
    next_cursor: str | None
