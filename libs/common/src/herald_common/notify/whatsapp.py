"""WhatsApp messages through Meta's Cloud API.

`POST {WHATSAPP_API_URL}/{GRAPH_API_VERSION}/{WHATSAPP_PHONE_NUMBER_ID}/messages` with the
system user's token as a Bearer, one text message per call; the answer names the message
(`messages[0].id`, a `wamid.…`). Errors come as Graph API errors,
`{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"}, "fbtrace_id"}}`,
and are told apart by `code`, as Meta advises: throughput (130429, 80007, 4), spam (131048)
and pair (131056) rate limits and Meta's own trouble (1, 2, 131000, 133004) pass; anything else
(131026 undeliverable, 131047 outside the 24-hour window, 131030 not an allowed recipient, 100
a bad parameter, 190 an expired token…) will not.

Sends in flight are limited to WHATSAPP_CONCURRENCY across every process (seed 003's limit):
with Redis, Dramatiq's ConcurrentRateLimiter holds the count beside the broker's keys; with the
in-process broker, a semaphore does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import httpx
import redis
from dramatiq.broker import Broker
from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from herald_common.errors import PermanentError, TransientError
from herald_common.logs import redact
from herald_common.platforms.http import retry_after_seconds
from herald_common.settings import Settings

#: Graph API error codes that say "not now" rather than "never".
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131048, 131056, 133004})
#: What a text message's body may hold.
MAX_BODY_CHARS = 4096


class Slots(Protocol):
    """Places for sends in flight; `try_hold` yields whether one was taken (and frees it after)."""

    limit: int

    def try_hold(self) -> AbstractContextManager[bool]: ...


class RedisSlots:
    """Slots counted in Redis, shared by every worker process and replica."""

    def __init__(self, client: redis.Redis, key: str, *, limit: int, ttl_ms: int) -> None:
        self.limit = limit
        # A slot held by a worker that died is freed when the counter expires: `ttl_ms` after
        # the last send began or ended.
        self._limiter = ConcurrentRateLimiter(
            RedisBackend(client=client), key, limit=limit, ttl=ttl_ms
        )

    def try_hold(self) -> AbstractContextManager[bool]:
        return self._limiter.acquire(raise_on_failure=False)


class LocalSlots:
    """Slots of this process (the in-process broker runs every worker in it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)

    @contextmanager
    def try_hold(self) -> Iterator[bool]:
        held = self._semaphore.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                self._semaphore.release()


def whatsapp_slots(broker: Broker, settings: Settings, *, ttl_ms: int = 120_000) -> Slots:
    """WHATSAPP_CONCURRENCY slots: in Redis when the broker is (its client reused), else local."""
    client = getattr(broker, "client", None)
    if isinstance(client, redis.Redis):
        key = f"{settings.broker_namespace}:whatsapp:in-flight"
        return RedisSlots(client, key, limit=settings.whatsapp_concurrency, ttl_ms=ttl_ms)
    return LocalSlots(settings.whatsapp_concurrency)


def whatsapp_client(settings: Settings) -> httpx.Client:
    """The HTTP client for the Cloud API (its URL is the operator's, not a tenant's)."""
    timeout = settings.platform_timeout_seconds
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": "Herald (+https://github.com/herald-social/herald)"},
    )


class WhatsAppSender:
    """Sends text messages from the business number WHATSAPP_PHONE_NUMBER_ID."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client,
        slots: Slots,
        *,
        wait_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._client = client
        self._slots = slots
        self._wait_seconds = wait_seconds
        self._sleep = sleep

    @property
    def url(self) -> str:
        """The messages endpoint."""
        s = self._settings
        return f"{s.whatsapp_api_url.rstrip('/')}/{s.graph_api_version}/{s.whatsapp_phone_number_id}/messages"

    def send(self, to: str, body: str) -> str:
        """Send `body` to the number `to` (digits with the country code); the message's id."""
        settings = self._settings
        if not settings.whatsapp_token or not settings.whatsapp_phone_number_id:
            raise PermanentError(
                "WhatsApp is not configured: set WHATSAPP_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
            )
        digits = "".join(ch for ch in to if ch.isdigit())
        if not 8 <= len(digits) <= 15:
            raise PermanentError(f"whatsapp: {to!r} is not an international phone number")
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": digits,
            "type": "text",
            "text": {"preview_url": False, "body": body[:MAX_BODY_CHARS]},
        }
        headers = {"Authorization": f"Bearer {settings.whatsapp_token}"}
        with self._slot():
            try:
                response = self._client.post(self.url, json=payload, headers=headers)
            except httpx.TransportError as exc:
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                raise TransientError(
                    f"whatsapp: the request {kind} ({type(exc).__name__})"
                ) from None
        if response.is_success:
            return _message_id(response)
        raise error_of(response)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """Hold one of the slots, waiting up to `wait_seconds` for one to free up."""
        deadline = time.monotonic() + self._wait_seconds
        pause = 0.05
        while True:
            with self._slots.try_hold() as held:
                if held:
                    yield
                    return
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"whatsapp: all {self._slots.limit} sends in flight (WHATSAPP_CONCURRENCY) "
                    f"for {self._wait_seconds:g} s; trying again later",
                    retry_after=self._wait_seconds,
                )
            self._sleep(pause * (1 + random.random()))
            pause = min(pause * 2, 1.0)


def _message_id(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["messages"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        # Accepted (2xx) without the answer we expect: it went; its id is unknown.
        return ""


def error_of(response: httpx.Response) -> TransientError | PermanentError:
    """A failed Cloud API call as an error, classified by its Graph API `code`."""
    error: Mapping[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") if error else None
    words = " — ".join(str(p) for p in (error.get("message"), details) if p) or (
        response.text.strip()[:300] or response.reason_phrase
    )
    status = response.status_code
    message = redact(f"whatsapp: {words} (code {code}, HTTP {status})")
    if status == 429 or status >= 500 or code in TRANSIENT_CODES:
        retry_after = retry_after_seconds(response.headers)
        return TransientError(message, http_status=status, retry_after=retry_after)
    if code == 190 or status == 401:
        return PermanentError(
            f"{message}; Herald's WhatsApp token was refused: renew WHATSAPP_TOKEN",
            http_status=status,
        )
    return PermanentError(message, http_status=status)
