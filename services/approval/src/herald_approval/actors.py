"""The `approval` queue's actor: thin; the work is in notifying.py."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import Broker
from dramatiq.middleware import CurrentMessage
from pydantic import ValidationError

from herald_approval.notifying import Notifier, Senders
from herald_common.contracts import NOTIFY_APPROVERS, NotifyApproversPayload
from herald_common.notify import (
    EmailSender,
    WebhookSender,
    WhatsAppSender,
    webhook_client,
    whatsapp_client,
    whatsapp_slots,
)
from herald_common.workers import Deps, lazy


def declare_actors(broker: Broker, deps: Deps) -> list[dramatiq.Actor[Any, Any]]:
    """Declare `notify_approvers` on `broker`."""
    # The actor asks its message how many tries are left (the last try settles what still
    # fails instead of retrying): CurrentMessage hands it the message.
    if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
        broker.add_middleware(CurrentMessage())

    @lazy
    def notifier() -> Notifier:
        settings = deps.settings
        senders = Senders(
            email=EmailSender(settings),
            whatsapp=WhatsAppSender(
                settings, whatsapp_client(settings), whatsapp_slots(deps.broker, settings)
            ),
            webhook=WebhookSender(settings, webhook_client(settings)),
        )
        return Notifier(deps.engine(), settings, senders)

    def notify_approvers(
        tenant_id: str,
        post_id: str,
        approval_id: str,
        notification_type: str = "email",
        reminder: bool = False,
    ) -> None:
        payload = NotifyApproversPayload.model_validate(
            {
                "tenant_id": tenant_id,
                "post_id": post_id,
                "approval_id": approval_id,
                "notification_type": notification_type,
                "reminder": reminder,
            }
        )
        notifier().notify(payload, last_try=_last_try())

    # A malformed message will not get better by retrying it.
    return [
        dramatiq.actor(  # type: ignore[call-overload]
            notify_approvers,
            broker=broker,
            throws=(ValidationError, TypeError),
            **NOTIFY_APPROVERS.actor_options(),
        )
    ]


def _last_try() -> bool:
    """Whether the message being processed has no retry left (Dramatiq counts them in its
    options)."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return False
    return int(message.options.get("retries", 0)) >= NOTIFY_APPROVERS.retry.max_retries
