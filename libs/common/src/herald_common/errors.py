"""Herald's one error tree. Nothing here knows about HTTP; the API maps it once.

HeraldError
├── NotFound             the thing does not exist for this tenant
├── Conflict             the thing is in a state that forbids the change
├── InvalidInput         the input breaks a rule; names the field(s)
├── Unauthorized         no valid credentials were given
├── Forbidden            the credentials may not do this
├── TooManyRequests      the caller is over one of its limits (rate, jobs in flight)
└── PlatformError        a platform call failed
    ├── TransientError   worth trying again later (network, 5xx, 429)
    ├── NeedsAuth        the account's token must be refreshed or re-granted
    └── PermanentError   will fail the same way again (validation, revoked)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


class HeraldError(Exception):
    """Root of every error Herald raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(HeraldError):
    """Raised when a resource does not exist or belongs to another tenant."""

    code = "not_found"


class Conflict(HeraldError):
    """Raised when a resource's current state forbids the requested change."""

    code = "conflict"


@dataclass(frozen=True)
class FieldError:
    """One broken rule: the field (dotted path) and the reason in plain words.

    A platform's rule also names itself (`rule`, e.g. "max_graphemes") and the account whose
    platform it is (`account_id`), so a client can show the error beside that target.
    """

    field: str
    reason: str
    rule: str | None = None
    account_id: str | None = None


class InvalidInput(HeraldError):
    """Raised when input breaks a rule; carries one FieldError per broken rule."""

    code = "invalid_input"

    def __init__(self, errors: list[FieldError] | FieldError, message: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        summary = "; ".join(f"{e.field}: {e.reason}" for e in self.errors)
        super().__init__(message or summary or "invalid input")


def _items(count: object) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    ctx = error.get("ctx") or {}
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"must have at least {_items(ctx.get('min_length'))}"
    if kind == "too_long":
        return f"must have at most {_items(ctx.get('max_length'))}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    for prefix, plain in (
        ("Input should", "must"),
        ("String should", "must"),
        ("List should", "must"),
    ):
        if message.startswith(prefix):
            return plain + message[len(prefix) :]
    return message[:1].lower() + message[1:]


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as FieldErrors with dotted paths (`account_ids.1`) and plain reasons."""
    errors = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        field = ".".join(p for p in (prefix, path) if p) or "body"
        errors.append(FieldError(field, _reason(error)))
    return errors


class Unauthorized(HeraldError):
    """Raised when a request carries no valid API key."""

    code = "unauthorized"


class Forbidden(HeraldError):
    """Raised when a valid API key may not perform the request."""

    code = "forbidden"


class BadRequest(HeraldError):
    """Raised when a request cannot be carried out as sent (an expired connect link, a flow
    the user declined)."""

    code = "bad_request"


class TooManyRequests(HeraldError):
    """Raised when a tenant is over one of its limits: its request rate, or its jobs queued or
    running on a shared queue. `retry_after` is when trying again may succeed, if known."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamUnavailable(HeraldError):
    """Raised when a platform Herald needs for this request is unreachable or overloaded."""

    code = "upstream_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamRefused(HeraldError):
    """Raised when a platform refuses Herald itself (its app's configuration), not the user."""

    code = "upstream_refused"


class PlatformError(HeraldError):
    """Raised when a platform call fails; keeps the HTTP status and platform's message."""

    code = "platform_error"
    kind = "error"

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class TransientError(PlatformError):
    """Raised when a platform call may succeed if tried again later."""

    kind = "retryable"

    def __init__(
        self, message: str, *, http_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = retry_after


class Waiting(TransientError):
    """Raised when the platform says "not yet" in a way that is no failure: wait and ask again.

    The publisher puts the target back for `retry_after` without spending an attempt, up to
    RATE_LIMIT_MAX_WAIT_SECONDS after the post's time.
    """


class RateLimited(Waiting):
    """Raised when a rate limit or publishing quota is used up."""


class StillProcessing(Waiting):
    """Raised when the platform accepted the post and is still processing it (a TikTok
    publish_id, an Instagram container): the next try carries on from the checkpoint."""


class NeedsAuth(PlatformError):
    """Raised when the account's token is expired, revoked or lacks a scope."""

    kind = "needs_auth"


class PermanentError(PlatformError):
    """Raised when a platform call will fail the same way however often it is tried."""

    kind = "permanent"


class OutcomeUnknown(PlatformError):
    """Raised when the platform may have made the post but its answer was lost.

    The target becomes `unknown` for a person to resolve: trying again could post twice.
    """

    kind = "unknown"
