"""Platform adapters behind one interface, and the registry that builds them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.crypto import CredentialBox
from herald_common.db import session_scope
from herald_common.errors import FieldError, InvalidInput
from herald_common.models import Account
from herald_common.platforms.auth import Authenticator, OAuthClient
from herald_common.platforms.base import (
    AccountRef,
    LookupUnsupported,
    MetricsRequest,
    Pace,
    Platform,
    PostMetrics,
    PublishRequest,
    PublishResult,
    Violation,
)
from herald_common.platforms.bluesky import BlueskyCredentials, BlueskyPlatform, BlueskySettings
from herald_common.platforms.direct_auth import BlueskyAuthenticator, MastodonAuthenticator
from herald_common.platforms.facebook import (
    FacebookCredentials,
    FacebookPlatform,
    FacebookSettings,
)
from herald_common.platforms.http import PublicAddresses, PublicOnlyTransport
from herald_common.platforms.instagram import (
    InstagramCredentials,
    InstagramPlatform,
    InstagramSettings,
)
from herald_common.platforms.linkedin import (
    LinkedInCredentials,
    LinkedInPlatform,
    LinkedInSettings,
)
from herald_common.platforms.mastodon import (
    MastodonCredentials,
    MastodonPlatform,
    MastodonSettings,
)
from herald_common.platforms.meta_auth import (
    FacebookAuthenticator,
    InstagramAuthenticator,
    ThreadsAuthenticator,
)
from herald_common.platforms.oauth2 import (
    LinkedInAuthenticator,
    TikTokAuthenticator,
    XAuthenticator,
)
from herald_common.platforms.sandbox import SandboxPlatform, SandboxSettings
from herald_common.platforms.threads import (
    ThreadsCredentials,
    ThreadsPlatform,
    ThreadsSettings,
)
from herald_common.platforms.tiktok import TikTokCredentials, TikTokPlatform, TikTokSettings
from herald_common.platforms.x import XCredentials, XPlatform, XSettings
from herald_common.settings import Settings
from herald_common.timeutil import from_epoch

log = logging.getLogger(__name__)


class NoCredentials(BaseModel):
    """A platform that needs no secrets."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class PlatformSchemas:
    """What an account on a platform is configured with: its options and its secrets."""

    settings: type[BaseModel]
    credentials: type[BaseModel]


#: Platforms an account can be created for, with the schemas of their settings and secrets.
SCHEMAS: dict[str, PlatformSchemas] = {
    "sandbox": PlatformSchemas(SandboxSettings, NoCredentials),
    "mastodon": PlatformSchemas(MastodonSettings, MastodonCredentials),
    "bluesky": PlatformSchemas(BlueskySettings, BlueskyCredentials),
    "tiktok": PlatformSchemas(TikTokSettings, TikTokCredentials),
    "x": PlatformSchemas(XSettings, XCredentials),
    "linkedin": PlatformSchemas(LinkedInSettings, LinkedInCredentials),
    "facebook": PlatformSchemas(FacebookSettings, FacebookCredentials),
    "instagram": PlatformSchemas(InstagramSettings, InstagramCredentials),
    "threads": PlatformSchemas(ThreadsSettings, ThreadsCredentials),
}
PLATFORMS = tuple(SCHEMAS)


def http_client(settings: Settings) -> httpx.Client:
    """The one HTTP client a process's adapters share (thread-safe, pooled, explicit timeouts)."""
    timeout = settings.platform_timeout_seconds
    return httpx.Client(
        transport=PublicOnlyTransport(
            allow_private=settings.platform_allow_private_addresses,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        ),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": "Herald (+https://github.com/herald-social/herald)"},
        follow_redirects=True,
    )


def _oauth_client(client_id: str | None, client_secret: str | None) -> OAuthClient | None:
    return OAuthClient(client_id, client_secret) if client_id else None


def authenticators(client: httpx.Client, settings: Settings) -> dict[str, Authenticator]:
    """One Authenticator per platform whose accounts are connected or refreshed."""
    meta = _oauth_client(settings.facebook_app_id, settings.facebook_app_secret)
    return {
        "mastodon": MastodonAuthenticator(client),
        "bluesky": BlueskyAuthenticator(client),
        "x": XAuthenticator(
            client,
            oauth=_oauth_client(settings.x_client_id, settings.x_client_secret),
            api_url=settings.x_api_url,
            authorize_url=settings.x_authorize_url,
        ),
        "linkedin": LinkedInAuthenticator(
            client,
            oauth=_oauth_client(settings.linkedin_client_id, settings.linkedin_client_secret),
            oauth_url=settings.linkedin_oauth_url,
            api_url=settings.linkedin_api_url,
        ),
        "tiktok": TikTokAuthenticator(
            client,
            oauth=_oauth_client(settings.tiktok_client_key, settings.tiktok_client_secret),
            api_url=settings.tiktok_api_url,
            authorize_url=settings.tiktok_authorize_url,
        ),
        "facebook": FacebookAuthenticator(
            client,
            oauth=meta,
            api_url=settings.facebook_api_url,
            api_version=settings.graph_api_version,
            dialog_url=settings.facebook_dialog_url,
        ),
        "instagram": InstagramAuthenticator(
            client,
            oauth=meta,
            api_url=settings.instagram_api_url,
            api_version=settings.graph_api_version,
            dialog_url=settings.facebook_dialog_url,
        ),
        "threads": ThreadsAuthenticator(
            client,
            oauth=_oauth_client(settings.threads_app_id, settings.threads_app_secret),
            api_url=settings.threads_api_url,
            api_version=settings.threads_api_version,
            authorize_url=settings.threads_authorize_url,
        ),
    }


def account_ref(account: AccountFields, credentials: Mapping[str, Any] | None = None) -> AccountRef:
    """The adapter's view of an account (with its secrets only when a call needs them)."""
    return AccountRef(
        id=account.id,
        tenant_id=account.tenant_id,
        platform=account.platform,
        handle=account.handle,
        external_id=account.external_id,
        settings=dict(account.settings or {}),
        credentials=dict(credentials or {}),
    )


class AccountFields(Protocol):
    """What is read of an account to call its platform: an ORM row or a claimed one."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def platform(self) -> str: ...
    @property
    def handle(self) -> str: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def settings(self) -> Mapping[str, Any] | None: ...


class SealedCredentials(Protocol):
    """An account as far as its secrets go: the sealed token it keeps."""

    @property
    def credentials(self) -> str | None: ...


class PlatformRegistry:
    """Builds each adapter once, with the collaborators it needs, and holds account secrets."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        settings = settings or Settings()
        self._engine = engine
        self.credentials = CredentialBox(settings.secret_keys)
        #: Checks tenants' URLs as they are given: public hosts only (see PublicOnlyTransport).
        self.addresses = PublicAddresses(
            allow_private=settings.platform_allow_private_addresses, own_url=settings.public_url
        )
        self._client = client or http_client(settings)
        poll = settings.platform_poll_interval_seconds
        self._adapters: dict[str, Platform] = {
            "sandbox": SandboxPlatform(engine),
            "mastodon": MastodonPlatform(self._client, media_poll_interval=poll),
            "bluesky": BlueskyPlatform(self._client, on_session=self._store_session),
            # Polls stay well inside the publish time limit (2 min); a longer wait is a retry
            # that continues from the checkpoint.
            "tiktok": TikTokPlatform(
                self._client,
                api_url=settings.tiktok_api_url,
                poll_interval=poll,
                poll_timeout=60.0,
            ),
            "x": XPlatform(
                self._client, api_url=settings.x_api_url, poll_interval=poll, poll_timeout=60.0
            ),
            "linkedin": LinkedInPlatform(
                self._client,
                api_url=settings.linkedin_api_url,
                version=settings.linkedin_version,
                poll_interval=poll,
                poll_timeout=60.0,
            ),
            "facebook": FacebookPlatform(
                self._client,
                api_url=settings.facebook_api_url,
                api_version=settings.graph_api_version,
            ),
            "instagram": InstagramPlatform(
                self._client,
                api_url=settings.instagram_api_url,
                api_version=settings.graph_api_version,
                poll_interval=poll,
                poll_timeout=60.0,
            ),
            "threads": ThreadsPlatform(
                self._client,
                api_url=settings.threads_api_url,
                api_version=settings.threads_api_version,
                poll_interval=poll,
                poll_timeout=60.0,
            ),
        }

        self._authenticators = authenticators(self._client, settings)

    def authenticator(self, platform: str) -> Authenticator | None:
        """How accounts on a platform are connected and refreshed; None where nothing expires."""
        return self._authenticators.get(platform)

    def token_expiry(self, platform: str, credentials: Mapping[str, Any]) -> float | None:
        """When these secrets' access token expires (epoch seconds); None when it does not."""
        authenticator = self.authenticator(platform)
        return authenticator.expires_at(credentials) if authenticator else None

    def get(self, platform: str) -> Platform:
        """The adapter for a platform name; InvalidInput when Herald has none."""
        try:
            return self._adapters[platform]
        except KeyError:
            raise InvalidInput(
                FieldError("platform", f"Herald has no adapter for {platform!r}")
            ) from None

    def credentials_of(self, account: SealedCredentials) -> dict[str, Any]:
        """The account's secrets, decrypted for one call."""
        return self.credentials.open(account.credentials)

    def _store_session(self, account: AccountRef, tokens: Mapping[str, str]) -> None:
        """Keep tokens an adapter was given (a new Bluesky session) with the account's secrets."""
        with session_scope(self._engine) as session:
            # Locked, so a change of credentials through the API is not merged with stale ones.
            row = session.exec(
                select(Account)
                .where(Account.id == account.id, Account.tenant_id == account.tenant_id)
                .with_for_update()
            ).first()
            if row is None:
                return
            merged = {**self.credentials.open(row.credentials), **tokens}
            session.execute(
                update(Account)
                .where(Account.id == account.id, Account.tenant_id == account.tenant_id)  # type: ignore[arg-type]
                .values(
                    credentials=self.credentials.seal(merged),
                    # The account shows the new token's expiry, not the one it replaced; the
                    # token-refresher's window reads it too.
                    token_expires_at=from_epoch(self.token_expiry(account.platform, merged)),
                )
            )
        log.info("platforms: stored a new %s session for account %s", account.platform, account.id)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()


__all__ = [
    "PLATFORMS",
    "SCHEMAS",
    "AccountFields",
    "AccountRef",
    "Authenticator",
    "LookupUnsupported",
    "MetricsRequest",
    "Pace",
    "Platform",
    "PlatformRegistry",
    "PlatformSchemas",
    "PostMetrics",
    "PublishRequest",
    "PublishResult",
    "SandboxSettings",
    "Violation",
    "account_ref",
]
