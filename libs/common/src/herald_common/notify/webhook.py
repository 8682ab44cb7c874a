"""Webhooks: a JSON POST to a tenant's URL, signed when APPROVAL_WEBHOOK_SECRET is set.

Headers: `X-Herald-Event` (e.g. `approval.requested`), `Idempotency-Key` (the notice's id: the
same on every try, so a receiver can drop a repeat) and `X-Herald-Signature: t=<unix seconds>,
v1=<hex>`, the HMAC-SHA256 of `<t>.` followed by the exact body bytes, keyed with the tenant's
own signing key (`tenant_signing_key`: derived from the operator's secret and the tenant's id,
so no tenant can sign another's events; `GET /v1/webhooks/signing-key` gives it). A receiver
recomputes it over the raw body, compares in constant time (`hmac.compare_digest`) and refuses
a `t` more than a few minutes old, so a captured event cannot be replayed later.

The URL is a tenant's: it may only reach public addresses (PLATFORM_ALLOW_PRIVATE_ADDRESSES
lifts that for tests and private installs), and redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from herald_common.errors import PermanentError, TransientError
from herald_common.logs import redact
from herald_common.platforms.http import (
    RETRYABLE_STATUSES,
    PublicOnlyTransport,
    retry_after_seconds,
    shown_url,
)
from herald_common.settings import Settings


def tenant_signing_key(secret: str, tenant_id: str) -> str:
    """The key a tenant's webhook events are signed with (hex), derived from the operator's
    APPROVAL_WEBHOOK_SECRET: each tenant can check its events and sign no one else's."""
    return hmac.new(secret.encode(), f"herald-webhook:{tenant_id}".encode(), "sha256").hexdigest()


def signature(key: str, body: bytes, timestamp: int) -> str:
    """The X-Herald-Signature of `body` sent at `timestamp`: `t=<timestamp>,v1=<hex>` with
    the hex HMAC-SHA256 of `<timestamp>.<body>` under `key`."""
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1=" + hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()


def webhook_client(settings: Settings) -> httpx.Client:
    """The HTTP client for tenants' webhook URLs: public addresses only, no redirects."""
    timeout = settings.platform_timeout_seconds
    return httpx.Client(
        transport=PublicOnlyTransport(allow_private=settings.platform_allow_private_addresses),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": "Herald-Webhooks (+https://github.com/herald-social/herald)"},
        follow_redirects=False,
    )


class WebhookSender:
    """POSTs events to webhook URLs."""

    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        self._settings = settings
        self._client = client

    def body(self, payload: Mapping[str, Any]) -> bytes:
        """The exact bytes sent (and signed) for `payload`."""
        return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()

    def send(
        self,
        url: str,
        event: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str,
        tenant_id: str,
    ) -> int:
        """POST `payload` as `event`; the receiver's HTTP status (2xx). TransientError for a
        network failure, a timeout, 408/425/429 or 5xx; PermanentError for any other answer."""
        body = self.body(payload)
        headers = {
            "Content-Type": "application/json",
            "X-Herald-Event": event,
            "Idempotency-Key": idempotency_key,
        }
        if self._settings.approval_webhook_secret:
            key = tenant_signing_key(self._settings.approval_webhook_secret, tenant_id)
            headers["X-Herald-Signature"] = signature(key, body, int(time.time()))
        where = shown_url(url)
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.InvalidURL:
            raise PermanentError(f"webhook: {where} is not a URL Herald can call") from None
        except httpx.TransportError as exc:
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            raise TransientError(f"webhook: POST {where} {kind} ({type(exc).__name__})") from None
        status = response.status_code
        if response.is_success:
            return status
        text = redact(response.text.strip()[:200]) or response.reason_phrase
        message = f"webhook: POST {where} answered HTTP {status}: {text}"
        if status >= 500 or status in RETRYABLE_STATUSES:
            retry_after = retry_after_seconds(response.headers)
            raise TransientError(message, http_status=status, retry_after=retry_after)
        if response.is_redirect:
            message += " (redirects are not followed: give the final URL)"
        raise PermanentError(message, http_status=status)
