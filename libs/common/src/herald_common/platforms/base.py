"""The interface every platform adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


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


@dataclass(frozen=True)
class PublishRequest:
    """One post to one account. `idempotency_key` is derived from the target and never changes."""

    account: AccountRef
    idempotency_key: str
    text: str
    media: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class PublishResult:
    """What the platform answered for an accepted post."""

    platform_post_id: str
    url: str | None = None
    http_status: int | None = None


@dataclass(frozen=True)
class Violation:
    """One platform rule a post breaks, in words a person understands."""

    rule: str
    reason: str


class LookupUnsupported(Exception):
    """Raised when a platform gives no way to find an earlier publish by its key."""


class Platform(ABC):
    """An adapter: checks posts against a platform's limits and publishes them.

    `publish` raises herald_common.errors.TransientError, NeedsAuth or PermanentError.
    """

    name: ClassVar[str]

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
