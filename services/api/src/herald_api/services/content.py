"""Accepting content jobs: a month of drafts for a brand, one post written again.

Everything that can be known before the work starts is checked here, so a request that cannot
succeed is answered 4xx and nothing is enqueued; the worker checks again what may change
meanwhile (the post published, the brand deleted).
"""

from __future__ import annotations

import calendar
from datetime import datetime

from dramatiq.broker import Broker
from sqlalchemy.engine import Engine
from sqlmodel import Session

from herald_api.schemas.content import GenerateBody, Preferences, RegenerateBody
from herald_api.services.brands import get_brand
from herald_api.services.jobs import start_job
from herald_api.services.posts import get_post
from herald_common.content.editing import latest_approval_status, post_targets, refusal
from herald_common.content.generation import brand_zone, default_accounts, plan_month
from herald_common.content.scheduling import MonthFull, month_is_over
from herald_common.contracts import GENERATE_MONTHLY, REGENERATE_POST
from herald_common.db import session_scope
from herald_common.errors import Conflict, FieldError, InvalidInput
from herald_common.models import Brand, Job
from herald_common.timeutil import utcnow


def start_generation(
    engine: Engine,
    broker: Broker,
    tenant_id: str,
    brand_id: str,
    body: GenerateBody,
    *,
    max_active: int,
    now: datetime | None = None,
) -> Job:
    """Accept a month's generation for the brand: 404 for another tenant's brand, 422 for a
    platform the brand has no default account on, or a month that is over in the brand's time
    zone or too short for `count` posts."""
    moment = now or utcnow()

    def prepare(session: Session) -> dict[str, object]:
        brand = get_brand(session, tenant_id, brand_id)
        _check_platforms(session, brand, body.platforms)
        _check_month(session, brand, body, moment)
        return {
            "brand_id": brand.id,
            "month": body.month,
            "year": body.year,
            "count": body.count,
            "platforms": body.platforms,
            "preferences": _preferences(body.preferences),
        }

    return start_job(
        engine,
        broker,
        tenant_id,
        GENERATE_MONTHLY,
        prepare,
        brand_id=brand_id,
        total=body.count,
        max_active=max_active,
    )


def start_regeneration(
    engine: Engine,
    broker: Broker,
    tenant_id: str,
    post_id: str,
    body: RegenerateBody,
    *,
    max_active: int,
) -> Job:
    """Accept writing a post's part (or all of it) again: 404 for another tenant's post, 409
    for one that went out (or is going) or that waits for approval or was approved."""

    def prepare(session: Session) -> dict[str, object]:
        post = get_post(session, tenant_id, post_id)
        approval = latest_approval_status(session, post.id)
        if reason := refusal(post, post_targets(session, post.id), approval):
            raise Conflict(reason)
        if post.brand_id is None and not body.preferences.topics and not post.parts.get("topic"):
            raise InvalidInput(
                FieldError(
                    "preferences.topics",
                    "is required: the post has no brand whose topics it could be written about",
                )
            )
        return {
            "post_id": post.id,
            "part": body.part,
            "preferences": _preferences(body.preferences),
        }

    # The job row names the post's brand too; `prepare` reads the post again, in the
    # transaction that accepts the job.
    with session_scope(engine) as session:
        brand_id = get_post(session, tenant_id, post_id).brand_id
    return start_job(
        engine,
        broker,
        tenant_id,
        REGENERATE_POST,
        prepare,
        brand_id=brand_id,
        post_id=post_id,
        total=1,
        max_active=max_active,
    )


def _check_platforms(session: Session, brand: Brand, platforms: list[str]) -> None:
    # A draft goes out through the brand's default accounts: one for a platform it has no
    # account on would have no target, and fail only when it is submitted or approved.
    covered = {account.platform for account in default_accounts(session, brand, platforms)}
    if missing := [name for name in platforms if name not in covered]:
        raise InvalidInput(
            FieldError(
                "platforms",
                f"brand {brand.name!r} has no default account on {', '.join(missing)}: "
                "connect one and add it to the brand's default_account_ids, or leave the "
                "platform out",
            )
        )


def _check_month(session: Session, brand: Brand, body: GenerateBody, now: datetime) -> None:
    tz = brand_zone(brand)
    name = f"{calendar.month_name[body.month]} {body.year}"
    if month_is_over(body.year, body.month, tz, now):
        raise InvalidInput(
            FieldError("month", f"{name} is over in the brand's time zone ({brand.timezone})")
        )
    try:
        plan_month(session, brand, year=body.year, month=body.month, count=body.count, now=now)
    except MonthFull as exc:
        raise InvalidInput(
            FieldError(
                "count",
                f"only {exc.available} posts fit in what is left of {name} "
                f"({brand.timezone}), one a minute and none in the next hour",
            )
        ) from None


def _preferences(preferences: Preferences) -> dict[str, object]:
    return preferences.model_dump(exclude_none=True)
