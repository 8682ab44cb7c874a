"""A post's status, derived from its targets' (and, for a draft, from its approval request).

Once a post has been scheduled its status is never set by hand: it is what its targets say,
written by whoever moved the last of them, with the post row locked so two writers never
derive it from two different pictures (lock order everywhere: the post, then its targets).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session
from sqlmodel import select as orm_select

from herald_common.lifecycle.moves import Executor
from herald_common.lifecycle.states import ACTIVE_TARGET_STATES, PostStatus, TargetStatus
from herald_common.lifecycle.tables import POSTS, TARGETS
from herald_common.models import ApprovalStatus, Post

#: A draft shows where its latest approval request stands.
_DRAFT_BY_APPROVAL: dict[str, PostStatus] = {
    ApprovalStatus.PENDING: PostStatus.PENDING_APPROVAL,
    ApprovalStatus.APPROVED: PostStatus.APPROVED,
}
#: Statuses that mean the post went out (to some or all of its accounts).
WENT_OUT = frozenset({PostStatus.PUBLISHED, PostStatus.PARTIALLY_PUBLISHED})


def drafts_only(statuses: Sequence[str]) -> bool:
    """Whether every live (not canceled) target is a draft: the post's approval then shows."""
    live = [s for s in statuses if s != TargetStatus.CANCELED]
    return bool(live) and all(s == TargetStatus.DRAFT for s in live)


def derive_post_status(statuses: Iterable[str], approval: str | None = None) -> PostStatus | None:
    """The status of a post whose targets are in `statuses` and whose latest approval request
    is `approval` (None: never submitted); None when it has no targets."""
    statuses = list(statuses)
    if not statuses:
        return None
    if any(s in ACTIVE_TARGET_STATES for s in statuses):
        return PostStatus.SCHEDULED
    live = [s for s in statuses if s != TargetStatus.CANCELED]
    if not live:
        return PostStatus.CANCELED
    # A draft whose removed accounts left canceled targets behind is still a draft.
    if all(s == TargetStatus.DRAFT for s in live):
        return _DRAFT_BY_APPROVAL.get(approval or "", PostStatus.DRAFT)
    published = sum(1 for s in live if s == TargetStatus.PUBLISHED)
    if published == len(live):
        return PostStatus.PUBLISHED
    return PostStatus.PARTIALLY_PUBLISHED if published else PostStatus.FAILED


def status_changes(
    status: PostStatus, published_at: datetime | None, now: datetime
) -> dict[str, Any]:
    """The post's columns to set when its status becomes `status` (it had `published_at`)."""
    changes: dict[str, Any] = {"status": status, "updated_at": now}
    if status in WENT_OUT and published_at is None:
        changes["published_at"] = now
    return changes


_STATUSES = select(TARGETS.c.status).where(TARGETS.c.post_id == bindparam("post_id"))
_SET_STATUS = (
    update(POSTS)
    .where(POSTS.c.id == bindparam("w_id"), POSTS.c.status != bindparam("v_status"))
    .values(
        status=bindparam("v_status"),
        updated_at=bindparam("v_now"),
        published_at=func.coalesce(POSTS.c.published_at, bindparam("v_published_at")),
    )
)


def target_statuses(db: Executor, post_id: str) -> list[str]:
    """The statuses of the post's targets, as this transaction sees them."""
    return list(db.execute(_STATUSES, {"post_id": post_id}).scalars())


def store_post_status(db: Executor, post_id: str, status: PostStatus | None, now: datetime) -> None:
    """Write a derived status on a post row the caller has locked (nothing when None)."""
    if status is None:
        return
    published_at = now if status in WENT_OUT else None
    db.execute(
        _SET_STATUS,
        {"w_id": post_id, "v_status": status, "v_now": now, "v_published_at": published_at},
    )


def refresh_post_status(db: Executor, post_id: str, now: datetime) -> PostStatus | None:
    """Derive the status of a post the caller has locked from its targets, and store it."""
    status = derive_post_status(target_statuses(db, post_id))
    store_post_status(db, post_id, status, now)
    return status


def lock_post(session: Session, post_id: str) -> Post | None:
    """The post, locked for update (PostgreSQL), before any of its targets: whoever derives
    its status then does so alone."""
    return session.exec(orm_select(Post).where(Post.id == post_id).with_for_update()).first()
