"""Connecting accounts: the OAuth 2.0 authorization-code flow, direct credentials, refreshes.

OAuth (RFC 6749 §4.1 with PKCE, RFC 7636, where the platform takes it):

1. `start_oauth` (an API call with the tenant's key) makes a random `state`, keeps only its
   SHA-256 with the tenant, the platform, the redirect URI and the sealed PKCE verifier, and
   returns the platform's authorize URL. The app sends its user's browser there.
2. The platform sends the browser back to `/v1/accounts/connect/{platform}/callback` with
   `code` and `state`. `finish_oauth` finds the flow by the state's hash (the state is the
   only credential of that request: it is unguessable, bound to the platform, used once and
   short-lived), exchanges the code, and stores each account the grant covers.

An account the tenant already has (same platform and platform id) is updated in place and
becomes active again: that is how re-auth works, and held targets then go out.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from herald_api.services.accounts import (
    checked_credentials,
    checked_settings,
    get_account,
    token_expires_at,
    url_settings,
)
from herald_common.db import session_scope
from herald_common.errors import (
    BadRequest,
    Conflict,
    FieldError,
    InvalidInput,
    NeedsAuth,
    NotFound,
    PlatformError,
    TransientError,
    UpstreamRefused,
    UpstreamUnavailable,
)
from herald_common.models import Account, AccountStatus, OAuthState
from herald_common.platforms import PLATFORMS, PlatformRegistry
from herald_common.platforms.auth import Authenticator, Connection, pkce_pair
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.tokens import from_epoch, reconnected, request_refresh, request_refresh_all


def callback_url(settings: Settings, platform: str) -> str:
    """The redirect URI to register with the platform's app."""
    return f"{settings.public_url.rstrip('/')}/v1/accounts/connect/{platform}/callback"


def _authenticator(platforms: PlatformRegistry, platform: str, flow: str) -> Authenticator:
    if platform not in PLATFORMS:
        raise NotFound(f"no platform {platform!r}")
    authenticator = platforms.authenticator(platform)
    if authenticator is None or authenticator.flow != flow:
        how = (
            "through POST /v1/accounts/connect/{platform} with its credentials"
            if authenticator is not None and authenticator.flow == "direct"
            else "through GET /v1/accounts/connect/{platform} (OAuth)"
            if authenticator is not None
            else "with POST /v1/accounts"
        ).format(platform=platform)
        raise InvalidInput(FieldError("platform", f"{platform} accounts are connected {how}"))
    if not authenticator.configured:
        raise InvalidInput(
            FieldError(
                "platform",
                f"this server has no {platform} app configured (see the README's "
                "configuration table for the client id and secret to set)",
            )
        )
    return authenticator


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def start_oauth(
    session: Session,
    tenant_id: str,
    platform: str,
    *,
    platforms: PlatformRegistry,
    settings: Settings,
    account_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Begin connecting (or reconnecting `account_id`): the authorize URL to send the user to."""
    now = now or utcnow()
    authenticator = _authenticator(platforms, platform, "oauth")
    if account_id is not None:
        account = get_account(session, tenant_id, account_id)
        if account.platform != platform:
            raise InvalidInput(FieldError("account_id", f"is not a {platform} account"))
    if not platforms.credentials.available:
        raise InvalidInput(
            FieldError(
                "platform", "this server cannot store secrets: HERALD_SECRET_KEYS is not set"
            )
        )
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair() if authenticator.uses_pkce else (None, None)
    redirect_uri = callback_url(settings, platform)
    expires_at = now + timedelta(seconds=settings.oauth_state_ttl_seconds)
    session.add(
        OAuthState(
            state_hash=_state_hash(state),
            tenant_id=tenant_id,
            platform=platform,
            account_id=account_id,
            redirect_uri=redirect_uri,
            code_verifier=platforms.credentials.seal({"v": verifier}) if verifier else None,
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    return {
        "platform": platform,
        "authorize_url": authenticator.authorize_url(
            state=state, redirect_uri=redirect_uri, code_challenge=challenge
        ),
        "state": state,
        "redirect_uri": redirect_uri,
        "expires_at": expires_at,
    }


def finish_oauth(
    engine: Engine,
    platform: str,
    params: Mapping[str, str],
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> list[Account]:
    """The callback: check the state, exchange the code, store the accounts it grants."""
    now = now or utcnow()
    state = params.get("state") or ""
    if not state:
        raise InvalidInput(FieldError("state", "is required"))
    with session_scope(engine) as session:
        flow = session.exec(
            select(OAuthState).where(OAuthState.state_hash == _state_hash(state)).with_for_update()
        ).first()
        if flow is None or flow.platform != platform:
            raise BadRequest("this connect link is unknown; start connecting again")
        if flow.used_at is not None:
            raise BadRequest("this connect link was already used; start connecting again")
        if flow.expires_at <= now:
            raise BadRequest("this connect link has expired; start connecting again")
        # Used once, whatever happens next: a code is not exchanged twice.
        flow.used_at = now
        session.add(flow)
        tenant_id, account_id, redirect_uri = flow.tenant_id, flow.account_id, flow.redirect_uri
        sealed_verifier = flow.code_verifier
    if params.get("error"):
        # RFC 6749 §4.1.2.1: the user declined, or the platform refused the request.
        description = params.get("error_description") or params["error"]
        raise BadRequest(f"{platform} did not grant access: {description[:300]}")
    code = params.get("code") or ""
    if not code:
        raise InvalidInput(FieldError("code", "is required"))
    authenticator = _authenticator(platforms, platform, "oauth")
    verifier = platforms.credentials.open(sealed_verifier).get("v") if sealed_verifier else None
    try:
        connections = authenticator.exchange(
            code=code, redirect_uri=redirect_uri, code_verifier=verifier
        )
    except PlatformError as exc:
        # The state is spent (a code is exchanged once): the user starts again.
        raise _connect_error(platform, exc, again="start connecting again") from None
    with session_scope(engine) as session:
        return [
            _store(
                session,
                connection,
                tenant_id=tenant_id,
                platform=platform,
                platforms=platforms,
                account_id=account_id,
                now=now,
            )
            for connection in connections
        ]


def connect_direct(
    engine: Engine,
    tenant_id: str,
    platform: str,
    values: Mapping[str, Any],
    *,
    platforms: PlatformRegistry,
    settings: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Account:
    """Connect with credentials handed in (Bluesky app password, Mastodon token), checked
    against the platform first; `settings` are further options of the account."""
    now = now or utcnow()
    authenticator = _authenticator(platforms, platform, "direct")
    # Before anything is sent: a private instance is a 422 here, not a 502 from the call.
    platforms.addresses.check(url_settings(values, prefix=""))
    if not platforms.credentials.available:
        raise InvalidInput(
            FieldError(
                "credentials", "this server cannot store secrets: HERALD_SECRET_KEYS is not set"
            )
        )
    try:
        connection = authenticator.connect(values)
    except NeedsAuth as exc:
        secret = "app_password" if platform == "bluesky" else "access_token"
        raise InvalidInput(FieldError(secret, exc.message)) from None
    except PlatformError as exc:
        raise _connect_error(platform, exc) from None
    with session_scope(engine) as session:
        return _store(
            session,
            connection,
            tenant_id=tenant_id,
            platform=platform,
            platforms=platforms,
            account_id=None,
            now=now,
            extra=settings,
        )


def _connect_error(platform: str, exc: PlatformError, *, again: str = "try again") -> Exception:
    if isinstance(exc, TransientError):
        return UpstreamUnavailable(
            f"{platform} could not be reached to connect the account ({exc.message}); "
            f"{again} in a moment",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, NeedsAuth):
        return BadRequest(f"{platform} refused the connection: {exc.message}")
    return UpstreamRefused(f"{platform} refused Herald's request: {exc.message}")


def _store(
    session: Session,
    connection: Connection,
    *,
    tenant_id: str,
    platform: str,
    platforms: PlatformRegistry,
    account_id: str | None,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
) -> Account:
    """Create the account, or update the one it reconnects, and make it active. Options the
    account already has are kept unless the platform (or `extra`) gives new ones."""
    account = _existing(session, tenant_id, platform, connection, account_id)
    settings = {**(account.settings if account else {}), **connection.settings, **(extra or {})}
    values = {
        "settings": checked_settings(platform, settings),
        "credentials": checked_credentials(platforms.credentials, platform, connection.credentials),
        "token_expires_at": (
            from_epoch(connection.expires_at)
            if connection.expires_at is not None
            else token_expires_at(platforms, platform, connection.credentials)
        ),
    }
    if account is None:
        account = Account(
            tenant_id=tenant_id,
            platform=platform,
            handle=connection.handle,
            external_id=connection.external_id,
            created_at=now,
            refreshed_at=now,
            **values,
        )
    else:
        account.handle = connection.handle
        account.external_id = connection.external_id or account.external_id
        for name, value in values.items():
            setattr(account, name, value)
        account.refreshed_at = now
    account.updated_at = now
    session.add(account)
    session.flush()
    reconnected(session, account, now)
    return account


def _existing(
    session: Session,
    tenant_id: str,
    platform: str,
    connection: Connection,
    account_id: str | None,
) -> Account | None:
    if account_id is not None:
        account = get_account(session, tenant_id, account_id)
        if (
            account.external_id
            and connection.external_id
            and account.external_id != connection.external_id
        ):
            raise Conflict(
                f"the {platform} user who signed in ({connection.handle}) is not the one this "
                "account belongs to; sign in as that user, or connect a new account"
            )
        return account
    if connection.external_id is None:
        return None
    return session.exec(
        select(Account)
        .where(
            Account.tenant_id == tenant_id,
            Account.platform == platform,
            Account.external_id == connection.external_id,
            col(Account.deleted_at).is_(None),
        )
        .order_by(col(Account.created_at))
    ).first()


def refresh_account(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> Account:
    """Ask for a refresh of one account now (the token-refresher does it within a tick)."""
    now = now or utcnow()
    account = get_account(session, tenant_id, account_id)
    if platforms.authenticator(account.platform) is None:
        raise Conflict(f"{account.platform} accounts have no tokens to refresh")
    if account.status == AccountStatus.DISCONNECTED:
        raise Conflict("the account is disconnected")
    request_refresh(session, account, now)
    session.refresh(account)
    return account


def refresh_all(
    session: Session,
    *,
    platforms: PlatformRegistry,
    account_id: str | None = None,
    tenant_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """The admin refresh: one account (any tenant's) or every active account; how many."""
    now = now or utcnow()
    if account_id is None:
        return request_refresh_all(session, platforms, now, tenant_id=tenant_id)
    account = session.exec(
        select(Account).where(Account.id == account_id, col(Account.deleted_at).is_(None))
    ).first()
    if account is None or (tenant_id is not None and account.tenant_id != tenant_id):
        raise NotFound(f"no account {account_id}")
    if platforms.authenticator(account.platform) is None:
        raise Conflict(f"{account.platform} accounts have no tokens to refresh")
    request_refresh(session, account, now)
    return 1
