"""/v1/webhooks: an app's outcome webhooks — its endpoints, their deliveries, a resend."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body, parse_query
from herald_api.routing import Operation, Route
from herald_api.schemas.webhooks import (
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    WebhookCreate,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
)
from herald_api.services import webhooks
from herald_common.db import session_scope
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.webhooks import Events, events_for


class WebhookCollection:
    """/v1/webhooks"""

    def __init__(self, engine: Engine, platforms: PlatformRegistry, events: Events) -> None:
        self._engine = engine
        self._platforms = platforms
        self._events = events

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with session_scope(self._engine) as session:
            rows = webhooks.list_endpoints(session, req.context.tenant_id)
            page = WebhookList(data=[WebhookOut.model_validate(r) for r in rows])
        resp.media = page.model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, WebhookCreate)
        with session_scope(self._engine) as session:
            endpoint = webhooks.create_endpoint(
                session, req.context.tenant_id, body, addresses=self._platforms.addresses
            )
            out = WebhookOut.model_validate(endpoint)
        self._events.forget(req.context.tenant_id)
        resp.status = 201
        resp.location = f"/v1/webhooks/{out.id}"
        resp.media = out.model_dump(mode="json")


class WebhookItem:
    """/v1/webhooks/{webhook_id}, its deliveries, and a resend"""

    def __init__(
        self, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._platforms = platforms
        self._settings = settings
        self._events = events_for(engine, broker, settings)

    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        with session_scope(self._engine) as session:
            endpoint = webhooks.get_endpoint(session, req.context.tenant_id, webhook_id)
            resp.media = WebhookOut.model_validate(endpoint).model_dump(mode="json")

    def on_patch(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        body = parse_body(req, WebhookUpdate)
        with session_scope(self._engine) as session:
            endpoint = webhooks.update_endpoint(
                session,
                req.context.tenant_id,
                webhook_id,
                body,
                addresses=self._platforms.addresses,
            )
            out = WebhookOut.model_validate(endpoint)
        self._events.forget(req.context.tenant_id)
        resp.media = out.model_dump(mode="json")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        with session_scope(self._engine) as session:
            webhooks.delete_endpoint(session, req.context.tenant_id, webhook_id)
        self._events.forget(req.context.tenant_id)
        resp.status = 204

    def on_get_deliveries(
        self, req: falcon.Request, resp: falcon.Response, webhook_id: str
    ) -> None:
        query = parse_query(req, DeliveryQuery)
        with session_scope(self._engine) as session:
            rows, next_cursor = webhooks.list_deliveries(
                session,
                req.context.tenant_id,
                webhook_id,
                status=query.status,
                limit=query.limit,
                cursor=query.cursor,
            )
            page = DeliveryPage(
                data=[DeliveryOut.model_validate(r) for r in rows], next_cursor=next_cursor
            )
        resp.media = page.model_dump(mode="json")

    def on_post_resend(
        self, req: falcon.Request, resp: falcon.Response, webhook_id: str, delivery_id: str
    ) -> None:
        with session_scope(self._engine) as session:
            delivery = webhooks.resend(
                session, req.context.tenant_id, webhook_id, delivery_id, self._settings
            )
            out = DeliveryOut.model_validate(delivery)
        # Committed: only now may the message go.
        webhooks.send_resent(self._broker, delivery)
        resp.status = 202
        resp.media = out.model_dump(mode="json")


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The webhooks routes."""
    events = events_for(engine, broker, settings)
    item = WebhookItem(engine, broker, platforms, settings)
    path = "/v1/webhooks/{webhook_id}"
    return [
        Route(
            "/v1/webhooks",
            WebhookCollection(engine, platforms, events),
            (
                Operation("get", "The tenant's webhook endpoints", WebhookList),
                Operation(
                    "post",
                    "Register a webhook endpoint for outcome events",
                    WebhookOut,
                    status=201,
                    body=WebhookCreate,
                    description="Each event is POSTed as `{id, type, created_at, data}` with "
                    "`X-Herald-Event`, `Idempotency-Key` (the event id: drop a repeat) and "
                    "`X-Herald-Signature`; a failed delivery is tried again with backoff for "
                    "24 hours, then the endpoint is disabled with the reason. Events start "
                    "within WEBHOOK_ENDPOINTS_CACHE_SECONDS (10 s) of registering.",
                ),
            ),
            tag="webhooks",
        ),
        Route(
            path,
            item,
            (
                Operation("get", "A webhook endpoint", WebhookOut),
                Operation(
                    "patch",
                    "Change a webhook endpoint, or turn it back on",
                    WebhookOut,
                    body=WebhookUpdate,
                ),
                Operation("delete", "Remove a webhook endpoint and its deliveries", status=204),
            ),
            tag="webhooks",
        ),
        Route(
            path + "/deliveries",
            item,
            (
                Operation(
                    "get",
                    "An endpoint's deliveries, newest first, each with every try",
                    DeliveryPage,
                    query=DeliveryQuery,
                ),
            ),
            suffix="deliveries",
            tag="webhooks",
        ),
        Route(
            path + "/deliveries/{delivery_id}/resend",
            item,
            (
                Operation(
                    "post",
                    "Send a delivery again now (with a new 24-hour retry window)",
                    DeliveryOut,
                    status=202,
                ),
            ),
            suffix="resend",
            tag="webhooks",
        ),
    ]
