"""How accounts are connected and kept connected: one Authenticator per platform.

An Authenticator knows a platform's authorization flow and its token lifetimes:

- `authorize_url` / `exchange`: the OAuth 2.0 authorization-code flow (RFC 6749 §4.1, with
  PKCE, RFC 7636, where the platform takes it). `exchange` turns the code the platform sent
  back into one or more `Connection`s (a Facebook login can grant several Pages).
- `connect`: credentials handed in directly (a Bluesky handle and app password; a Mastodon
  instance and token), checked against the platform before they are kept.
- `refresh`: renew the account's tokens (a refresh-token grant, a long-lived token exchange, a
  new session) or, where tokens do not expire, check they still work. It returns the new
  secrets, or raises `TransientError` (network, 5xx, 429: try again later, the account stays
  active) or `NeedsAuth` (invalid_grant, revoked, app deauthorized: a person must connect the
  account again; the message says why in their words).

Authenticators hold no state between calls; the token-refresher makes sure one account is
never refreshed twice at the same time (a rotating refresh token used twice logs the user out).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from herald_common.platforms.base import AccountRef


@dataclass(frozen=True)
class Connection:
    """An account a flow connected: what Herald stores for it."""

    handle: str
    external_id: str | None
    #: The platform's non-secret options for the account (checked against its settings schema).
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: The secrets (checked against the platform's credentials schema, then encrypted).
    credentials: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: When the access token expires (epoch seconds); None when it does not.
    expires_at: float | None = None


@dataclass(frozen=True)
class Refreshed:
    """New secrets for an account after a refresh (the whole set, replacing the old one)."""

    credentials: Mapping[str, Any] = field(repr=False)
    expires_at: float | None = None


@dataclass(frozen=True)
class OAuthClient:
    """An app registered with a platform: its client id and secret (from settings)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 §4.1–4.2)."""
    verifier = secrets.token_urlsafe(64)[:96]  # 43–128 characters of the unreserved set
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


class Authenticator(ABC):
    """Connects accounts on one platform and keeps their tokens alive."""

    platform: ClassVar[str]
    #: "oauth": connected through `authorize_url` + `exchange`; "direct": through `connect`.
    flow: ClassVar[str] = "oauth"
    #: Whether the authorize request carries a PKCE challenge (and the exchange its verifier).
    uses_pkce: ClassVar[bool] = False

    @property
    def configured(self) -> bool:
        """Whether this deployment has what the flow needs (an OAuth client id and secret)."""
        return True

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None = None
    ) -> str:
        """Where to send the user's browser to grant Herald access."""
        raise NotImplementedError(f"{self.platform} accounts are not connected through OAuth")

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[Connection]:
        """The accounts the returned authorization code grants (at least one)."""
        raise NotImplementedError(f"{self.platform} accounts are not connected through OAuth")

    def connect(self, values: Mapping[str, Any]) -> Connection:
        """An account from credentials handed in directly, checked against the platform."""
        raise NotImplementedError(f"{self.platform} accounts are connected through OAuth")

    @abstractmethod
    def refresh(self, account: AccountRef) -> Refreshed:
        """The account's renewed secrets; TransientError or NeedsAuth when it cannot be done."""

    def expires_at(self, credentials: Mapping[str, Any]) -> float | None:
        """When the stored access token expires (epoch seconds), None when it does not."""
        value = credentials.get("expires_at")
        return float(value) if isinstance(value, int | float) else None
