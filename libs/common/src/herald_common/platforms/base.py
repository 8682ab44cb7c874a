"""The interface every platform adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from herald_common.errors import PermanentError


class TokenCredentials(BaseModel):
    """The secrets of an account connected with OAuth 2.0 (or a platform's own token grant):
    the access token, and what the token-refresher needs to renew it."""

    model_config = ConfigDict(extra="forbid")

    access_token: str = Field(min_length=1, max_length=8000)
    refresh_token: str | None = Field(default=None, max_length=8000)
    #: When the access token (and the refresh token) expire, in epoch seconds.
    expires_at: float | None = None
    refresh_expires_at: float | None = None
    #: The scopes the user granted, as the platform lists them.
    scope: str | None = Field(default=None, max_length=2000)


@dataclass(frozen=True)
class AccountRef:
    """What an adapter needs to know of the account it publishes to."""

    id: str
    tenant_id: str
    platform: str
    handle: str
    external_id: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Tokens and passwords, decrypted for this call only; never logged (repr=False).
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)


def _discard(state: Mapping[str, Any]) -> None:
    """The default checkpoint sink: nothing is kept."""


@dataclass(frozen=True)
class PublishRequest:
    """One post to one account. `idempotency_key` is derived from the target and never changes.

    Media items are mappings with `url` (http/https) and optional `kind` ("image" | "video"),
    `mime_type`, `alt`, `filename`, `size` (bytes); adapters that upload bytes may also get
    `data` (base64).

    `checkpoint` is what an earlier try of this same target saved through `save_checkpoint`
    (empty on the first try). A multi-step adapter saves the platform's handle for work in
    flight (an Instagram container id, a TikTok publish_id) *before* the step that makes the
    post visible, so that a retry or a reconciliation after a crash continues or looks up that
    work instead of starting a second one. `save_checkpoint` stores the mapping durably (it
    replaces what was saved before) and raises if the target is no longer this try's to
    change.
    """

    account: AccountRef
    idempotency_key: str
    text: str
    media: tuple[Mapping[str, Any], ...] = ()
    checkpoint: Mapping[str, Any] = field(default_factory=dict)
    save_checkpoint: Callable[[Mapping[str, Any]], None] = field(
        default=_discard, repr=False, compare=False
    )


@dataclass(frozen=True)
class PublishResult:
    """What the platform answered for an accepted post."""

    platform_post_id: str
    url: str | None = None
    http_status: int | None = None
    #: Bookkeeping the platform keeps in Herald's own database (the sandbox's delivery row),
    #: written in the transaction that records the outcome, so that both or neither are: it
    #: is given that transaction's connection (a herald_common.hot one) and the id of the
    #: try's attempt row, and writes only if that row exists (the transaction's statements
    #: are sent together, so it cannot wait to see whether the outcome was recorded; None:
    #: write unconditionally). Nothing it writes may change this result.
    with_outcome: Callable[[Any, str | None], None] | None = field(
        default=None, repr=False, compare=False
    )


@dataclass(frozen=True)
class Violation:
    """One platform rule a post breaks, in words a person understands."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Pace:
    """At most `limit` publishes per `window_seconds`, for each account or for the whole platform.

    The publisher enforces these with Dramatiq rate limiters (on Redis in production) before it
    calls `publish`; a target over the limit waits for the window to move, it does not fail.
    """

    scope: Literal["account", "platform"]
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class MetricsRequest:
    """One published post whose metrics are asked for: the account (with its secrets) and what
    the publish left (the platform's id and URL, and the checkpoint of a multi-step publish).

    `now` is when the pull happens; the sandbox simulates growth up to it, real platforms
    answer with what they count now.
    """

    account: AccountRef
    platform_post_id: str
    url: str | None = None
    published_at: datetime | None = None
    checkpoint: Mapping[str, Any] = field(default_factory=dict)
    now: datetime | None = None


@dataclass(frozen=True)
class PostMetrics:
    """What a platform counts for one post. A metric the platform does not give is None, never
    0; anything else it gives (saves, reach, bookmarks…) is in `extra` under its own name."""

    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    quotes: int | None = None
    views: int | None = None
    impressions: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class LookupUnsupported(Exception):
    """Raised when a platform gives no way to find an earlier publish by its key."""


class Platform(ABC):
    """An adapter: checks posts against a platform's limits and publishes them.

    `publish` raises herald_common.errors.TransientError, NeedsAuth or PermanentError.
    """

    name: ClassVar[str]
    #: Publishing paces the platform documents (see Pace); empty when it documents none.
    pacing: ClassVar[tuple[Pace, ...]] = ()

    def may_be_public(self, checkpoint: Mapping[str, Any]) -> bool:
        """Whether an earlier try that left this checkpoint may have made a post visible.

        While it may, the post's text and media cannot change (the next try continues that
        work, or a person resolves it). By default any checkpoint counts; adapters that
        checkpoint harmless preparation (uploaded media) say which stages are safe.
        """
        return bool(checkpoint)

    def paces(self, account: AccountRef) -> tuple[Pace, ...]:
        """The paces that apply to publishing on this account (the platform's, by default)."""
        return self.pacing

    @abstractmethod
    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        """The rules this post breaks on this account (empty when it can be published)."""

    @abstractmethod
    def publish(self, request: PublishRequest) -> PublishResult:
        """Publish, using the request's idempotency key so a repeat cannot post twice."""

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        """The earlier publish under this key, None when there was none.

        Raises LookupUnsupported where the platform gives no such way.
        """
        raise LookupUnsupported(self.name)

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        """What the platform counts for a published post now.

        Raises TransientError (RateLimited on a 429), NeedsAuth, or PermanentError — also when
        the post is gone (deleted, 404) or the platform gives no metrics, so that nobody asks
        again for it.
        """
        raise PermanentError(f"{self.name}: gives no metrics Herald can read")
