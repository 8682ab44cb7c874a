"""The `webhooks` queue's actor: thin; the work is herald_common.webhooks.Deliverer."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import Broker
from pydantic import ValidationError

from herald_common.contracts import DELIVER_WEBHOOK, DeliverWebhookPayload
from herald_common.notify import WebhookSender, webhook_client
from herald_common.webhooks import Deliverer
from herald_common.workers import Deps, lazy


def declare_actors(broker: Broker, deps: Deps) -> list[dramatiq.Actor[Any, Any]]:
    """Declare `deliver_webhook` on `broker`."""

    @lazy
    def deliverer() -> Deliverer:
        settings = deps.settings
        return Deliverer(deps.engine(), WebhookSender(settings, webhook_client(settings)), settings)

    def deliver_webhook(delivery_id: str, attempt: int) -> None:
        payload = DeliverWebhookPayload(delivery_id=delivery_id, attempt=attempt)
        deliverer().deliver(payload.delivery_id, payload.attempt)

    # A malformed message will not get better by retrying it.
    return [
        dramatiq.actor(  # type: ignore[call-overload]
            deliver_webhook,
            broker=broker,
            throws=(ValidationError, TypeError),
            **DELIVER_WEBHOOK.actor_options(),
        )
    ]
