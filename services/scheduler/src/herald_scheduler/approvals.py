"""The scheduler's approvals sweep: requests nobody was told of, reminders, overdue requests.

Each pass reads the pending requests' index (`ix_approvals_pending_due`) three times, each
read bounded by BATCH:

1. Requests whose `approval.notify` message was lost — the broker was away when the API sent
   it (the API then marks the request, so it goes on the next pass), or a worker lost it —
   have no `request` notice and have not been touched for JOB_REQUEUE_AFTER_SECONDS: their
   `updated_at` is moved on (compare-and-set) and the message sent again. The notices are
   claimed one by one by the approval service, so a message that was only slow sends nothing
   twice.
2. Reminders: a request due within APPROVAL_REMINDER_BEFORE_SECONDS and not reminded yet gets
   `reminded_at` (compare-and-set), the change commits, then the reminder is sent; when the
   broker refuses it the stamp is taken back for the next pass.
3. Overdue: a request past its due time gets `overdue_at`. Its post stays `pending_approval`
   and is never published: a post that waits cannot be scheduled.
4. Unfinished notices: a notice left `sending` past the approval service's stale age (its
   worker stopped on the message's last try), or `retrying` with no message back after the
   contract's longest backoff, is marked `retrying` again (compare-and-set on its try's start)
   and its request's message sent, so an approver is not left untold.

Two schedulers may run: every change is a compare-and-set, so one of them sends each message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from dramatiq.broker import Broker
from sqlalchemy import and_, exists, or_, update
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from herald_common.contracts import NOTIFY_APPROVERS, NotifyApproversPayload, send
from herald_common.db import session_scope
from herald_common.models import Approval, ApprovalNotice, ApprovalStatus
from herald_common.settings import Settings

log = logging.getLogger(__name__)

#: Requests one read takes at most, per kind of work.
BATCH = 200


@dataclass(frozen=True)
class _Due:
    """A request claimed for a message, and the value its claim replaced (to take it back)."""

    id: str
    tenant_id: str
    post_id: str
    notification_type: str
    before: datetime | None


def sweep(engine: Engine, broker: Broker, settings: Settings, now: datetime) -> int:
    """One pass; how many requests it resent, reminded or flagged overdue."""
    return (
        resend_untold(engine, broker, settings, now)
        + send_reminders(engine, broker, settings, now)
        + flag_overdue(engine, now)
        + resume_unfinished(engine, broker, now)
    )


#: A notice `sending` this long lost its worker (the approval service's own stale age)…
SENDING_STALE = timedelta(milliseconds=NOTIFY_APPROVERS.time_limit_ms, seconds=60)
#: …and one `retrying` this long lost the message that was to retry it.
RETRYING_STALE = SENDING_STALE + timedelta(milliseconds=NOTIFY_APPROVERS.retry.max_backoff_ms)


def resume_unfinished(engine: Engine, broker: Broker, now: datetime, *, limit: int = BATCH) -> int:
    """Send again the requests (or reminders) of pending approvals with a notice nobody will
    finish otherwise."""
    unfinished = or_(
        and_(
            col(ApprovalNotice.status) == "sending",
            col(ApprovalNotice.created_at) < now - SENDING_STALE,
        ),
        and_(
            col(ApprovalNotice.status) == "retrying",
            col(ApprovalNotice.created_at) < now - RETRYING_STALE,
        ),
    )
    with session_scope(engine) as session:
        rows = session.exec(
            select(ApprovalNotice, Approval)
            .join(Approval, col(Approval.id) == col(ApprovalNotice.approval_id))
            .where(col(Approval.status) == ApprovalStatus.PENDING, unfinished)
            .order_by(col(ApprovalNotice.created_at))
            .limit(limit)
        ).all()
        wanted: dict[tuple[str, bool], _Due] = {}
        for notice, approval in rows:
            taken: CursorResult[object] = session.execute(  # type: ignore[assignment]
                update(ApprovalNotice)
                .where(
                    col(ApprovalNotice.id) == notice.id,
                    col(ApprovalNotice.status) == notice.status,
                    col(ApprovalNotice.created_at) == notice.created_at,
                )
                .values(status="retrying", created_at=now)
            )
            if taken.rowcount:
                due = _Due(
                    approval.id, approval.tenant_id, approval.post_id,
                    approval.notification_type, None,
                )  # fmt: skip
                wanted[(approval.id, notice.kind == "reminder")] = due
    if not wanted:
        return 0
    log.warning("approvals: %d notice message(s) lost; sending again", len(wanted))
    sent = 0
    for reminder in (False, True):
        items = [due for (_, is_reminder), due in wanted.items() if is_reminder is reminder]
        sent += _resend(broker, items, reminder=reminder)
    return sent


def _resend(broker: Broker, items: list[_Due], *, reminder: bool) -> int:
    """Send the messages; how many went before the broker refused one (what it refused waits
    for a later pass)."""
    for index, due in enumerate(items):
        payload = NotifyApproversPayload(
            tenant_id=due.tenant_id,
            post_id=due.post_id,
            approval_id=due.id,
            notification_type=due.notification_type,  # type: ignore[arg-type]
            reminder=reminder,
        )
        try:
            send(broker, NOTIFY_APPROVERS, payload)
        except Exception as exc:
            log.error(
                "approvals: broker unreachable (%s); %d %s wait for the next pass",
                type(exc).__name__,
                len(items) - index,
                "reminder(s)" if reminder else "request(s)",
            )
            return index
    return len(items)


def resend_untold(
    engine: Engine, broker: Broker, settings: Settings, now: datetime, *, limit: int = BATCH
) -> int:
    """Send again the requests whose message never reached the approval service."""
    quiet_since = now - timedelta(seconds=settings.job_requeue_after_seconds)
    told = exists().where(
        col(ApprovalNotice.approval_id) == col(Approval.id), col(ApprovalNotice.kind) == "request"
    )
    with session_scope(engine) as session:
        rows = session.exec(
            select(Approval)
            .where(
                col(Approval.status) == ApprovalStatus.PENDING,
                col(Approval.due_at) > now,
                col(Approval.updated_at) < quiet_since,
                ~told,
            )
            .order_by(col(Approval.due_at))
            .limit(limit)
        ).all()
        claimed = [
            _Due(a.id, a.tenant_id, a.post_id, a.notification_type, a.updated_at)
            for a in rows
            if _stamp(session, a.id, "updated_at", a.updated_at, now)
        ]
    if claimed:
        log.warning("approvals: %d request(s) never told to their approvers; sending", len(claimed))
    return _send(engine, broker, claimed, now, reminder=False)


def send_reminders(
    engine: Engine, broker: Broker, settings: Settings, now: datetime, *, limit: int = BATCH
) -> int:
    """Remind the approvers of requests due soon, once."""
    horizon = now + timedelta(seconds=settings.approval_reminder_before_seconds)
    with session_scope(engine) as session:
        rows = session.exec(
            select(Approval.id, Approval.tenant_id, Approval.post_id, Approval.notification_type)
            .where(
                col(Approval.status) == ApprovalStatus.PENDING,
                col(Approval.due_at) > now,
                col(Approval.due_at) <= horizon,
                col(Approval.reminded_at).is_(None),
            )
            .order_by(col(Approval.due_at))
            .limit(limit)
        ).all()
        claimed = [
            _Due(*row, before=None)
            for row in rows
            if _stamp(session, row[0], "reminded_at", None, now)
        ]
    return _send(engine, broker, claimed, now, reminder=True)


def flag_overdue(engine: Engine, now: datetime, *, limit: int = BATCH) -> int:
    """Flag the requests whose due time passed without a decision."""
    with session_scope(engine) as session:
        ids = list(
            session.exec(
                select(Approval.id)
                .where(
                    col(Approval.status) == ApprovalStatus.PENDING,
                    col(Approval.due_at) <= now,
                    col(Approval.overdue_at).is_(None),
                )
                .order_by(col(Approval.due_at))
                .limit(limit)
            ).all()
        )
        if not ids:
            return 0
        result: CursorResult[object] = session.execute(  # type: ignore[assignment]
            update(Approval)
            .where(
                col(Approval.id).in_(ids),
                col(Approval.status) == ApprovalStatus.PENDING,
                col(Approval.overdue_at).is_(None),
            )
            .values(overdue_at=now, updated_at=now)
        )
    flagged = int(result.rowcount)
    if flagged:
        log.warning("approvals: %d request(s) overdue; their posts stay unpublished", flagged)
    return flagged


def _stamp(
    session: Session, approval_id: str, field: str, seen: datetime | None, now: datetime
) -> bool:
    """Compare-and-set the request's `field` from `seen` to now (and `updated_at` with it)."""
    column = getattr(Approval, field)
    result: CursorResult[object] = session.execute(  # type: ignore[assignment]
        update(Approval)
        .where(
            col(Approval.id) == approval_id,
            col(Approval.status) == ApprovalStatus.PENDING,
            column.is_(None) if seen is None else column == seen,
        )
        .values({field: now, "updated_at": now})
    )
    return bool(result.rowcount)


def _send(
    engine: Engine, broker: Broker, claimed: list[_Due], now: datetime, *, reminder: bool
) -> int:
    """Send one message per claimed request (committed already); on a broker failure, take the
    unsent claims back so the next pass tries them again."""
    sent = _resend(broker, claimed, reminder=reminder)
    field = "reminded_at" if reminder else "updated_at"
    if sent < len(claimed):
        with session_scope(engine) as session:
            for item in claimed[sent:]:
                session.execute(
                    update(Approval)
                    .where(col(Approval.id) == item.id, getattr(Approval, field) == now)
                    .values({field: item.before})
                )
    return sent
