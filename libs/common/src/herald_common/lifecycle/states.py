"""A target's states, and the one table of moves between them.

    draft ──► scheduled ──► queued ──► publishing ──► published
      ▲  ◄──────┘  ▲  ◄───────┘  │          │
      │            │             │          ├──► retrying ──► queued …
      └─ canceled ◄┴─────────────┘          ├──► failed  ──► scheduled (a person's retry)
                                            └──► unknown ──► published / failed / scheduled
                                                             (a person's answer)

Every change of a target's state is a compare-and-set (`lifecycle.moves`) that names the state
it expects and refuses any move this table does not allow, so a bug that would, say, send a
published post back on the schedule fails loudly instead of publishing it twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from herald_common.models.posts import (
    ACTIVE_TARGET_STATES,
    DISPATCHABLE_TARGET_STATES,
    PostStatus,
    Target,
    TargetStatus,
)

S = TargetStatus

#: For each state, the states a target may move to from it. A move to the same state is an
#: edit of the row in that state (a new due time, a checkpoint, a takeover).
TRANSITIONS: Mapping[TargetStatus, frozenset[TargetStatus]] = {
    S.DRAFT: frozenset({S.DRAFT, S.SCHEDULED, S.CANCELED}),
    S.SCHEDULED: frozenset({S.SCHEDULED, S.DRAFT, S.QUEUED, S.CANCELED}),
    S.QUEUED: frozenset({S.QUEUED, S.PUBLISHING, S.SCHEDULED, S.DRAFT, S.CANCELED}),
    S.PUBLISHING: frozenset({S.PUBLISHING, S.PUBLISHED, S.RETRYING, S.FAILED, S.UNKNOWN}),
    S.RETRYING: frozenset({S.RETRYING, S.QUEUED, S.SCHEDULED, S.DRAFT, S.CANCELED}),
    S.PUBLISHED: frozenset(),
    S.FAILED: frozenset({S.SCHEDULED, S.DRAFT, S.CANCELED}),
    S.UNKNOWN: frozenset({S.PUBLISHED, S.FAILED, S.SCHEDULED}),
    S.CANCELED: frozenset({S.CANCELED, S.SCHEDULED, S.DRAFT}),
}

#: Targets in flight or done: their post's text and time can no longer change.
SENT_STATES = frozenset({S.PUBLISHING, S.PUBLISHED, S.UNKNOWN})
#: Targets that have not started: they can still be canceled.
PENDING_STATES = frozenset({S.DRAFT, S.SCHEDULED, S.QUEUED, S.RETRYING})
#: Targets that can be (re)scheduled, published now or made a draft again.
REVIVABLE_STATES = PENDING_STATES | {S.FAILED, S.CANCELED}

#: Why a target was canceled (its `error_kind`): with its post, its account taken off the
#: post, or its account deleted. Only the first kind is still one of the post's accounts.
CANCELED_WITH_POST = "canceled"
REMOVED_FROM_POST = "removed"
ACCOUNT_DELETED = "account_deleted"


class IllegalMove(Exception):
    """Raised when code asks for a move the table does not allow (a bug, never user input)."""

    def __init__(self, from_status: str, to_status: str) -> None:
        super().__init__(f"a target cannot move from {from_status} to {to_status}")
        self.from_status = from_status
        self.to_status = to_status


def check_move(from_status: str, to_status: str) -> None:
    """IllegalMove unless the table allows `from_status` → `to_status`."""
    if TargetStatus(to_status) not in TRANSITIONS[TargetStatus(from_status)]:
        raise IllegalMove(from_status, to_status)


def is_member(target: Target) -> bool:
    """Whether the target is still one of the post's accounts (not removed, not deleted)."""
    return target.status != S.CANCELED or target.error_kind in (None, CANCELED_WITH_POST)


__all__ = [
    "ACCOUNT_DELETED",
    "ACTIVE_TARGET_STATES",
    "CANCELED_WITH_POST",
    "DISPATCHABLE_TARGET_STATES",
    "PENDING_STATES",
    "REMOVED_FROM_POST",
    "REVIVABLE_STATES",
    "SENT_STATES",
    "TRANSITIONS",
    "IllegalMove",
    "PostStatus",
    "TargetStatus",
    "check_move",
    "is_member",
]
