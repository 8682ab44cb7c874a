"""The post state machine: create, edit, schedule, publish, cancel, retry and delete posts.

The database is the schedule of record. Nothing here talks to the broker: a change only moves
rows, and the scheduler dispatches targets whose `due_at` has come. Every change runs in the
caller's one transaction and follows the same steps:

1. lock the post row (`lifecycle.lock_post`; lock order everywhere is post, then targets);
2. check the whole request (404, 409, 422) before writing anything;
3. move targets through `lifecycle.move`, conditioned on the status and version that were read,
   bumping each moved target's `version` (a queued message carrying the old version then finds
   nothing to do), and bump the post's `version` and `updated_at`;
4. derive the post's status from its targets (`lifecycle.derive_post_status`).

Why a target was canceled is kept in its `error_kind`: `canceled` (with its post), `removed`
(its account was taken off the post) or `account_deleted`. Only the first kind comes back when
the post is rescheduled or published again; the others are no longer part of the post.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, func, insert
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection, Row
from sqlmodel import Session, col, select

from herald_api.schemas import (
    MAX_CONTENT_LENGTH,
    ApprovalOut,
    AttemptOut,
    MediaIn,
    PostCreate,
    PostDetailOut,
    PostOut,
    PostUpdate,
    ResolveBody,
    ScheduleBody,
    TargetDetailOut,
    TargetOut,
)
from herald_api.services.paging import newest_first
from herald_api.services.scheduling import resolve_schedule
from herald_common import lifecycle
from herald_common.analytics import first_pull_at
from herald_common.errors import Conflict, FieldError, InvalidInput, NotFound
from herald_common.lifecycle import (
    ACCOUNT_DELETED,
    ACTIVE_TARGET_STATES,
    CANCELED_WITH_POST,
    PENDING_STATES,
    REMOVED_FROM_POST,
    REVIVABLE_STATES,
    SENT_STATES,
    derive_post_status,
    drafts_only,
    forget_checkpoints,
    is_member,
    lock_post,
    status_changes,
    target_statuses,
)
from herald_common.lifecycle.tables import ACCOUNTS, POSTS, TARGETS
from herald_common.logs import REQUEST_ID
from herald_common.models import (
    Account,
    Approval,
    ApprovalStatus,
    Attempt,
    Brand,
    Post,
    PostStatus,
    Target,
    TargetStatus,
)
from herald_common.models.base import new_id
from herald_common.platforms import AccountRef, PlatformRegistry, account_ref
from herald_common.timeutil import utcnow

#: Rules whose breach reads "too long"; any other platform rule reads "not accepted".
_LENGTH_RULES = ("length", "characters", "graphemes", "bytes", "caption", "title")


# --- reading --------------------------------------------------------------------------------


def get_post(session: Session, tenant_id: str, post_id: str, *, lock: bool = False) -> Post:
    """The tenant's post (locked for update when asked); NotFound for anyone else's."""
    post = (
        lock_post(session, post_id)
        if lock
        else session.exec(select(Post).where(Post.id == post_id)).first()
    )
    if post is None or post.tenant_id != tenant_id:
        raise NotFound(f"no post {post_id}")
    return post


def _targets(session: Session, post_ids: Iterable[str], *, lock: bool = False) -> list[Target]:
    """The posts' targets. With `lock`, locked for update (after the post: lock order is post,
    then targets): a worker's claim or the scheduler's dispatch then waits for this transaction
    or is skipped, instead of moving a target between our read and our write."""
    ids = list(post_ids)
    if not ids:
        return []
    query = (
        select(Target)
        .where(col(Target.post_id).in_(ids))
        .order_by(col(Target.id))
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return list(session.exec(query).all())


def list_posts(
    session: Session,
    tenant_id: str,
    *,
    status: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[Post], str | None]:
    """One page of the tenant's posts, newest first, and the cursor of the next page."""
    query = select(Post).where(Post.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Post.status == status)
    return newest_first(session, query, Post, limit=limit, cursor=cursor)


def describe(session: Session, posts: Sequence[Post]) -> list[PostOut]:
    """The posts with their targets and latest approval requests, as the API shows them."""
    by_post: dict[str, list[TargetOut]] = {post.id: [] for post in posts}
    for target in _targets(session, by_post):
        by_post[target.post_id].append(TargetOut.model_validate(target))
    approvals = latest_approvals(session, by_post)
    return [
        PostOut.model_validate(
            {**_post_fields(post, approvals.get(post.id)), "targets": by_post[post.id]}
        )
        for post in posts
    ]


def describe_detail(session: Session, post: Post) -> PostDetailOut:
    """The post with its targets and each target's attempts."""
    targets = _targets(session, [post.id])
    attempts: dict[str, list[AttemptOut]] = {t.id: [] for t in targets}
    if targets:
        rows = session.exec(
            select(Attempt)
            .where(col(Attempt.target_id).in_(list(attempts)))
            .order_by(col(Attempt.number), col(Attempt.started_at))
        ).all()
        for attempt in rows:
            attempts[attempt.target_id].append(AttemptOut.model_validate(attempt))
    return PostDetailOut.model_validate(
        {
            **_post_fields(post, latest_approvals(session, [post.id]).get(post.id)),
            "notices": list(session.info.get(NOTICES, [])),
            "targets": [
                TargetDetailOut.model_validate(
                    {**TargetOut.model_validate(t).model_dump(), "attempts": attempts[t.id]}
                )
                for t in targets
            ],
        }
    )


def _post_fields(post: Post, approval: Approval | None) -> dict[str, Any]:
    fields = {
        name: getattr(post, name)
        for name in PostOut.model_fields
        if name not in ("targets", "approval")
    }
    fields["approval"] = ApprovalOut.model_validate(approval) if approval is not None else None
    return fields


# --- approvals --------------------------------------------------------------------------------
#
# A post whose brand requires approval goes on the schedule only when its latest approval
# request is approved; the request's workflow (submit, approve, reject) is services/approvals.py.
# What an approver approves is the post's text, media and brand: changing one withdraws the
# request, pending or approved. A post whose targets are all drafts shows where its latest
# request is (`pending_approval`, `approved`), else it is a `draft`.


def latest_approvals(session: Session, post_ids: Iterable[str]) -> dict[str, Approval]:
    """Each post's latest approval request, in one query (posts never submitted are absent)."""
    ids = list(post_ids)
    if not ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=col(Approval.post_id),
            order_by=(col(Approval.requested_at).desc(), col(Approval.id).desc()),
        )
        .label("rank")
    )
    ranked = select(col(Approval.id), rank).where(col(Approval.post_id).in_(ids)).subquery()
    rows = session.exec(
        select(Approval)
        .join(ranked, ranked.c.id == col(Approval.id))
        .where(ranked.c.rank == 1)
        .execution_options(populate_existing=True)
    ).all()
    return {approval.post_id: approval for approval in rows}


def latest_approval(session: Session, post_id: str) -> Approval | None:
    """The post's latest approval request."""
    return session.exec(
        select(Approval)
        .where(Approval.post_id == post_id)
        .order_by(col(Approval.requested_at).desc(), col(Approval.id).desc())
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()


#: Where a request's changes note what they did besides what was asked (`notices`).
NOTICES = "herald.notices"


def withdraw(session: Session, approval: Approval, reason: str, now: datetime) -> None:
    """The request no longer stands; `comment` keeps why (after the approver's own words), and
    the answer to the request that withdrew it says so (`notices`)."""
    session.info.setdefault(NOTICES, []).append(
        f"this withdrew the post's {approval.status} approval request ({reason}): submit it "
        f"again (POST /v1/posts/{approval.post_id}/submit) before it can go out"
    )
    approval.status = ApprovalStatus.WITHDRAWN
    approval.comment = f"{approval.comment} (withdrawn: {reason})" if approval.comment else reason
    approval.decided_at = approval.decided_at or now
    approval.updated_at = now
    session.add(approval)
    session.flush()


def _brand_requiring_approval(session: Session, brand_id: str | None) -> Brand | None:
    brand = session.get(Brand, brand_id) if brand_id else None
    return brand if brand is not None and brand.requires_approval else None


def ensure_may_go_out(
    session: Session, post: Post, action: str, *, brand_id: str | None, revised: bool = False
) -> None:
    """Conflict when the post may not be scheduled or published: it waits for a decision, or
    `brand_id`'s brand requires an approval it does not have (`revised`: the change at hand
    withdraws the one it has)."""
    if post.status == PostStatus.PENDING_APPROVAL:
        raise Conflict(
            f"cannot {action}: it is waiting for approval; an approver approves or rejects it "
            f"(POST /v1/posts/{post.id}/approve or /reject), or edit it to withdraw the request"
        )
    brand = _brand_requiring_approval(session, brand_id)
    if brand is None:
        return
    latest = None if revised else latest_approval(session, post.id)
    if latest is None or latest.status != ApprovalStatus.APPROVED:
        raise Conflict(
            f"cannot {action}: needs approval: brand {brand.name!r} requires approval before "
            f"its posts are scheduled or published; submit it first "
            f"(POST /v1/posts/{post.id}/submit)"
        )


def hold_for_approval(session: Session, post: Post, now: datetime) -> None:
    """Keep the locked post off the schedule while its new request (already added) waits: a
    scheduled post's targets become drafts again (their queued messages stale)."""
    targets = _targets(session, [post.id], lock=True)
    _ensure_unsent(targets, "submit this post for approval")
    accounts = _accounts_of(session, targets)
    scheduled = [t for t in _revivable(targets, accounts) if t.status != TargetStatus.DRAFT]
    _schedule(session, scheduled, None, now)
    post.scheduled_at = None
    post.timezone = None
    _touch(session, post, now)


def settle(session: Session, post: Post, now: datetime) -> None:
    """Bump the locked post's version and derive its status after a change made beside the
    state machine (an approval request decided)."""
    _touch(session, post, now)


def _brand_errors(session: Session, tenant_id: str, brand_id: str) -> list[FieldError]:
    return _brand_field_errors(session.get(Brand, brand_id), tenant_id)


def _brand_field_errors(brand: Brand | Row[Any] | None, tenant_id: str) -> list[FieldError]:
    if brand is None or brand.tenant_id != tenant_id:
        return [FieldError("brand_id", "no such brand")]
    return []


# --- checking input -------------------------------------------------------------------------


def _content_errors(content: str, media: Sequence[Mapping[str, Any]] = ()) -> list[FieldError]:
    if not content.strip() and not media:
        return [FieldError("content", "must not be empty when the post has no media")]
    if len(content) > MAX_CONTENT_LENGTH:
        return [FieldError("content", f"must be at most {MAX_CONTENT_LENGTH} characters")]
    return []


_BRANDS = Brand.__table__  # type: ignore[attr-defined]
_BRAND = core_select(_BRANDS.c.tenant_id, _BRANDS.c.name, _BRANDS.c.requires_approval).where(
    _BRANDS.c.id == bindparam("brand_id")
)
_ACCOUNTS = core_select(
    ACCOUNTS.c.id,
    ACCOUNTS.c.tenant_id,
    ACCOUNTS.c.platform,
    ACCOUNTS.c.handle,
    ACCOUNTS.c.external_id,
    ACCOUNTS.c.settings,
).where(
    ACCOUNTS.c.tenant_id == bindparam("tenant_id"),
    ACCOUNTS.c.id.in_(bindparam("ids", expanding=True)),
    ACCOUNTS.c.deleted_at.is_(None),
)


def _load_accounts(
    db: Connection | Session, tenant_id: str, account_ids: Sequence[str]
) -> tuple[list[AccountRef], list[FieldError]]:
    """The tenant's live accounts with these ids, in order, as the platforms see them; errors
    name `account_ids.<i>`."""
    rows = db.execute(_ACCOUNTS, {"tenant_id": tenant_id, "ids": sorted(set(account_ids))})
    found = {row.id: account_ref(row) for row in rows}
    accounts: list[AccountRef] = []
    errors: list[FieldError] = []
    first_index: dict[str, int] = {}
    for index, account_id in enumerate(account_ids):
        field = f"account_ids.{index}"
        if account_id in first_index:
            errors.append(FieldError(field, f"repeats account_ids.{first_index[account_id]}"))
        elif account_id not in found:
            errors.append(FieldError(field, "no such account"))
        else:
            accounts.append(found[account_id])
        first_index.setdefault(account_id, index)
    return accounts, errors


def _platform_errors(
    platforms: PlatformRegistry,
    content: str,
    media: list[dict[str, Any]],
    accounts: Iterable[AccountRef],
) -> list[FieldError]:
    """Each account's platform rules the post breaks, naming the account and the rule."""
    errors = []
    for account in accounts:
        for violation in platforms.get(account.platform).validate(content, media, account):
            handle = account.handle if account.handle.startswith("@") else f"@{account.handle}"
            too_long = violation.rule.startswith("max_") and any(
                word in violation.rule for word in _LENGTH_RULES
            )
            words = "too long" if too_long else "not accepted"
            errors.append(
                FieldError(
                    _violation_field(violation.rule),
                    f"{words} for {account.platform} account {handle} ({violation.rule}): "
                    f"{violation.reason}",
                    rule=violation.rule,
                    account_id=account.id,
                )
            )
    return errors


_MEDIA_RULE_WORDS = ("media", "image", "video", "photo", "alt", "carousel", "attachment")


def _violation_field(rule: str) -> str:
    """The request field a platform rule is about: `media` or `content`."""
    return "media" if any(word in rule for word in _MEDIA_RULE_WORDS) else "content"


_VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".webm", ".avi", ".mkv")


def _media_address_errors(
    platforms: PlatformRegistry, media: Sequence[Mapping[str, Any]]
) -> list[FieldError]:
    """Media URLs on hosts platforms could not fetch from and Herald must not (private,
    loopback, metadata addresses), refused now rather than when the post goes out."""
    urls = {f"media.{index}.url": item.get("url") for index, item in enumerate(media)}
    return platforms.addresses.errors(urls)


def media_items(items: Sequence[MediaIn]) -> list[dict[str, Any]]:
    """The media as stored on the post, each with its `kind` settled."""
    stored = []
    for item in items:
        data = item.model_dump(exclude_none=True)
        if "kind" not in data:
            mime = (item.mime_type or "").lower()
            path = urlsplit(item.url).path.lower()
            is_video = mime.startswith("video/") or (not mime and path.endswith(_VIDEO_EXTENSIONS))
            data["kind"] = "video" if is_video else "image"
        stored.append(data)
    return stored


def _null_errors(body: PostUpdate | Any) -> list[FieldError]:
    return [
        FieldError(name, "must not be null")
        for name in sorted(body.model_fields_set)
        if getattr(body, name) is None
    ]


# --- the post's account set ------------------------------------------------------------------


def _accounts_of(session: Session, targets: Sequence[Target]) -> dict[str, Account]:
    ids = {t.account_id for t in targets}
    if not ids:
        return {}
    rows = session.exec(select(Account).where(col(Account.id).in_(ids))).all()
    return {account.id: account for account in rows}


def _revivable(targets: Sequence[Target], accounts: dict[str, Account]) -> list[Target]:
    """Targets that can be scheduled again: not sent, still on the post, account not deleted."""
    return [
        t
        for t in targets
        if t.status in REVIVABLE_STATES
        and is_member(t)
        and accounts[t.account_id].deleted_at is None
    ]


def _ensure_unsent(targets: Sequence[Target], action: str) -> None:
    """Conflict when any target is publishing, published or unknown."""
    sent = Counter(t.status for t in targets if t.status in SENT_STATES)
    if not sent:
        return
    members = sum(1 for t in targets if is_member(t))
    published = sent.get(TargetStatus.PUBLISHED, 0)
    parts = [f"post was already published to {published} of {members} accounts"]
    if sent.get(TargetStatus.PUBLISHING):
        parts.append(f"{sent[TargetStatus.PUBLISHING]} being published right now")
    if sent.get(TargetStatus.UNKNOWN):
        parts.append(f"{sent[TargetStatus.UNKNOWN]} in an unknown state")
    raise Conflict(
        f"cannot {action}: " + ", ".join(parts) + "; create a new post or retry failed targets"
    )


def _summary(targets: Sequence[Target]) -> str:
    counts = Counter(t.status for t in targets)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no targets"


# --- writing ---------------------------------------------------------------------------------


def _move(
    session: Session,
    target: Target,
    now: datetime,
    *,
    status: str,
    strict: bool = True,
    **values: Any,
) -> bool:
    """Move one target from the status and version read to `status` (lifecycle.move).

    A miss means a worker moved it meanwhile. When `strict`, that aborts the whole change
    (the caller's transaction rolls back) rather than leave the post half-changed.
    """
    session.flush()  # the move is a Core statement: what the session holds goes first
    if status == TargetStatus.SCHEDULED:
        # Its publish messages will carry this request's id (herald_common.logs).
        values.setdefault("request_id", REQUEST_ID.get())
    moved = lifecycle.move(
        session, target.id, target.status, target.version, status, updated_at=now, **values
    )
    if not moved and strict:
        raise Conflict("a target of this post changed while it was being updated; try again")
    return moved


def _schedule(
    session: Session,
    targets: Sequence[Target],
    due_at: datetime | None,
    now: datetime,
    **values: Any,
) -> None:
    """Put targets on the schedule at `due_at` (or back to draft when it is None)."""
    status = TargetStatus.DRAFT if due_at is None else TargetStatus.SCHEDULED
    for target in targets:
        _move(
            session,
            target,
            now,
            status=status,
            due_at=due_at,
            error=None,
            error_kind=None,
            attempt_count=0,
            queued_at=None,
            **values,
        )


def _touch(session: Session, post: Post, now: datetime) -> None:
    """Bump the post's version and derive its status from its targets (and, while they are all
    drafts, from its latest approval request)."""
    was = post.status
    post.version += 1
    post.updated_at = now
    session.add(post)
    session.flush()
    statuses = target_statuses(session, post.id)
    latest = latest_approval(session, post.id) if drafts_only(statuses) else None
    status = derive_post_status(statuses, latest.status if latest else None)
    if status is not None and status != post.status:
        for name, value in status_changes(status, post.published_at, now).items():
            setattr(post, name, value)
        session.add(post)
    if was == PostStatus.PENDING_APPROVAL and not drafts_only(statuses):
        # Its drafts were canceled (with the post, or their accounts deleted): nothing is left
        # to decide on.
        pending = latest_approval(session, post.id)
        if pending is not None and pending.status == ApprovalStatus.PENDING:
            withdraw(session, pending, f"the post was {post.status}", now)
    session.flush()


_INSERT_POST = insert(POSTS)
_INSERT_TARGETS = insert(TARGETS)


def create_post(
    db: Connection,
    tenant_id: str,
    body: PostCreate,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> PostDetailOut:
    """A new post: a draft, scheduled at `scheduled_at`, or due now with `publish_now`.

    It costs one read of the accounts (and of the brand, when one is named) and one insert each
    of the post and its targets, in the caller's transaction. The answer is built from the rows
    written, not read back: a new post has no attempts and no approval request yet.
    """
    now = now or utcnow()
    media = media_items(body.media)
    errors = _content_errors(body.content, media)
    accounts, account_errors = _load_accounts(db, tenant_id, body.account_ids)
    errors += account_errors
    when, time_errors = resolve_schedule(body.scheduled_at, body.timezone, now)
    errors += time_errors
    if body.publish_now and body.scheduled_at is not None:
        errors.append(FieldError("scheduled_at", "cannot be given together with publish_now"))
    brand = None
    if body.brand_id is not None:
        brand = db.execute(_BRAND, {"brand_id": body.brand_id}).first()
        errors += _brand_field_errors(brand, tenant_id)
    if not errors:
        errors += _platform_errors(platforms, body.content, media, accounts)
        errors += _media_address_errors(platforms, media)
    if errors:
        raise InvalidInput(errors)

    due_at = now if body.publish_now else when
    if due_at is not None and brand is not None and brand.requires_approval:
        raise Conflict(
            f"cannot schedule or publish this post: needs approval: brand {brand.name!r} "
            "requires approval before its posts are scheduled or published; create it as a "
            "draft and submit it (POST /v1/posts/{post_id}/submit)"
        )
    post_id = new_id()
    target_status = TargetStatus.DRAFT if due_at is None else TargetStatus.SCHEDULED
    # Ids in order, so the targets are listed as every read of a post lists them (by id).
    target_ids = sorted(new_id() for _ in accounts)
    targets: list[dict[str, Any]] = [
        {
            "id": target_id,
            "tenant_id": tenant_id,
            "post_id": post_id,
            "account_id": account.id,
            "platform": account.platform,
            "status": target_status,
            "version": 1,
            "due_at": due_at,
            "attempt_count": 0,
            "updated_at": now,
            "request_id": REQUEST_ID.get(),
        }
        for target_id, account in zip(target_ids, accounts, strict=True)
    ]
    post = {
        "id": post_id,
        "tenant_id": tenant_id,
        "brand_id": body.brand_id,
        "content": body.content,
        "media": media,
        # Every request names at least one account, so there is a target to derive it from.
        "status": derive_post_status([target_status] * len(targets)) or PostStatus.DRAFT,
        "scheduled_at": due_at,
        "timezone": body.timezone if due_at is not None else None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    db.execute(_INSERT_POST, post)
    db.execute(_INSERT_TARGETS, targets)
    return PostDetailOut.model_validate(
        {
            **post,
            "published_at": None,
            "parts": {},
            "suggested_at": None,
            "approval": None,
            "targets": [
                {
                    **target,
                    "platform_post_id": None,
                    "platform_url": None,
                    "error_kind": None,
                    "error": None,
                    "published_at": None,
                    "attempts": [],
                }
                for target in targets
            ],
        }
    )


def update_post(
    session: Session,
    tenant_id: str,
    post_id: str,
    body: PostUpdate,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> Post:
    """Edit content, accounts, time, or take the post back to draft; only before it goes out."""
    now = now or utcnow()
    post = get_post(session, tenant_id, post_id, lock=True)
    fields = body.model_fields_set
    if null_errors := _null_errors(body):
        raise InvalidInput(null_errors)
    if not fields:
        return post
    targets = _targets(session, [post.id], lock=True)
    _ensure_unsent(targets, "change this post")
    accounts = _accounts_of(session, targets)

    errors: list[FieldError] = []
    content = body.content if body.content is not None else post.content
    media = media_items(body.media) if body.media is not None else list(post.media or [])
    if body.content is not None or body.media is not None:
        errors += _content_errors(content, media)
    brand_id = post.brand_id
    if body.brand_id is not None:
        errors += _brand_errors(session, tenant_id, body.brand_id)
        brand_id = body.brand_id
    if body.account_ids is not None:
        wanted, account_errors = _load_accounts(session, tenant_id, body.account_ids)
        errors += account_errors
    else:
        wanted = [
            account_ref(accounts[t.account_id])
            for t in targets
            if is_member(t) and accounts[t.account_id].deleted_at is None
        ]
    reschedule = body.scheduled_at is not None or body.timezone is not None
    when = None
    if reschedule:
        when, time_errors = resolve_schedule(body.scheduled_at, body.timezone, now)
        errors += time_errors
        if body.status is not None:
            errors.append(FieldError("status", "cannot be draft together with scheduled_at"))
    changes_what = body.content is not None or body.media is not None
    if not errors and (changes_what or body.account_ids is not None):
        errors += _platform_errors(platforms, content, media, wanted)
    if not errors and body.media is not None:
        errors += _media_address_errors(platforms, media)
    if errors:
        raise InvalidInput(errors)
    # An approval covers the text, media and brand: changing one withdraws the request.
    revised = (
        content != post.content or media != list(post.media or []) or brand_id != post.brand_id
    )
    if reschedule:
        ensure_may_go_out(session, post, "schedule this post", brand_id=brand_id, revised=revised)
    latest = latest_approval(session, post.id) if revised or body.status == "draft" else None
    if latest is not None and latest.status == ApprovalStatus.PENDING:
        withdraw(session, latest, _withdrawn_why(revised), now)
    elif revised and latest is not None and latest.status == ApprovalStatus.APPROVED:
        withdraw(session, latest, "the post was changed after it was approved", now)
    # Changed on the schedule while its brand requires approval: it waits for a new one.
    unapproved = (
        revised
        and not reschedule
        and _brand_requiring_approval(session, brand_id) is not None
        and any(t.status in ACTIVE_TARGET_STATES for t in targets)
    )

    if changes_what:
        # Work an earlier try left on a platform (an Instagram container, a TikTok upload)
        # holds the old text or media: the next try must start afresh — unless that work may
        # already be public, when only a person can say what happened.
        forget_checkpoints(session, platforms, targets, now, "change the text or media")
    post.content = content
    post.media = media
    if body.account_ids is not None:
        _set_accounts(session, post, targets, wanted, now)
        targets = _targets(session, [post.id], lock=True)
        accounts = _accounts_of(session, targets)
    if reschedule:
        _schedule(session, _revivable(targets, accounts), when, now)
        post.scheduled_at = when
        post.timezone = body.timezone
    elif body.status == "draft" or unapproved:
        _schedule(session, _revivable(targets, accounts), None, now)
        post.scheduled_at = None
        post.timezone = None
    post.brand_id = brand_id
    _touch(session, post, now)
    return post


def _withdrawn_why(revised: bool) -> str:
    if revised:
        return "the post's text, media or brand changed while it waited"
    return "the post was taken back to draft"


def _set_accounts(
    session: Session,
    post: Post,
    targets: Sequence[Target],
    wanted: Sequence[AccountRef],
    now: datetime,
) -> None:
    """Cancel the targets of removed accounts and add (or revive) those of new ones."""
    wanted_ids = {account.id for account in wanted}
    by_account = {t.account_id: t for t in targets}
    for target in targets:
        if is_member(target) and target.account_id not in wanted_ids:
            _move(
                session,
                target,
                now,
                status=TargetStatus.CANCELED,
                error_kind=REMOVED_FROM_POST,
                error="account removed from this post",
            )
    # New accounts join the post where its other targets are: on the draft, or on the schedule.
    members = [t for t in targets if is_member(t) and t.account_id in wanted_ids]
    due_at: datetime | None = None
    status = TargetStatus.DRAFT
    if not any(t.status == TargetStatus.DRAFT for t in members) and any(
        t.status in PENDING_STATES for t in members
    ):
        status = TargetStatus.SCHEDULED
        due_at = post.scheduled_at if post.scheduled_at and post.scheduled_at > now else now
    for account in wanted:
        existing = by_account.get(account.id)
        if existing is not None and is_member(existing):
            continue
        if existing is not None:
            # (post_id, account_id) is unique: the old canceled target comes back.
            _move(
                session,
                existing,
                now,
                status=status,
                due_at=due_at,
                error=None,
                error_kind=None,
                attempt_count=0,
                queued_at=None,
            )
        else:
            session.add(
                Target(
                    tenant_id=post.tenant_id,
                    post_id=post.id,
                    account_id=account.id,
                    platform=account.platform,
                    status=status,
                    due_at=due_at,
                    updated_at=now,
                    request_id=REQUEST_ID.get(),
                )
            )
    session.flush()


def schedule_post(
    session: Session,
    tenant_id: str,
    post_id: str,
    body: ScheduleBody,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> Post:
    """(Re)schedule every target that has not gone out; their queued messages become stale."""
    now = now or utcnow()
    post = get_post(session, tenant_id, post_id, lock=True)
    when, errors = resolve_schedule(body.scheduled_at, body.timezone, now)
    return put_on_schedule(
        session, post, when, body.timezone, platforms=platforms, now=now, errors=errors
    )


def put_on_schedule(
    session: Session,
    post: Post,
    when: datetime | None,
    timezone: str | None,
    *,
    platforms: PlatformRegistry,
    now: datetime,
    errors: Sequence[FieldError] = (),
) -> Post:
    """Schedule the locked post's targets that have not gone out at `when` (schedule_post, and
    an approval with a time): the platforms' rules and the approval gate apply."""
    targets = _targets(session, [post.id], lock=True)
    _ensure_unsent(targets, "reschedule this post")
    accounts = _accounts_of(session, targets)
    errors = list(errors)
    revivable = _revivable(targets, accounts)
    if not errors:
        errors += _platform_errors(
            platforms,
            post.content,
            post.media,
            [account_ref(accounts[t.account_id]) for t in revivable],
        )
    if errors:
        raise InvalidInput(errors)
    ensure_may_go_out(session, post, "schedule this post", brand_id=post.brand_id)
    if not revivable:
        raise Conflict(f"no account left to publish to: {_summary(targets)}")
    _schedule(session, revivable, when, now)
    post.scheduled_at = when
    post.timezone = timezone
    _touch(session, post, now)
    return post


def publish_post(
    session: Session,
    tenant_id: str,
    post_id: str,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> Post:
    """Make every target that has not gone out due now (the scheduler sends it at once)."""
    now = now or utcnow()
    post = get_post(session, tenant_id, post_id, lock=True)
    ensure_may_go_out(session, post, "publish this post", brand_id=post.brand_id)
    targets = _targets(session, [post.id], lock=True)
    accounts = _accounts_of(session, targets)
    revivable = _revivable(targets, accounts)
    if not revivable:
        raise Conflict(f"nothing left to publish: {_summary(targets)}")
    errors = _platform_errors(
        platforms,
        post.content,
        post.media,
        [account_ref(accounts[t.account_id]) for t in revivable],
    )
    if errors:
        raise InvalidInput(errors)
    _schedule(session, revivable, now, now)
    post.scheduled_at = now
    _touch(session, post, now)
    return post


def cancel_post(
    session: Session, tenant_id: str, post_id: str, *, now: datetime | None = None
) -> Post:
    """Cancel every target that has not started. One being published now cannot be stopped."""
    now = now or utcnow()
    post = get_post(session, tenant_id, post_id, lock=True)
    targets = _targets(session, [post.id], lock=True)
    pending = [t for t in targets if t.status in PENDING_STATES]
    if not pending:
        raise Conflict(f"nothing left to cancel: {_summary(targets)}")
    for target in pending:
        # A miss is a target a worker just claimed: it goes out, and the response shows it.
        _move(
            session,
            target,
            now,
            strict=False,
            status=TargetStatus.CANCELED,
            error_kind=CANCELED_WITH_POST,
            error=None,
        )
    _touch(session, post, now)
    return post


def retry_post(
    session: Session, tenant_id: str, post_id: str, *, now: datetime | None = None
) -> Post:
    """Send the failed targets again now, with a fresh attempt budget.

    Targets in `unknown` are not: each needs a person's answer (`resolve_target`), since a
    blanket retry could post one that did go out a second time."""
    now = now or utcnow()
    post = get_post(session, tenant_id, post_id, lock=True)
    targets = _targets(session, [post.id], lock=True)
    accounts = _accounts_of(session, targets)
    failed = [
        t
        for t in targets
        if t.status == TargetStatus.FAILED and accounts[t.account_id].deleted_at is None
    ]
    if not failed:
        unknown = sum(1 for t in targets if t.status == TargetStatus.UNKNOWN)
        hint = (
            f"; {unknown} in unknown need resolving one by one "
            "(POST /v1/posts/{id}/targets/{target_id}/resolve)"
            if unknown
            else ""
        )
        raise Conflict(f"nothing to retry: no target has failed ({_summary(targets)}){hint}")
    ensure_may_go_out(session, post, "retry this post", brand_id=post.brand_id)
    _schedule(session, failed, now, now)
    # Waits for rate limits are measured from the post's time: a retry starts a new one.
    post.scheduled_at = now
    _touch(session, post, now)
    return post


def resolve_target(
    session: Session,
    tenant_id: str,
    post_id: str,
    target_id: str,
    body: ResolveBody,
    *,
    now: datetime | None = None,
) -> Post:
    """Settle a target in `unknown` with what a person found on the platform."""
    now = now or utcnow()
    post = get_post(session, tenant_id, post_id, lock=True)
    target = next((t for t in _targets(session, [post.id], lock=True) if t.id == target_id), None)
    if target is None:
        raise NotFound(f"no target {target_id} on post {post_id}")
    if body.outcome == "published" and not (body.platform_url or body.platform_post_id):
        raise InvalidInput(
            FieldError(
                "platform_url", "give the post's URL or platform_post_id to mark it published"
            )
        )
    if body.outcome != "published" and (body.platform_url or body.platform_post_id):
        raise InvalidInput(
            FieldError("platform_url", f"only a published outcome has a URL, not {body.outcome}")
        )
    if target.status != TargetStatus.UNKNOWN:
        raise Conflict(
            f"target {target_id} is {target.status}; only a target in unknown can be resolved"
        )
    note = f" ({body.note})" if body.note else ""
    if body.outcome == "published":
        _move(
            session,
            target,
            now,
            status=TargetStatus.PUBLISHED,
            platform_url=body.platform_url,
            platform_post_id=body.platform_post_id,
            published_at=now,
            finished_at=now,
            error_kind="resolved",
            error=f"marked published by a person{note}",
            metrics_due_at=first_pull_at(now),
        )
    elif body.outcome == "not_published":
        # A person found nothing went out: what the lost try left is no longer a lead.
        _move(
            session,
            target,
            now,
            status=TargetStatus.FAILED,
            finished_at=now,
            error_kind="resolved",
            error=f"a person found it was not published{note}",
            checkpoint={},
        )
    else:
        account = session.get(Account, target.account_id)
        if account is None or account.deleted_at is not None:
            raise Conflict("the target's account was deleted: there is nothing to send it to")
        ensure_may_go_out(session, post, "send it again", brand_id=post.brand_id)
        _schedule(session, [target], now, now, checkpoint={})
        post.scheduled_at = now
    _touch(session, post, now)
    return post


def delete_post(session: Session, tenant_id: str, post_id: str) -> None:
    """Delete the post with its targets and attempts; not while one is being published."""
    post = get_post(session, tenant_id, post_id, lock=True)
    targets = _targets(session, [post.id], lock=True)
    publishing = sum(1 for t in targets if t.status == TargetStatus.PUBLISHING)
    if publishing:
        raise Conflict(
            f"{publishing} target(s) of this post are being published right now; "
            "try again when they have finished"
        )
    session.execute(delete(Post).where(col(Post.id) == post.id))


def cancel_account_targets(session: Session, account: Account, now: datetime) -> list[str]:
    """Cancel the account's targets that have not started; returns the posts it touched."""
    post_ids = sorted(
        set(
            session.exec(
                select(Target.post_id).where(
                    Target.account_id == account.id,
                    col(Target.status).in_(list(PENDING_STATES)),
                )
            ).all()
        )
    )
    for post_id in post_ids:
        post = lock_post(session, post_id)
        if post is None:
            continue
        for target in _targets(session, [post_id], lock=True):
            if target.account_id == account.id and target.status in PENDING_STATES:
                _move(
                    session,
                    target,
                    now,
                    strict=False,
                    status=TargetStatus.CANCELED,
                    error_kind=ACCOUNT_DELETED,
                    error="the account was deleted",
                )
        _touch(session, post, now)
    return post_ids
