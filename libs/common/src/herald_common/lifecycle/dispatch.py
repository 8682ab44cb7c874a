"""The scheduler's side of the lifecycle: due targets become `queued` with a new version, in
one statement per batch, and what it sends is exactly what that statement returned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from herald_common.lifecycle.states import (
    DISPATCHABLE_TARGET_STATES,
    TargetStatus,
    check_move,
)
from herald_common.lifecycle.tables import TARGETS

for _state in DISPATCHABLE_TARGET_STATES:
    check_move(_state, TargetStatus.QUEUED)


@dataclass(frozen=True)
class Queued:
    """A target claimed for sending: the message's payload and when it should fire."""

    target_id: str
    version: int
    due_at: datetime | None
    #: The API request that scheduled it (its message carries it to the worker's lines).
    request_id: str | None = None


def _queue_due(*, skip_locked: bool) -> object:
    c = TARGETS.c
    due = (
        select(c.id)
        .where(c.status.in_(DISPATCHABLE_TARGET_STATES), c.due_at <= bindparam("horizon"))
        .order_by(c.due_at)
        .limit(bindparam("limit"))
    )
    if skip_locked:
        # Two schedulers take different batches; a row the API holds is taken next tick.
        due = due.with_for_update(skip_locked=True)
    return (
        update(TARGETS)
        .where(c.id.in_(due.scalar_subquery()), c.status.in_(DISPATCHABLE_TARGET_STATES))
        .values(
            status=TargetStatus.QUEUED,
            version=c.version + 1,
            queued_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
        .returning(c.id, c.version, c.due_at, c.request_id)
    )


_LOCKING = _queue_due(skip_locked=True)
_PLAIN = _queue_due(skip_locked=False)


def queue_due(db: Connection, horizon: datetime, limit: int, now: datetime) -> list[Queued]:
    """Move up to `limit` targets due by `horizon` (earliest first) to `queued`, in the
    caller's transaction; what moved. On SQLite, whose transactions hold the whole database,
    nothing needs skipping."""
    statement = _PLAIN if db.dialect.name == "sqlite" else _LOCKING
    rows = db.execute(statement, {"horizon": horizon, "limit": limit, "now": now})  # type: ignore[call-overload]
    return sorted(
        (Queued(row[0], row[1], row[2], row[3]) for row in rows),
        key=lambda q: (q.due_at is None, q.due_at, q.target_id),
    )
