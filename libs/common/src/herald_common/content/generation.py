"""The content jobs' work: a month of draft posts for a brand, and one post written again.

Both run inside `herald_common.jobs.run_job` (the content worker's actors are only that call),
so they can be tested without Dramatiq. A month is written one post per transaction, each with
its progress, and each post keyed by (job, number): a run that follows a crash carries on from
the first missing number and makes no post twice.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_
from sqlmodel import Session, col, select

from herald_common.content.composing import (
    Parts,
    TextRules,
    normalize_hashtag,
    parts_of,
    unique_hashtags,
)
from herald_common.content.editing import (
    latest_approval_status,
    live_accounts,
    platforms_meant,
    post_targets,
    refusal,
    rewrite_post,
)
from herald_common.content.scheduling import MonthFull, minute_of, plan_times
from herald_common.content.writers import (
    Brief,
    NoUsableAnswer,
    Writer,
    WriterRefused,
    write_fitting,
)
from herald_common.contracts import GenerateMonthlyPayload, RegeneratePostPayload
from herald_common.db import session_scope
from herald_common.errors import Conflict, InvalidInput, NotFound
from herald_common.jobs import JobFailed, JobRun
from herald_common.models import Account, Brand, Post, PostStatus, Target, TargetStatus
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

log = logging.getLogger(__name__)

#: A suggested time is at least this far ahead: a draft needs reading and scheduling first.
SUGGESTION_LEAD = timedelta(hours=1)


@dataclass(frozen=True)
class Preferences:
    """What a request adds to the brand's voice for one job (all optional)."""

    tone: str | None = None
    topics: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    style: str | None = None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Preferences:
        """The preferences of a message (checked by the API; read defensively here)."""

        def text(name: str) -> str | None:
            value = data.get(name)
            return value.strip() or None if isinstance(value, str) else None

        def texts(name: str) -> tuple[str, ...]:
            value = data.get(name)
            items = value if isinstance(value, list) else []
            return tuple(str(item).strip() for item in items if str(item).strip())

        tags = (normalize_hashtag(tag) for tag in texts("hashtags"))
        return cls(
            tone=text("tone"),
            topics=texts("topics"),
            hashtags=unique_hashtags(tag for tag in tags if tag is not None),
            style=text("style"),
        )


def brand_zone(brand: Brand) -> ZoneInfo:
    """The brand's time zone (checked by the API; UTC should it have gone from tzdata)."""
    try:
        return ZoneInfo(brand.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("brand %s: unknown time zone %r, using UTC", brand.id, brand.timezone)
        return ZoneInfo("UTC")


def topics_for(brand: Brand | None, preferences: Preferences) -> tuple[str, ...]:
    """What posts are about: the request's topics, else the brand's, else the brand itself."""
    if preferences.topics:
        return preferences.topics
    if brand is not None:
        return tuple(brand.topics) or (brand.name,)
    return ()


def month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first and last instants in `tz`, as UTC: [start, end)."""
    start = datetime(year, month, 1, tzinfo=tz)
    days = calendar.monthrange(year, month)[1]
    end = start.replace(tzinfo=None) + timedelta(days=days)
    return start.astimezone(UTC), end.replace(tzinfo=tz).astimezone(UTC)


def busy_minutes(session: Session, brand: Brand, year: int, month: int) -> set[datetime]:
    """Minutes of the month the brand's posts already take (suggested or scheduled), so a
    second generation for the same month does not land on the first one's times."""
    start, end = month_bounds(year, month, brand_zone(brand))
    rows = session.exec(
        select(Post.suggested_at, Post.scheduled_at).where(
            Post.brand_id == brand.id,
            or_(
                (col(Post.suggested_at) >= start) & (col(Post.suggested_at) < end),
                (col(Post.scheduled_at) >= start) & (col(Post.scheduled_at) < end),
            ),
        )
    ).all()
    return {minute_of(t) for row in rows for t in row if t is not None}


def plan_month(
    session: Session, brand: Brand, *, year: int, month: int, count: int, now: datetime
) -> list[datetime]:
    """Times for `count` new posts of the brand in that month; MonthFull when they do not fit."""
    return plan_times(
        year,
        month,
        count,
        brand_zone(brand),
        now=now,
        taken=busy_minutes(session, brand, year, month),
        lead=SUGGESTION_LEAD,
    )


# --- a month of drafts -------------------------------------------------------------------------


def generate_month(
    run: JobRun, *, registry: PlatformRegistry, writer: Writer, settings: Settings
) -> dict[str, Any]:
    """Write the month's drafts of `run`'s job (content.generate.monthly).

    Each post is a draft meant for its suggested time, with draft targets on the brand's default
    accounts of the requested platforms, and a text every one of those platforms takes.
    """
    payload = GenerateMonthlyPayload.model_validate(run.payload)
    preferences = Preferences.from_payload(payload.preferences)
    with session_scope(run.engine) as session:
        brand = _brand(session, run.tenant_id, payload.brand_id)
        done = _written(session, run.job_id)
        accounts = default_accounts(session, brand, payload.platforms)
        rules = TextRules.of(registry, payload.platforms, accounts, tenant_id=run.tenant_id)
        missing = [i for i in range(payload.count) if i not in done]
        try:
            times = plan_month(
                session,
                brand,
                year=payload.year,
                month=payload.month,
                count=len(missing),
                now=run.clock(),
            )
        except MonthFull as exc:
            raise JobFailed(
                f"only {exc.available} free times are left in {payload.month}/{payload.year} "
                f"for {exc.wanted} more posts"
            ) from None
    tz = brand_zone(brand)
    topics = topics_for(brand, preferences)
    budget = rules.budget()
    run.progress(len(done), payload.count)
    for index, when in zip(missing, times, strict=True):
        brief = Brief(
            brand=brand.name,
            topic=topics[index % len(topics)],
            description=brand.description,
            tone=preferences.tone or brand.tone,
            style=preferences.style,
            hashtags=unique_hashtags([*preferences.hashtags, *brand.hashtags]),
            platforms=rules.platforms,
            budget=budget,
            seed=run.job_id,
            index=index,
            when=when.astimezone(tz),
        )
        parts = replace(_write(writer, brief, rules, settings), topic=brief.topic)
        with session_scope(run.engine) as session:
            if session.get(Brand, brand.id) is None:
                raise JobFailed(
                    f"the brand was deleted after {len(done)} of {payload.count} posts were written"
                )
            post = _draft(run, brand, parts, index, when)
            session.add(post)
            session.flush()
            session.add_all(_draft_targets(post, accounts))
            done[index] = post.id
            run.progress(len(done), payload.count, session=session)
    return {
        "post_ids": [done[i] for i in sorted(done)],
        "count": len(done),
        "brand_id": brand.id,
        # Approvals submits these drafts when the brand requires approval.
        "requires_approval": brand.requires_approval,
    }


def _brand(session: Session, tenant_id: str, brand_id: str) -> Brand:
    brand = session.get(Brand, brand_id)
    if brand is None:
        raise JobFailed(f"the brand {brand_id} was deleted before its posts were written")
    if brand.tenant_id != tenant_id:
        raise JobFailed(f"the brand {brand_id} is not this tenant's ({tenant_id})")
    return brand


def _written(session: Session, job_id: str) -> dict[int, str]:
    """The posts an earlier run of this job made, by number."""
    rows = session.exec(
        select(Post.source_index, Post.id).where(Post.source_job_id == job_id)
    ).all()
    return {index: post_id for index, post_id in rows if index is not None}


def default_accounts(session: Session, brand: Brand, platforms: list[str]) -> list[Account]:
    """The brand's live default accounts on the requested platforms, in the brand's order."""
    if not brand.default_account_ids:
        return []
    rows = session.exec(
        select(Account).where(
            col(Account.id).in_(brand.default_account_ids),
            Account.tenant_id == brand.tenant_id,
            col(Account.deleted_at).is_(None),
            col(Account.platform).in_(platforms),
        )
    ).all()
    found = {account.id: account for account in rows}
    return [found[i] for i in dict.fromkeys(brand.default_account_ids) if i in found]


def _write(writer: Writer, brief: Brief, rules: TextRules, settings: Settings) -> Parts:
    """The writer's parts, fitted; JobFailed when the writer refuses or never fits.
    WriterUnavailable passes through: run_job puts the job back and Dramatiq tries again."""
    try:
        return write_fitting(writer, brief, rules, attempts=settings.content_max_attempts)
    except (NoUsableAnswer, WriterRefused) as exc:
        raise JobFailed(exc.reason) from None


def _draft(run: JobRun, brand: Brand, parts: Parts, index: int, when: datetime) -> Post:
    now = run.clock()
    return Post(
        tenant_id=run.tenant_id,
        content=parts.text(),
        parts=parts.as_dict(),
        status=PostStatus.DRAFT,
        brand_id=brand.id,
        suggested_at=when,
        source_job_id=run.job_id,
        source_index=index,
        created_at=now,
        updated_at=now,
    )


def _draft_targets(post: Post, accounts: list[Account]) -> list[Target]:
    return [
        Target(
            tenant_id=post.tenant_id,
            post_id=post.id,
            account_id=account.id,
            platform=account.platform,
            status=TargetStatus.DRAFT,
            updated_at=post.created_at,
        )
        for account in accounts
    ]


# --- one post again ----------------------------------------------------------------------------


def regenerate_post(
    run: JobRun, *, registry: PlatformRegistry, writer: Writer, settings: Settings
) -> dict[str, Any]:
    """Write one part of a post (or all of it) again (content.regen.single).

    Checked twice: before the writer runs, and again under the post's lock when its answer is
    stored, since the post may have been published or edited meanwhile.
    """
    payload = RegeneratePostPayload.model_validate(run.payload)
    preferences = Preferences.from_payload(payload.preferences)
    with session_scope(run.engine) as session:
        post = session.get(Post, payload.post_id)
        if post is None:
            raise JobFailed("the post was deleted before it could be regenerated")
        if post.tenant_id != run.tenant_id:
            raise JobFailed(f"the post {payload.post_id} is not this tenant's ({run.tenant_id})")
        targets = post_targets(session, post.id)
        if reason := refusal(post, targets, latest_approval_status(session, post.id)):
            raise JobFailed(f"cannot regenerate: {reason}")
        brand = session.get(Brand, post.brand_id) if post.brand_id else None
        rules = TextRules.of(
            registry,
            platforms_meant(session, post, targets),
            live_accounts(session, targets),
            tenant_id=run.tenant_id,
        )
        current = parts_of(post.content, post.parts)
    topics = topics_for(brand, preferences)
    if not topics and not current.topic:
        raise JobFailed("the post has no brand and no topic was given (preferences.topics)")
    topic = current.topic if current.topic and not preferences.topics else topics[0]
    brand_hashtags = tuple(brand.hashtags) if brand else ()
    brief = Brief(
        brand=brand.name if brand else "",
        topic=topic,
        description=brand.description if brand else None,
        tone=preferences.tone or (brand.tone if brand else None),
        style=preferences.style,
        hashtags=unique_hashtags([*preferences.hashtags, *brand_hashtags]),
        platforms=rules.platforms,
        budget=rules.budget(),
        seed=run.job_id,
        part=payload.part,
        current=current,
    )
    written = replace(_write(writer, brief, rules, settings), topic=topic)
    with session_scope(run.engine) as session:
        try:
            post = rewrite_post(
                session,
                run.tenant_id,
                payload.post_id,
                written,
                payload.part,
                registry=registry,
                now=run.clock(),
            )
        except (NotFound, Conflict, InvalidInput) as exc:
            raise JobFailed(f"cannot regenerate: {exc.message}") from None
        run.progress(1, 1, session=session)
        return {"post_id": post.id, "part": payload.part, "version": post.version}
