"""Token upkeep on the scheduler's side: send refresh messages for accounts that are due.

An account is due when a refresh was asked for (`refresh_due_at`) or its token expires within
Settings.token_refresh_window_seconds (see herald_common.tokens). The scheduler stamps
`refresh_queued_at` in the same transaction that picks the account, commits, then sends; a
message lost on the way is sent again after requeue_after_seconds. The token-refresher's
lease is what makes two messages for one account refresh it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from dramatiq.broker import Broker
from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_common.contracts import REFRESH_ACCOUNT, RefreshAccountPayload, send
from herald_common.db import is_sqlite, session_scope
from herald_common.models import Account, AccountStatus
from herald_common.settings import Settings
from herald_common.tokens import due_condition

log = logging.getLogger(__name__)


@dataclass
class RefreshDispatcher:
    """Sends `token-refresh` messages for due accounts; collaborators handed in."""

    engine: Engine
    broker: Broker
    settings: Settings

    def dispatch_due(self, now: datetime) -> tuple[int, int]:
        """Send a refresh message for each due account; (sent, failed to send)."""
        resend = now - timedelta(seconds=self.settings.requeue_after_seconds)
        stale_lease = now - timedelta(seconds=self.settings.token_refresh_lease_seconds)
        with session_scope(self.engine) as session:
            query = (
                select(Account.id, Account.tenant_id, Account.refresh_due_at)
                .where(
                    col(Account.deleted_at).is_(None),
                    or_(
                        and_(
                            col(Account.status) == AccountStatus.ACTIVE,
                            due_condition(now, self.settings),
                        ),
                        # A person asked to try an account that needs re-auth once more.
                        and_(
                            col(Account.status) == AccountStatus.NEEDS_REAUTH,
                            col(Account.refresh_due_at) <= now,
                        ),
                        # A refresh whose worker died: the lease is taken over.
                        and_(
                            col(Account.status) == AccountStatus.REFRESHING,
                            col(Account.refresh_started_at) < stale_lease,
                        ),
                    ),
                    or_(
                        col(Account.refresh_queued_at).is_(None),
                        col(Account.refresh_queued_at) < resend,
                    ),
                )
                .order_by(col(Account.token_expires_at))
                .limit(self.settings.scheduler_batch_size)
            )
            if not is_sqlite(self.engine):
                query = query.with_for_update(skip_locked=True, of=Account)  # type: ignore[arg-type]
            due = list(session.exec(query).all())
            if not due:
                return 0, 0
            session.execute(
                update(Account)
                .where(col(Account.id).in_([row[0] for row in due]))
                .values(refresh_queued_at=now)
            )
        sent = 0
        for account_id, tenant_id, asked in due:
            reason = "manual" if asked is not None else "expiring"
            try:
                send(
                    self.broker,
                    REFRESH_ACCOUNT,
                    RefreshAccountPayload(
                        tenant_id=tenant_id, account_id=account_id, reason=reason
                    ),
                )
            except Exception as exc:
                unsent = [row[0] for row in due[sent:]]
                log.error(
                    "scheduler: broker unreachable (%s); %d refresh(es) wait in the database",
                    type(exc).__name__,
                    len(unsent),
                )
                with session_scope(self.engine) as session:
                    session.execute(
                        update(Account)
                        .where(col(Account.id).in_(unsent))
                        .values(refresh_queued_at=None)
                    )
                return sent, len(unsent)
            sent += 1
        return sent, 0
