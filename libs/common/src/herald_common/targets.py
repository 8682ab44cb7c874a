"""Target transitions shared by the publisher and the scheduler.

Every transition is one UPDATE conditioned on the target's current state and version
(compare-and-set); zero rows means somebody else moved it first, and the caller does nothing.
Lock order, everywhere: the post row, then its targets.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from herald_common.analytics import first_pull_at
from herald_common.db import session_scope
from herald_common.errors import Conflict, HeraldError, TransientError
from herald_common.metrics import observe_settled
from herald_common.models import (
    ACTIVE_TARGET_STATES,
    Account,
    Attempt,
    AttemptOutcome,
    Post,
    PostStatus,
    Target,
    TargetStatus,
)
from herald_common.platforms import (
    AccountRef,
    LookupUnsupported,
    PlatformRegistry,
    PublishRequest,
    PublishResult,
)
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)


#: Targets in flight or done: their post's text and time can no longer change.
SENT_STATES = frozenset({TargetStatus.PUBLISHING, TargetStatus.PUBLISHED, TargetStatus.UNKNOWN})

#: Why a target was canceled (its `error_kind`): with its post, its account taken off the
#: post, or its account deleted. Only the first kind is still one of the post's accounts.
CANCELED_WITH_POST = "canceled"
REMOVED_FROM_POST = "removed"
ACCOUNT_DELETED = "account_deleted"


def is_member(target: Target) -> bool:
    """Whether the target is still one of the post's accounts (not removed, not deleted)."""
    return target.status != TargetStatus.CANCELED or target.error_kind in (None, CANCELED_WITH_POST)


def forget_checkpoints(
    session: Session,
    platforms: PlatformRegistry,
    targets: Iterable[Target],
    now: datetime,
    action: str,
) -> None:
    """Clear what earlier tries left on the platforms (it holds the old text or media) before
    `action` changes them; Conflict when one may already have made the post visible, where
    only a person can say what happened."""
    targets = list(targets)
    in_flight = [
        t for t in targets if t.checkpoint and platforms.get(t.platform).may_be_public(t.checkpoint)
    ]
    if in_flight:
        names = ", ".join(sorted({t.platform for t in in_flight}))
        raise Conflict(
            f"cannot {action}: an earlier try on {names} may already have "
            "published this post (the platform's answer was not seen); wait for it to finish, "
            "or cancel the post"
        )
    for target in targets:
        if target.checkpoint:
            target.checkpoint = {}
            target.updated_at = now
            session.add(target)
    session.flush()


def backoff_seconds(
    settings: Settings, attempts: int, *, retry_after: float | None = None
) -> float:
    """Seconds to wait after the `attempts`-th failure: exponential with jitter, at least Retry-After."""
    base = settings.publish_backoff_seconds * 2 ** max(attempts - 1, 0)
    delay = min(base, settings.publish_backoff_max_seconds)
    # Up to 10% jitter spreads the retries of a platform-wide outage.
    delay *= 1 + random.random() / 10
    return max(delay, retry_after or 0.0)


def derive_post_status(statuses: Iterable[str]) -> PostStatus | None:
    """A scheduled post's status from its targets' (None when it has none)."""
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
        return PostStatus.DRAFT
    published = sum(1 for s in live if s == TargetStatus.PUBLISHED)
    if published == len(live):
        return PostStatus.PUBLISHED
    return PostStatus.PARTIALLY_PUBLISHED if published else PostStatus.FAILED


def lock_post(session: Session, post_id: str) -> Post | None:
    """The post, locked for update (PostgreSQL) so its status is derived by one writer at a time."""
    return session.exec(select(Post).where(Post.id == post_id).with_for_update()).first()


def refresh_post_status(session: Session, post: Post, now: datetime) -> None:
    """Derive the post's status from its targets and store it (the post must be locked)."""
    session.flush()
    statuses = session.exec(select(Target.status).where(Target.post_id == post.id)).all()
    status = derive_post_status(statuses)
    if status is None or status == post.status:
        return
    post.status = status
    post.updated_at = now
    if status in (PostStatus.PUBLISHED, PostStatus.PARTIALLY_PUBLISHED) and not post.published_at:
        post.published_at = now
    session.add(post)


@dataclass(frozen=True)
class Outcome:
    """How a publish ended, and what the target becomes."""

    status: TargetStatus  # PUBLISHED, RETRYING, FAILED or UNKNOWN
    attempt: AttemptOutcome
    result: PublishResult | None = None
    error: str | None = None
    error_kind: str | None = None
    http_status: int | None = None
    retry_at: datetime | None = None
    # A wait for a rate limit or quota: the try does not count against the attempt limit.
    refund_attempt: bool = False
    # What the account needs after a refused token: "refresh" (ask the token-refresher) or
    # "reauth" (a person must connect it again); None: nothing.
    auth: str | None = None


def move_target(
    session: Session,
    target_id: str,
    from_status: str,
    from_version: int,
    /,
    *,
    where: Iterable[Any] = (),
    **values: Any,
) -> bool:
    """The one compare-and-set: set `values` on the target if it is still at `from_status` and
    `from_version` (and meets `where`); False when somebody moved it first."""
    moved: int = session.execute(
        update(Target)
        .where(
            Target.id == target_id,  # type: ignore[arg-type]
            Target.status == from_status,  # type: ignore[arg-type]
            Target.version == from_version,  # type: ignore[arg-type]
            *where,
        )
        .values(**values)
    ).rowcount  # type: ignore[attr-defined]
    return moved > 0


def record_outcome(
    session: Session,
    *,
    target_id: str,
    claimed_version: int,
    attempt_id: str | None,
    outcome: Outcome,
    now: datetime,
) -> bool:
    """Move a `publishing` target to its outcome; False when it was no longer ours to move."""
    row = session.exec(
        select(Target.post_id, Target.platform, Target.due_at).where(Target.id == target_id)
    ).first()
    if row is None:
        return False
    post_id, platform, due_at = row
    post = lock_post(session, post_id)
    values: dict[str, object] = {
        "status": outcome.status,
        "version": claimed_version + 1,
        "updated_at": now,
        "error": outcome.error,
        "error_kind": outcome.error_kind,
    }
    if outcome.status == TargetStatus.RETRYING:
        values["due_at"] = outcome.retry_at
        if outcome.refund_attempt:
            values["attempt_count"] = Target.attempt_count - 1
    else:
        values["finished_at"] = now
    if outcome.result is not None:
        values["platform_post_id"] = outcome.result.platform_post_id
        values["platform_url"] = outcome.result.url
        values["published_at"] = now
        # Its metrics are pulled from the first analytics slot on (herald_common.analytics).
        values["metrics_due_at"] = first_pull_at(now)
    if not move_target(session, target_id, TargetStatus.PUBLISHING, claimed_version, **values):
        return False
    if attempt_id is not None:
        attempt = session.get(Attempt, attempt_id)
        if attempt is not None:
            attempt.finished_at = now
            attempt.outcome = outcome.attempt
            attempt.http_status = outcome.http_status
            attempt.error = outcome.error
            attempt.duration_ms = (now - attempt.started_at).total_seconds() * 1000
            session.add(attempt)
    if post is not None:
        refresh_post_status(session, post, now)
    scheduled = (post.scheduled_at if post is not None else None) or due_at
    lateness = (now - scheduled).total_seconds() if scheduled is not None else None
    # Counted once the outcome is committed, never for one that is rolled back.
    event.listen(
        session,
        "after_commit",
        lambda _: observe_settled(platform, outcome.status, outcome.error_kind, lateness),
        once=True,
    )
    return True


def account_ref(account: Account, credentials: Mapping[str, Any] | None = None) -> AccountRef:
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


def publish_request(
    target: Target,
    post: Post,
    account: Account,
    platforms: PlatformRegistry,
    *,
    save_checkpoint: Callable[[Mapping[str, Any]], None] | None = None,
) -> PublishRequest:
    """The request for one target. Its idempotency key is the target id, stable across tries.

    Raises CredentialsUnavailable when the account's secrets cannot be decrypted.
    """
    request = PublishRequest(
        account=account_ref(account, platforms.credentials_of(account)),
        idempotency_key=target.id,
        text=post.content,
        media=tuple(post.media or ()),
        checkpoint=dict(target.checkpoint or {}),
    )
    if save_checkpoint is not None:
        request = replace(request, save_checkpoint=save_checkpoint)
    return request


class CheckpointRejected(Exception):
    """Raised when a try saves a checkpoint for a target that is no longer its own."""


def checkpoint_saver(
    engine: Engine, target_id: str, claimed_version: int
) -> Callable[[Mapping[str, Any]], None]:
    """Saves what a try left on the platform, while the target is still that try's."""

    def save(state: Mapping[str, Any]) -> None:
        with session_scope(engine) as session:
            moved = move_target(
                session,
                target_id,
                TargetStatus.PUBLISHING,
                claimed_version,
                checkpoint=dict(state),
            )
        if not moved:
            raise CheckpointRejected(f"target {target_id} is no longer at v{claimed_version}")

    return save


def reconcile(
    engine: Engine,
    platforms: PlatformRegistry,
    settings: Settings,
    *,
    target_id: str,
    claimed_version: int,
    reason: str,
) -> TargetStatus | None:
    """Settle a target whose publish may or may not have reached the platform.

    Asks the platform by idempotency key where it can: found → published; not found → retried
    with backoff until the attempt limit (nothing went out, so trying again cannot post twice).
    Where the platform cannot be asked, the target becomes `unknown` for a person to resolve:
    never blindly posted again. Only a transient failure of the lookup itself leaves the target
    to be asked again later.
    """
    with session_scope(engine) as session:
        target = session.get(Target, target_id)
        if target is None or target.status != TargetStatus.PUBLISHING:
            return None
        post = session.get(Post, target.post_id)
        account = session.get(Account, target.account_id)
        open_attempt = session.exec(
            select(Attempt.id, Attempt.started_at)
            .where(Attempt.target_id == target_id, Attempt.outcome.is_(None))  # type: ignore[union-attr]
            .order_by(Attempt.number.desc())  # type: ignore[attr-defined]
        ).first()
    attempt_id, tried_at = open_attempt if open_attempt else (None, None)
    assert post is not None and account is not None
    now = utcnow()
    for_a_person = (
        "so it is not sent again automatically: check the account and say what you found "
        "(POST /v1/posts/{post_id}/targets/{target_id}/resolve: published with its URL, "
        "not_published, or retry)"
    )
    try:
        adapter = platforms.get(account.platform)
        found = adapter.lookup(publish_request(target, post, account, platforms))
    except TransientError as exc:  # the platform could not be asked now: ask again later...
        # From the try itself: a scheduler's takeover restarts `started_at`, not the attempt.
        stuck_for = (now - (tried_at or target.started_at or now)).total_seconds()
        if stuck_for < settings.reconcile_give_up_seconds:
            log.warning("reconcile: lookup of target %s failed: %s", target_id, exc.message)
            return None
        # ...but not for ever: a target nobody can cancel must reach a person.
        outcome = _unknown(
            f"{reason}; asking {account.platform} kept failing for {stuck_for / 3600:.1f} h "
            f"({exc.message}), " + for_a_person
        )
    except LookupUnsupported:
        outcome = _unknown(
            f"{reason}; {account.platform} gives no way to ask whether the post went out, "
            + for_a_person
        )
    except HeraldError as exc:
        outcome = _unknown(
            f"{reason}; asking {account.platform} failed ({exc.message}), " + for_a_person
        )
    except Exception as exc:
        log.exception("reconcile: lookup of target %s raised", target_id)
        outcome = _unknown(
            f"{reason}; asking {account.platform} failed ({type(exc).__name__}), " + for_a_person
        )
    else:
        if found is not None:
            outcome = Outcome(
                status=TargetStatus.PUBLISHED, attempt=AttemptOutcome.PUBLISHED, result=found
            )
        elif target.attempt_count >= settings.publish_max_attempts:
            outcome = Outcome(
                status=TargetStatus.FAILED,
                attempt=AttemptOutcome.RETRYABLE,
                error=f"{reason}; the platform has no such post (gave up after "
                f"{target.attempt_count} attempts)",
                error_kind="retryable",
            )
        else:
            outcome = Outcome(
                status=TargetStatus.RETRYING,
                attempt=AttemptOutcome.RETRYABLE,
                error=f"{reason}; the platform has no such post, so it is sent again",
                error_kind="retryable",
                retry_at=now + timedelta(seconds=backoff_seconds(settings, target.attempt_count)),
            )
    with session_scope(engine) as session:
        moved = record_outcome(
            session,
            target_id=target_id,
            claimed_version=claimed_version,
            attempt_id=attempt_id,
            outcome=outcome,
            now=now,
        )
    return outcome.status if moved else None


def _unknown(error: str) -> Outcome:
    return Outcome(
        status=TargetStatus.UNKNOWN,
        attempt=AttemptOutcome.UNKNOWN,
        error=error,
        error_kind="unknown",
    )
