"""Fair limits on the API: requests per API key, counted with the `limits` package.

The windows are `limits`' sliding-window counters (two counters per window: a fixed window's
cost, without letting a client send twice the limit across a window's boundary), on the
broker's Redis so that every gunicorn worker and replica counts together; without Redis
(`make run`) in this process's memory. The limit is API_RATE_LIMIT, or the tenant's own
`rate_limit` ("unlimited" lifts it). Answers carry `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds) for the tightest window; a refusal is a 429 with `Retry-After`.

Redis unreachable lets requests through (logged): the API must keep accepting schedules when
Redis is down, and a limit is worth less than the service.
"""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache
from typing import Any

import falcon
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from herald_common.errors import FieldError, InvalidInput, TooManyRequests
from herald_common.settings import Settings

log = logging.getLogger(__name__)

#: A tenant's `rate_limit` that lifts the limit.
UNLIMITED = "unlimited"


@lru_cache(maxsize=256)
def parse_limits(text: str) -> tuple[RateLimitItem, ...]:
    """The windows of a limit in `limits`' notation ("100/second;3000/minute"); () for none."""
    text = text.strip()
    if not text or text == UNLIMITED:
        return ()
    try:
        return tuple(parse_many(text))
    except ValueError:
        raise InvalidInput(
            FieldError("rate_limit", f"{text!r} is not a rate limit like '100/second;3000/minute'")
        ) from None


class RateLimiter:
    """Counts requests per API key against the windows of its tenant's limit."""

    def __init__(self, storage_uri: str, default: str, *, namespace: str = "herald") -> None:
        options: dict[str, Any] = {}
        if storage_uri.startswith(("redis://", "rediss://")):
            options["key_prefix"] = f"{namespace}:ratelimit"
        self._limiter = SlidingWindowCounterRateLimiter(storage_from_string(storage_uri, **options))
        self._default = parse_limits(default)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        """On the broker's Redis when there is one, else in this process's memory."""
        return cls(
            settings.broker_url or "memory://",
            settings.api_rate_limit,
            namespace=settings.broker_namespace,
        )

    def windows(self, tenant_limit: str | None) -> tuple[RateLimitItem, ...]:
        """The windows that apply: the tenant's own, else the default."""
        return parse_limits(tenant_limit) if tenant_limit is not None else self._default

    def hit(self, key: str, windows: tuple[RateLimitItem, ...]) -> tuple[bool, int, int, float]:
        """Count one request of `key`: (allowed, limit, remaining, seconds until reset) of the
        window that refused it, else of the first window."""
        # One round trip per window, and one more for the headers' reading of the window that
        # refused (or the first): a request costs two with one window.
        shown = windows[0]
        allowed = True
        for window in windows:
            if not self._limiter.hit(window, key):
                allowed, shown = False, window
                break
        stats = self._limiter.get_window_stats(shown, key)
        return allowed, shown.amount, stats.remaining, max(0.0, stats.reset_time - time.time())


class TenantLimitsMiddleware:
    """Applies the tenant's limits: 429 for an API key over its request rate (RateLimit-*
    headers on the others), and `req.context.max_active_jobs` for the services that start
    jobs. It runs after authentication (the key and its tenant are known)."""

    def __init__(self, limiter: RateLimiter, *, max_active_jobs: int) -> None:
        self._limiter = limiter
        self._max_active_jobs = max_active_jobs

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        principal = getattr(req.context, "principal", None)
        if principal is None:
            return  # a public route
        req.context.max_active_jobs = principal.max_active_jobs or self._max_active_jobs
        windows = self._limiter.windows(principal.rate_limit)
        if not windows:
            return
        try:
            allowed, limit, remaining, reset = self._limiter.hit(principal.key_id, windows)
        except Exception as exc:  # the storage is away: serve rather than refuse
            log.warning("rate limit not checked: %s", type(exc).__name__)
            return
        reset_seconds = max(1, math.ceil(reset))
        resp.set_header("RateLimit-Limit", str(limit))
        resp.set_header("RateLimit-Remaining", str(max(0, remaining)))
        resp.set_header("RateLimit-Reset", str(reset_seconds))
        if not allowed:
            raise TooManyRequests(
                f"this API key is over its rate limit of {limit} requests in the window; "
                f"try again in {reset_seconds} s",
                retry_after=reset_seconds,
            )
