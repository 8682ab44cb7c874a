"""Connected accounts: create, list, change, soft-delete, and what the sandbox received."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, select

from herald_api.parsing import field_errors
from herald_api.schemas import AccountCreate, AccountUpdate
from herald_api.services.posts import cancel_account_targets
from herald_common.crypto import CredentialBox
from herald_common.errors import FieldError, InvalidInput, NotFound
from herald_common.models import Account, AccountStatus, SandboxDelivery
from herald_common.platforms import PLATFORMS, SCHEMAS, PlatformRegistry
from herald_common.timeutil import utcnow
from herald_common.tokens import from_epoch, reconnected


def get_account(session: Session, tenant_id: str, account_id: str) -> Account:
    """The tenant's live account; NotFound for a deleted one or anyone else's."""
    account = session.exec(
        select(Account).where(
            Account.id == account_id,
            Account.tenant_id == tenant_id,
            col(Account.deleted_at).is_(None),
        )
    ).first()
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account


def list_accounts(session: Session, tenant_id: str) -> list[Account]:
    """The tenant's live accounts, oldest first."""
    return list(
        session.exec(
            select(Account)
            .where(Account.tenant_id == tenant_id, col(Account.deleted_at).is_(None))
            .order_by(col(Account.created_at), col(Account.id))
        ).all()
    )


def _checked(schema: type[BaseModel], values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The values, checked against a platform's schema (errors name `<prefix>.<field>`)."""
    try:
        # Through JSON, as the body arrived: strict schemas then take ISO strings and numbers.
        parsed = schema.model_validate_json(json.dumps(values))
    except ValidationError as exc:
        # field_errors names the field and the rule, never the value, so no secret is echoed.
        raise InvalidInput(field_errors(exc, prefix=prefix)) from None
    return parsed.model_dump(mode="json", exclude_unset=True)


def checked_settings(platform: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The account's options, checked against its platform's settings schema (422 naming
    `settings.<field>`)."""
    return _checked(SCHEMAS[platform].settings, dict(values), "settings")


def url_settings(values: Mapping[str, Any], prefix: str = "settings.") -> dict[str, str]:
    """The settings that are URLs Herald will call (Mastodon's `instance_url`, Bluesky's
    `service_url`), by field, for the public-address check."""
    return {
        f"{prefix}{name}": value
        for name, value in values.items()
        if name.endswith("_url") and isinstance(value, str)
    }


def checked_credentials(
    box: CredentialBox, platform: str, credentials: Mapping[str, Any] | None
) -> str | None:
    """The platform's secrets, checked and encrypted; None when there are none."""
    values = _checked(SCHEMAS[platform].credentials, dict(credentials or {}), "credentials")
    if not values:
        return None
    if not box.available:
        raise InvalidInput(
            FieldError(
                "credentials",
                "this server cannot store secrets: HERALD_SECRET_KEYS is not set",
            )
        )
    return box.seal(values)


def _handle_errors(handle: str) -> list[FieldError]:
    return [] if handle.strip() else [FieldError("handle", "must not be empty")]


def create_account(
    session: Session,
    tenant_id: str,
    body: AccountCreate,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> Account:
    """Add an account on a platform Herald supports, with its secrets as given."""
    now = now or utcnow()
    errors = _handle_errors(body.handle)
    if body.platform not in PLATFORMS:
        errors.append(FieldError("platform", f"must be one of: {', '.join(PLATFORMS)}"))
    if errors:
        raise InvalidInput(errors)
    settings = checked_settings(body.platform, body.settings)
    platforms.addresses.check(url_settings(settings))
    account = Account(
        tenant_id=tenant_id,
        platform=body.platform,
        handle=body.handle.strip(),
        external_id=body.external_id,
        settings=settings,
        credentials=checked_credentials(platforms.credentials, body.platform, body.credentials),
        token_expires_at=token_expires_at(platforms, body.platform, body.credentials),
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    session.flush()
    return account


def update_account(
    session: Session,
    tenant_id: str,
    account_id: str,
    body: AccountUpdate,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> Account:
    """Change an account's handle, settings or secrets (each replaced as a whole).

    New secrets make a `needs_reauth` account active again (they are what re-auth means), and
    the targets held for it go out.
    """
    now = now or utcnow()
    account = get_account(session, tenant_id, account_id)
    nulls = [
        FieldError(name, "must not be null")
        for name in sorted(body.model_fields_set)
        if getattr(body, name) is None
    ]
    if nulls:
        raise InvalidInput(nulls)
    if body.handle is not None:
        if errors := _handle_errors(body.handle):
            raise InvalidInput(errors)
        account.handle = body.handle.strip()
    if body.settings is not None:
        settings = checked_settings(account.platform, body.settings)
        platforms.addresses.check(url_settings(settings))
        account.settings = settings
    if body.credentials is not None:
        account.credentials = checked_credentials(
            platforms.credentials, account.platform, body.credentials
        )
        account.token_expires_at = token_expires_at(platforms, account.platform, body.credentials)
        account.refreshed_at = now
    account.updated_at = now
    session.add(account)
    session.flush()
    if body.credentials is not None:
        reconnected(session, account, now)
    return account


def token_expires_at(
    platforms: PlatformRegistry, platform: str, credentials: Mapping[str, Any] | None
) -> datetime | None:
    """When these secrets' access token expires, as its platform's authenticator reads them."""
    return from_epoch(platforms.token_expiry(platform, credentials or {}))


def delete_account(
    session: Session, tenant_id: str, account_id: str, *, now: datetime | None = None
) -> None:
    """Soft-delete the account and cancel its targets that have not started, in one go."""
    now = now or utcnow()
    account = get_account(session, tenant_id, account_id)
    account.deleted_at = now
    account.updated_at = now
    account.status = AccountStatus.DISCONNECTED
    account.status_reason = "deleted"
    session.add(account)
    session.flush()
    cancel_account_targets(session, account, now)


def sandbox_deliveries(
    session: Session, tenant_id: str, account_id: str, *, limit: int = 100
) -> list[SandboxDelivery]:
    """What the sandbox platform received for one of the tenant's sandbox accounts."""
    account = get_account(session, tenant_id, account_id)
    if account.platform != "sandbox":
        raise NotFound(f"no sandbox account {account_id}")
    return list(
        session.exec(
            select(SandboxDelivery)
            .where(
                SandboxDelivery.account_id == account.id,
                SandboxDelivery.tenant_id == tenant_id,
            )
            .order_by(col(SandboxDelivery.created_at).desc(), col(SandboxDelivery.id).desc())
            .limit(limit)
        ).all()
    )
