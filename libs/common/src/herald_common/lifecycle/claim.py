"""A worker's claim of a target: `queued` at the message's version → `publishing`.

The claim is the exactly-once guard: one compare-and-set (`UPDATE … RETURNING`) that moves the
target only if it is still queued at that version and due. Zero rows means the message is a
duplicate, stale (the post was edited, rescheduled or canceled since) or early.

What the publish needs (the post's text and media; the account's platform, settings and sealed
credentials) is read by a second statement of the same transaction, sent in the same round trip
(herald_common.hot), not returned by the claim through `UPDATE … FROM posts, accounts`: a claim that waited for an edit of the post to commit
would return the post as it was before the edit (PostgreSQL rechecks the claimed row after the
wait, not the rows it was joined with), and publish the old text. Read after the claim, the
post is the one the edit committed; and once the target is `publishing`, no edit may change it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine, Row

from herald_common.hot import Hot, HotRow
from herald_common.lifecycle.moves import Executor
from herald_common.lifecycle.states import TargetStatus
from herald_common.lifecycle.tables import ACCOUNTS, POSTS, TARGETS
from herald_common.models import Account
from herald_common.platforms import PlatformRegistry, PublishRequest, account_ref

#: Read from the account (its id is the target's account_id).
_ACCOUNT_COLUMNS = (
    "tenant_id",
    "platform",
    "handle",
    "external_id",
    "settings",
    "credentials",
    "status",
    "status_reason",
    "refreshed_at",
    "deleted_at",
)


@dataclass(frozen=True, slots=True)
class AccountRow:
    """The account's columns a publish reads, as the claim returned them (a plain row: building
    an ORM object costs forty times as much, on every message)."""

    id: str
    tenant_id: str
    platform: str
    handle: str
    external_id: str | None
    settings: dict[str, Any]
    credentials: str | None
    status: str
    status_reason: str | None
    refreshed_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class Claim:
    """A target in `publishing` at `version`, and what its publish needs, as the claim read it.

    Also what a takeover (reconciliation) builds for a target some other try left publishing.
    """

    target_id: str
    tenant_id: str
    post_id: str
    platform: str
    version: int  # the version the claim set: the outcome is recorded only against it
    due_at: datetime | None
    started_at: datetime
    attempt_count: int
    checkpoint: Mapping[str, Any]
    content: str
    media: tuple[Mapping[str, Any], ...]
    scheduled_at: datetime | None  # the post's time, from which lateness is counted
    post_status: str
    post_targets: int  # how many targets the post has (its status is theirs to derive)
    account: AccountRow | Account = field(repr=False)

    @property
    def since(self) -> datetime | None:
        """When the post was meant to go out: waits are measured from here."""
        return self.scheduled_at or self.due_at


def _target_columns() -> list[Any]:
    c = TARGETS.c
    return [
        c.id,
        c.tenant_id,
        c.post_id,
        c.account_id,
        c.platform,
        c.version,
        c.due_at,
        c.started_at,
        c.attempt_count,
        c.checkpoint,
    ]


def _post_and_account_columns() -> list[Any]:
    others = TARGETS.alias("others")
    count = (
        select(func.count())
        .select_from(others)
        .where(others.c.post_id == TARGETS.c.post_id)
        .scalar_subquery()
    )
    p = POSTS.c
    return [
        p.content,
        p.media,
        p.scheduled_at,
        p.status.label("post_status"),
        count.label("post_targets"),
        *(ACCOUNTS.c[name].label(f"account_{name}") for name in _ACCOUNT_COLUMNS),
    ]


def _claim_statement() -> Any:
    c = TARGETS.c
    return (
        update(TARGETS)
        .where(
            c.id == bindparam("w_id"),
            c.status == TargetStatus.QUEUED,
            c.version == bindparam("w_version"),
            # Never before its time, whatever message turns up early.
            c.due_at <= bindparam("w_now"),
        )
        .values(
            status=TargetStatus.PUBLISHING,
            version=c.version + 1,
            started_at=bindparam("v_now"),
            updated_at=bindparam("v_now"),
            attempt_count=c.attempt_count + 1,
        )
        .returning(*_target_columns())
    )


_CLAIM = _claim_statement()
_POST_AND_ACCOUNT = (
    select(*_post_and_account_columns())
    .select_from(TARGETS.join(POSTS, POSTS.c.id == TARGETS.c.post_id))
    .join(ACCOUNTS, ACCOUNTS.c.id == TARGETS.c.account_id)
    .where(TARGETS.c.id == bindparam("w_id"))
)


def claim(hot: Hot, target_id: str, version: int, now: datetime) -> Claim | None:
    """Claim the target for this try (one transaction: the claim, then the read); None when
    the message is a duplicate, stale or early."""
    params = {"w_id": target_id, "w_version": version, "w_now": now, "v_now": now}
    with hot.transaction() as db:
        claimed = db.execute(_CLAIM, params)
        # Sent with the claim, in its round trip; of no use when the claim found nothing.
        joined = db.execute(_POST_AND_ACCOUNT, {"w_id": target_id})
    row = claimed.first()
    if row is None:
        return None
    return _claim_from(row, joined.one())


def _claim_from(target: Row[Any] | HotRow, joined: Row[Any] | HotRow) -> Claim:
    t, j = target._mapping, joined._mapping
    account = AccountRow(
        id=t["account_id"], **{name: j[f"account_{name}"] for name in _ACCOUNT_COLUMNS}
    )
    return Claim(
        target_id=t["id"],
        tenant_id=t["tenant_id"],
        post_id=t["post_id"],
        platform=t["platform"],
        version=t["version"],
        due_at=t["due_at"],
        started_at=t["started_at"],
        attempt_count=t["attempt_count"],
        checkpoint=t["checkpoint"] or {},
        content=j["content"],
        media=tuple(j["media"] or ()),
        scheduled_at=j["scheduled_at"],
        post_status=j["post_status"],
        post_targets=int(j["post_targets"]),
        account=account,
    )


_PUBLISHING = select(*_target_columns()).where(
    TARGETS.c.id == bindparam("w_id"),
    TARGETS.c.status == TargetStatus.PUBLISHING,
    TARGETS.c.version == bindparam("w_version"),
)


def read_publishing(db: Executor, target_id: str, version: int) -> Claim | None:
    """The claim of a target still `publishing` at `version` (for a takeover); else None."""
    row = db.execute(_PUBLISHING, {"w_id": target_id, "w_version": version}).first()
    if row is None:
        return None
    joined = db.execute(_POST_AND_ACCOUNT, {"w_id": target_id}).one()
    return _claim_from(row, joined)


_QUEUED_DUE = select(TARGETS.c.due_at).where(
    TARGETS.c.id == bindparam("w_id"),
    TARGETS.c.status == TargetStatus.QUEUED,
    TARGETS.c.version == bindparam("w_version"),
)


def queued_due_at(engine: Engine, target_id: str, version: int) -> datetime | None:
    """When a target still queued at `version` is due (None when it is not queued at it):
    after a failed claim, this tells an early message from a stale one."""
    with engine.connect() as db:
        return db.execute(_QUEUED_DUE, {"w_id": target_id, "w_version": version}).scalar()


def publish_request(
    claim: Claim,
    platforms: PlatformRegistry,
    *,
    save_checkpoint: Callable[[Mapping[str, Any]], None] | None = None,
) -> PublishRequest:
    """The request for one try. Its idempotency key is the target id, stable across tries.

    Raises CredentialsUnavailable when the account's secrets cannot be decrypted.
    """
    request = PublishRequest(
        account=account_ref(claim.account, platforms.credentials_of(claim.account)),
        idempotency_key=claim.target_id,
        text=claim.content,
        media=claim.media,
        checkpoint=dict(claim.checkpoint),
    )
    if save_checkpoint is not None:
        request = replace(request, save_checkpoint=save_checkpoint)
    return request
