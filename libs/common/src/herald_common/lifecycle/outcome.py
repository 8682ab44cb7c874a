"""How a try ended, recorded in one transaction: the target's move, its attempt row, and the
post's status.

On the publish path that transaction is at most three statements of Herald's own, plus what a
platform's bookkeeping adds to it (the sandbox's delivery row):

1. the target's compare-and-set, `publishing` at the claimed version → its outcome, which
   first locks the post row inside the same statement (lock order: post, then targets);
2. the attempt row, written now that the try is over (a try that never reaches this point is
   written by whoever settles it: `reconcile`);
3. the post's status, when it changes (read from the other targets only when there are some).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, bindparam, exists, func, insert, select, update

from herald_common.analytics import first_pull_at
from herald_common.hot import HotResult
from herald_common.lifecycle.claim import Claim
from herald_common.lifecycle.moves import Executor, move
from herald_common.lifecycle.states import PostStatus, TargetStatus
from herald_common.lifecycle.status import (
    WENT_OUT,
    derive_post_status,
    store_post_status,
    target_statuses,
)
from herald_common.lifecycle.tables import ATTEMPTS, POSTS, TARGETS
from herald_common.logs import REQUEST_ID
from herald_common.metrics import observe_settled
from herald_common.models import AttemptOutcome
from herald_common.models.base import new_id
from herald_common.platforms import PublishResult
from herald_common.settings import Settings


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


def backoff_seconds(
    settings: Settings, attempts: int, *, retry_after: float | None = None
) -> float:
    """Seconds to wait after the `attempts`-th failure: exponential with jitter, at least Retry-After."""
    base = settings.publish_backoff_seconds * 2 ** max(attempts - 1, 0)
    delay = min(base, settings.publish_backoff_max_seconds)
    # Up to 10% jitter spreads the retries of a platform-wide outage.
    delay *= 1 + random.random() / 10
    return max(delay, retry_after or 0.0)


def _next_number() -> Any:
    return (
        select(func.coalesce(func.max(ATTEMPTS.c.number), 0) + 1)
        .where(ATTEMPTS.c.target_id == bindparam("a_target_id"))
        .scalar_subquery()
    )


_ATTEMPT_FIELDS = ("finished_at", "outcome", "http_status", "error", "duration_ms")
_INSERT_ATTEMPT = insert(ATTEMPTS).values(
    id=bindparam("a_id"),
    tenant_id=bindparam("a_tenant_id"),
    target_id=bindparam("a_target_id"),
    # Counted from the rows: attempt_count restarts on a person's retry and is not spent by
    # rate-limit waits, but the audit trail keeps counting.
    number=_next_number(),
    due_at=bindparam("a_due_at"),
    started_at=bindparam("a_started_at"),
    lateness_seconds=bindparam("a_lateness_seconds"),
    request_id=bindparam("a_request_id"),
    **{name: bindparam(f"a_{name}") for name in _ATTEMPT_FIELDS},
)
_FINISH_ATTEMPT = (
    update(ATTEMPTS)
    .where(ATTEMPTS.c.id == bindparam("w_id"))
    .values(**{name: bindparam(f"a_{name}") for name in _ATTEMPT_FIELDS})
)


_NOT_FINISHED = {f"a_{name}": None for name in _ATTEMPT_FIELDS}


def open_attempt(db: Executor, claim: Claim) -> str:
    """Write the attempt row of a try whose outcome is not known yet (it started at the
    claim's `started_at`); its id."""
    attempt_id = new_id()
    db.execute(_INSERT_ATTEMPT, {**_attempt_start(claim, attempt_id), **_NOT_FINISHED})
    return attempt_id


def _attempt_start(claim: Claim, attempt_id: str) -> dict[str, Any]:
    lateness = (claim.started_at - claim.due_at).total_seconds() if claim.due_at else None
    return {
        "a_id": attempt_id,
        "a_tenant_id": claim.tenant_id,
        "a_target_id": claim.target_id,
        "a_due_at": claim.due_at,
        "a_started_at": claim.started_at,
        "a_lateness_seconds": lateness,
        # The request that scheduled it, set from the message's options (ledger.RequestIds).
        "a_request_id": REQUEST_ID.get(),
    }


def target_values(outcome: Outcome, now: datetime) -> tuple[dict[str, Any], dict[str, int]]:
    """What the target's row becomes for this outcome: values, and counters to add."""
    values: dict[str, Any] = {
        "updated_at": now,
        "error": outcome.error,
        "error_kind": outcome.error_kind,
    }
    add: dict[str, int] = {}
    if outcome.status == TargetStatus.RETRYING:
        values["due_at"] = outcome.retry_at
        if outcome.refund_attempt:
            add["attempt_count"] = -1
    else:
        values["finished_at"] = now
    if outcome.result is not None:
        values["platform_post_id"] = outcome.result.platform_post_id
        values["platform_url"] = outcome.result.url
        values["published_at"] = now
        # Its metrics are pulled from the first analytics slot on (herald_common.analytics).
        values["metrics_due_at"] = first_pull_at(now)
    return values, add


class Recorded:
    """Whether an outcome was recorded, known once the statement that records it has been
    answered: on the hot path that is when its transaction is sent, in one round trip with
    everything else in it (asking sooner sends what is queued so far)."""

    __slots__ = ("_moved",)

    def __init__(self, moved: HotResult) -> None:
        self._moved = moved

    def __bool__(self) -> bool:
        return bool(self._moved.one()[0])


#: Bookkeeping written in the transaction that records an outcome, and only if it is recorded:
#: called with the transaction and the id of the try's attempt row, whose existence is the
#: condition (see PublishResult.with_outcome).
Bookkeeping = Callable[[Any, str], None]


def record_outcome(
    db: Executor,
    claim: Claim,
    outcome: Outcome,
    now: datetime,
    *,
    attempt_id: str | None = None,
    bookkeeping: Bookkeeping | None = None,
) -> bool | Recorded:
    """Move the claimed target to its outcome, write (or finish, given `attempt_id`) the
    attempt row, and derive the post's status; false when the target was no longer this try's
    to move (nothing is written then, the bookkeeping included). The caller commits, then
    calls `observe`."""
    values, add = target_values(outcome, now)
    finish = {
        "a_finished_at": now,
        "a_outcome": outcome.attempt,
        "a_http_status": outcome.http_status,
        "a_error": outcome.error,
        "a_duration_ms": (now - claim.started_at).total_seconds() * 1000,
    }
    # A post with one target has the status that target gives it: known without a read.
    single = claim.post_targets == 1
    status = derive_post_status([outcome.status]) if single else None
    if attempt_id is None and _dialect(db) == "postgresql":
        new_attempt = new_id()
        moved = _settle_in_one_statement(
            db,
            claim,
            outcome,
            attempt_id=new_attempt,
            values=values,
            add=add,
            finish=finish,
            status=status,
            now=now,
        )
        if bookkeeping is not None:
            bookkeeping(db, new_attempt)  # written only if the attempt row is
        if single:
            return Recorded(moved)  # read once the transaction is sent
        if not Recorded(moved):
            return False
    else:
        if not move(
            db,
            claim.target_id,
            TargetStatus.PUBLISHING,
            claim.version,
            outcome.status,
            lock_post=claim.post_id,
            add=add,
            **values,
        ):
            return False
        if attempt_id is None:
            attempt_id = new_id()
            db.execute(_INSERT_ATTEMPT, {**_attempt_start(claim, attempt_id), **finish})
        else:
            db.execute(_FINISH_ATTEMPT, {"w_id": attempt_id, **finish})
        if bookkeeping is not None:
            bookkeeping(db, attempt_id)
        if single and status is not None and status != claim.post_status:
            store_post_status(db, claim.post_id, status, now)
    if not single:
        # The post row is locked (by the move): its status is derived from one picture.
        status = derive_post_status(target_statuses(db, claim.post_id))
        if status is not None and status != claim.post_status:
            store_post_status(db, claim.post_id, status, now)
    return True


def _dialect(db: Executor) -> str:
    bind = getattr(db, "bind", None) or db  # a Session's engine, or the Connection itself
    return str(bind.dialect.name)


_SETTLE: dict[tuple[Any, ...], Any] = {}


def _settle_statement(keys: tuple[str, ...], add: tuple[tuple[str, int], ...]) -> Any:
    """On PostgreSQL, the target's move, its attempt row and (for a post of one target) the
    post's status in one statement: WITH moved AS (UPDATE … RETURNING), INSERT …, UPDATE posts.
    Each part after the move acts only on what the move returned, so a move that found nothing
    writes nothing."""
    statement = _SETTLE.get((keys, add))
    if statement is not None:
        return statement
    c = TARGETS.c
    moved = (
        update(TARGETS)
        .where(
            c.id == bindparam("w_id"),
            c.status == TargetStatus.PUBLISHING,
            c.version == bindparam("w_version"),
            # The post row first (lock order: the post, then its targets).
            c.post_id.in_(
                select(POSTS.c.id).where(POSTS.c.id == bindparam("w_post_id")).with_for_update()
            ),
        )
        .values(
            status=bindparam("v_status"),
            version=c.version + 1,
            **{key: bindparam(f"v_{key}") for key in keys},
            **{key: c[key] + n for key, n in add},
        )
        .returning(c.id, c.tenant_id)
        .cte("moved")
    )
    a = ATTEMPTS.c
    attempt = (
        insert(ATTEMPTS)
        .from_select(
            [
                "id",
                "tenant_id",
                "target_id",
                "number",
                "due_at",
                "started_at",
                "lateness_seconds",
                "request_id",
                *_ATTEMPT_FIELDS,
            ],
            select(
                bindparam("a_id"),
                moved.c.tenant_id,
                moved.c.id,
                select(func.coalesce(func.max(a.number), 0) + 1)
                .where(a.target_id == moved.c.id)
                .scalar_subquery(),
                bindparam("a_due_at", type_=a.due_at.type),
                bindparam("a_started_at", type_=a.started_at.type),
                bindparam("a_lateness_seconds", type_=a.lateness_seconds.type),
                bindparam("a_request_id", type_=a.request_id.type),
                *(bindparam(f"a_{name}", type_=a[name].type) for name in _ATTEMPT_FIELDS),
            ).select_from(moved),
        )
        .returning(a.id)
        .cte("attempt")
    )
    post = (
        update(POSTS)
        .where(
            POSTS.c.id == bindparam("w_post_id"),
            bindparam("p_apply", type_=Boolean()),
            POSTS.c.status != bindparam("p_status"),
            exists(select(moved.c.id)),
        )
        .values(
            status=bindparam("p_status"),
            updated_at=bindparam("p_now"),
            published_at=func.coalesce(POSTS.c.published_at, bindparam("p_published_at")),
        )
        .returning(POSTS.c.id)
        .cte("post")
    )
    statement = select(
        select(func.count()).select_from(moved).scalar_subquery(),
        select(func.count()).select_from(attempt).scalar_subquery(),
        select(func.count()).select_from(post).scalar_subquery(),
    )
    _SETTLE[(keys, add)] = statement
    return statement


def _settle_in_one_statement(
    db: Executor,
    claim: Claim,
    outcome: Outcome,
    *,
    attempt_id: str,
    values: dict[str, Any],
    add: dict[str, int],
    finish: dict[str, Any],
    status: PostStatus | None,
    now: datetime,
) -> HotResult:
    apply = status is not None and status != claim.post_status
    params: dict[str, Any] = {
        "w_id": claim.target_id,
        "w_version": claim.version,
        "w_post_id": claim.post_id,
        "v_status": outcome.status,
        **{f"v_{key}": value for key, value in values.items()},
        **_attempt_start(claim, attempt_id),
        **finish,
        "p_apply": apply,
        "p_status": status or claim.post_status,
        "p_now": now,
        "p_published_at": now if status in WENT_OUT else None,
    }
    statement = _settle_statement(tuple(sorted(values)), tuple(sorted(add.items())))
    result: HotResult = db.execute(statement, params)
    return result


def put_back(
    db: Executor,
    claim: Claim,
    now: datetime,
    *,
    due_at: datetime,
    kind: str,
    error: str,
    where: Iterable[ColumnElement[bool]] = (),
) -> bool:
    """Hand a claimed target back to the schedule before calling the platform (its pace is
    full, its account must be connected again): no attempt spent, no attempt row."""
    return move(
        db,
        claim.target_id,
        TargetStatus.PUBLISHING,
        claim.version,
        TargetStatus.RETRYING,
        where=where,
        add={"attempt_count": -1},
        due_at=due_at,
        error_kind=kind,
        error=error,
        updated_at=now,
    )


def observe(claim: Claim, outcome: Outcome, now: datetime) -> None:
    """Count a recorded outcome in the metrics (after its transaction committed)."""
    since = claim.since
    lateness = (now - since).total_seconds() if since is not None else None
    observe_settled(claim.platform, outcome.status, outcome.error_kind, lateness)
