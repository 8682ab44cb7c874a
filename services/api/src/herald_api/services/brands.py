"""Brands: create, list, read, change and delete a tenant's brands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from herald_api.schemas.brands import CLEARABLE, BrandCreate, BrandUpdate
from herald_api.services.paging import newest_first
from herald_api.services.posts import latest_approvals
from herald_common.errors import Conflict, FieldError, InvalidInput, NotFound
from herald_common.models import Account, ApprovalStatus, Brand, Post, PostStatus
from herald_common.platforms.http import PublicAddresses
from herald_common.timeutil import utcnow

#: Notification types that post to the brand's webhook.
_WEBHOOK_TYPES = ("webhook", "all")


def get_brand(session: Session, tenant_id: str, brand_id: str, *, lock: bool = False) -> Brand:
    """The tenant's brand (locked for update when asked); NotFound for anyone else's."""
    query = select(Brand).where(Brand.id == brand_id, Brand.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update()
    brand = session.exec(query).first()
    if brand is None:
        raise NotFound(f"no brand {brand_id}")
    return brand


def list_brands(
    session: Session, tenant_id: str, *, limit: int = 20, cursor: str | None = None
) -> tuple[list[Brand], str | None]:
    """One page of the tenant's brands, newest first, and the cursor of the next page."""
    query = select(Brand).where(Brand.tenant_id == tenant_id)
    return newest_first(session, query, Brand, limit=limit, cursor=cursor)


def create_brand(
    session: Session,
    tenant_id: str,
    body: BrandCreate,
    *,
    addresses: PublicAddresses,
    now: datetime | None = None,
) -> Brand:
    """A new brand; InvalidInput naming each field that breaks a rule (a webhook on a host
    that is not public among them)."""
    now = now or utcnow()
    errors = _account_errors(session, tenant_id, body.default_account_ids)
    errors += _webhook_errors(body.notification_type, body.webhook_url)
    errors += addresses.errors({"webhook_url": body.webhook_url})
    if errors:
        raise InvalidInput(errors)
    brand = Brand(tenant_id=tenant_id, created_at=now, updated_at=now, **_stored(body))
    session.add(brand)
    session.flush()
    return brand


def update_brand(
    session: Session,
    tenant_id: str,
    brand_id: str,
    body: BrandUpdate,
    *,
    addresses: PublicAddresses,
    now: datetime | None = None,
) -> Brand:
    """Change the fields given; bumps the version. A brand's posts keep what they were given."""
    now = now or utcnow()
    brand = get_brand(session, tenant_id, brand_id, lock=True)
    fields = body.model_fields_set
    errors = [
        FieldError(name, "must not be null")
        for name in sorted(fields - CLEARABLE)
        if getattr(body, name) is None
    ]
    if body.default_account_ids is not None:
        errors += _account_errors(session, tenant_id, body.default_account_ids)
    notification_type = body.notification_type or brand.notification_type
    webhook_url = body.webhook_url if "webhook_url" in fields else brand.webhook_url
    if {"notification_type", "webhook_url"} & fields:
        errors += _webhook_errors(notification_type, webhook_url)
    if "webhook_url" in fields:
        errors += addresses.errors({"webhook_url": body.webhook_url})
    if errors:
        raise InvalidInput(errors)
    if not fields:
        return brand
    if body.requires_approval and not brand.requires_approval:
        _ensure_nothing_scheduled_unapproved(session, brand)
    for name, value in _stored(body, only=fields).items():
        setattr(brand, name, value)
    brand.version += 1
    brand.updated_at = now
    session.add(brand)
    session.flush()
    return brand


def _ensure_nothing_scheduled_unapproved(session: Session, brand: Brand) -> None:
    """Conflict when posts of the brand are on the schedule: they were scheduled without an
    approval, and turning approval on must not leave them going out unapproved."""
    ids = session.exec(
        select(Post.id).where(Post.brand_id == brand.id, Post.status == PostStatus.SCHEDULED)
    ).all()
    approved = latest_approvals(session, ids)
    scheduled = sum(
        1 for i in ids if i not in approved or approved[i].status != ApprovalStatus.APPROVED
    )
    if scheduled:
        raise Conflict(
            f"{scheduled} post(s) of this brand are scheduled without an approval: take them "
            'back to draft (PATCH /v1/posts/{id} {"status": "draft"}) or submit them for '
            "approval first, then require approval"
        )


def delete_brand(session: Session, tenant_id: str, brand_id: str) -> None:
    """Delete the brand. Its posts stay, without a brand (the foreign key says so too; done
    here as well so that SQLite without foreign keys enforced behaves the same)."""
    brand = get_brand(session, tenant_id, brand_id, lock=True)
    session.execute(
        update(Post)
        .where(col(Post.brand_id) == brand.id, col(Post.tenant_id) == tenant_id)
        .values(brand_id=None)
    )
    session.execute(delete(Brand).where(col(Brand.id) == brand.id))


def _stored(body: BrandCreate | BrandUpdate, only: set[str] | None = None) -> dict[str, Any]:
    """The body's fields as the brand row keeps them (unset colours and fonts left out)."""
    values = body.model_dump(include=only)
    for name in ("colors", "fonts"):
        if values.get(name) is not None:
            values[name] = {k: v for k, v in values[name].items() if v is not None}
    if values.get("approvers") is not None:
        values["approvers"] = [
            {k: v for k, v in approver.items() if v is not None} for approver in values["approvers"]
        ]
    return values


def _account_errors(
    session: Session, tenant_id: str, account_ids: Sequence[str]
) -> list[FieldError]:
    """Each default account that is not one of the tenant's live accounts, or repeats one."""
    if not account_ids:
        return []
    live = set(
        session.exec(
            select(Account.id).where(
                Account.tenant_id == tenant_id,
                col(Account.id).in_(set(account_ids)),
                col(Account.deleted_at).is_(None),
            )
        ).all()
    )
    errors = []
    first: dict[str, int] = {}
    for index, account_id in enumerate(account_ids):
        field = f"default_account_ids.{index}"
        if account_id in first:
            errors.append(FieldError(field, f"repeats default_account_ids.{first[account_id]}"))
        elif account_id not in live:
            errors.append(FieldError(field, "no such account"))
        first.setdefault(account_id, index)
    return errors


def _webhook_errors(notification_type: str, webhook_url: str | None) -> list[FieldError]:
    if notification_type in _WEBHOOK_TYPES and not webhook_url:
        return [
            FieldError("webhook_url", f"is required when notification_type is {notification_type}")
        ]
    return []
