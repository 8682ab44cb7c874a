"""Tenants' webhook endpoints and their deliveries, scoped to the tenant."""

from __future__ import annotations

from datetime import datetime, timedelta

from dramatiq.broker import Broker
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from herald_api.schemas.webhooks import WebhookCreate, WebhookUpdate
from herald_api.services.paging import newest_first
from herald_common.errors import FieldError, InvalidInput, NotFound
from herald_common.models import WebhookDelivery, WebhookEndpoint
from herald_common.platforms.http import PublicAddresses
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.webhooks import send_deliveries

#: Endpoints per tenant: each event is one delivery per endpoint.
MAX_ENDPOINTS = 20


def create_endpoint(
    session: Session,
    tenant_id: str,
    body: WebhookCreate,
    *,
    addresses: PublicAddresses,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """A new endpoint; 422 naming the field for a URL on a non-public host or one too many."""
    now = now or utcnow()
    addresses.check({"url": body.url})
    count = len(
        session.exec(select(WebhookEndpoint.id).where(WebhookEndpoint.tenant_id == tenant_id)).all()
    )
    if count >= MAX_ENDPOINTS:
        raise InvalidInput(FieldError("url", f"a tenant may register at most {MAX_ENDPOINTS}"))
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=body.url,
        events=sorted(set(body.events)),
        description=body.description,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(session: Session, tenant_id: str) -> list[WebhookEndpoint]:
    """The tenant's endpoints, oldest first."""
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
    )
    return list(session.exec(query).all())


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """The tenant's endpoint; NotFound for anyone else's."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.tenant_id != tenant_id:
        raise NotFound(f"no webhook {endpoint_id}")
    return endpoint


def update_endpoint(
    session: Session,
    tenant_id: str,
    endpoint_id: str,
    body: WebhookUpdate,
    *,
    addresses: PublicAddresses,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Change the fields given. Turning a disabled endpoint back on clears the reason, and its
    pending deliveries go out at once."""
    now = now or utcnow()
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    fields = body.model_fields_set
    nulls = [
        FieldError(n, "must not be null")
        for n in sorted(fields - {"description"})
        if getattr(body, n) is None
    ]
    if nulls:
        raise InvalidInput(nulls)
    if body.url is not None:
        addresses.check({"url": body.url})
        endpoint.url = body.url
    if body.events is not None:
        endpoint.events = sorted(set(body.events))
    if "description" in fields:
        endpoint.description = body.description
    if body.enabled is not None and body.enabled != endpoint.enabled:
        endpoint.enabled = body.enabled
        if body.enabled:
            endpoint.disabled_reason = endpoint.disabled_at = None
            session.execute(
                update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.endpoint_id) == endpoint.id,
                    col(WebhookDelivery.status) == "pending",
                )
                .values(next_attempt_at=now)
            )
        else:
            endpoint.disabled_reason, endpoint.disabled_at = "turned off by the tenant", now
    endpoint.updated_at = now
    session.add(endpoint)
    session.flush()
    return endpoint


def delete_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> None:
    """Remove the endpoint and its deliveries."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id))
    session.delete(endpoint)


def list_deliveries(
    session: Session,
    tenant_id: str,
    endpoint_id: str,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookDelivery], str | None]:
    """A page of the endpoint's deliveries, newest first."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return newest_first(session, query, WebhookDelivery, limit=limit, cursor=cursor)


def resend(
    session: Session,
    tenant_id: str,
    endpoint_id: str,
    delivery_id: str,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> WebhookDelivery:
    """Send a delivery again by hand (with a new retry window); the caller sends its message
    once this commits."""
    now = now or utcnow()
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(f"no delivery {delivery_id} of webhook {endpoint_id}")
    delivery.status = "pending"
    delivery.next_attempt_at = now + timedelta(minutes=2)
    delivery.retry_until = now + timedelta(seconds=settings.webhook_retry_seconds)
    session.add(delivery)
    session.flush()
    return delivery


def send_resent(broker: Broker, delivery: WebhookDelivery) -> None:
    """The message of a delivery sent again (after its change committed)."""
    send_deliveries(broker, [(delivery.id, delivery.attempts)])
