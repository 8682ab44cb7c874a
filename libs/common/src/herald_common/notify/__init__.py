"""Senders of approval notices: email over SMTP, WhatsApp through Meta's Cloud API, and signed
webhooks. Each sends one message and says how it went; what the message says is its caller's.

A failed send raises one of Herald's platform errors (herald_common.errors):

PlatformError
├── TransientError   worth trying again later: the network, a timeout, 429, 5xx, an SMTP 4xx
│                    reply, WhatsApp's throughput and spam limits, every WhatsApp slot taken
└── PermanentError   this notice will never go: the channel is not configured, the recipient
                     or the address was refused, any other 4xx
"""

from herald_common.notify.email import Email, EmailSender
from herald_common.notify.webhook import (
    WebhookSender,
    signature,
    tenant_signing_key,
    webhook_client,
)
from herald_common.notify.whatsapp import (
    LocalSlots,
    RedisSlots,
    Slots,
    WhatsAppSender,
    whatsapp_client,
    whatsapp_slots,
)

#: The channels each notification type (an approval's, a brand's) sends on.
CHANNELS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "whatsapp": ("whatsapp",),
    "webhook": ("webhook",),
    "both": ("email", "whatsapp"),
    "all": ("email", "whatsapp", "webhook"),
}
#: The approver's field each personal channel sends to.
ADDRESS = {"email": "email", "whatsapp": "phone"}

__all__ = [
    "ADDRESS",
    "CHANNELS",
    "Email",
    "EmailSender",
    "LocalSlots",
    "RedisSlots",
    "Slots",
    "WebhookSender",
    "WhatsAppSender",
    "signature",
    "tenant_signing_key",
    "webhook_client",
    "whatsapp_client",
    "whatsapp_slots",
]
