"""Keeping accounts connected: refreshing tokens one account at a time, and what waits on it.

The schedule of refreshes lives in the accounts table, like the schedule of posts:

- `refresh_due_at` says a refresh is wanted (a person asked, the weekly run, a 401 while
  publishing, or a backoff after a failure); a token about to expire (`token_expires_at`
  within Settings.token_refresh_window_seconds) is due on its own.
- The scheduler sends one `token-refresh` message per due account and stamps
  `refresh_queued_at` (a message lost on the way is sent again after requeue_after_seconds).
- `TokenKeeper.refresh` takes a lease first: one compare-and-set from `active` (or
  `needs_reauth`, when a person asked) to `refreshing`, only while the account is still due.
  Two workers asked at once, in any processes or replicas, make one refresh call; the second
  finds the lease taken, or finds the account no longer due once the first has finished. A
  rotating refresh token (X, TikTok) is never spent twice. A lease whose worker died is taken
  over after Settings.token_refresh_lease_seconds.

Failures are classified by the Authenticator: TransientError (network, 5xx, 429) → try again
with backoff, the account stays `active`; NeedsAuth (invalid_grant, revoked, app deauthorized)
→ `needs_reauth` with the reason, and the account's pending targets say why they wait;
anything else (the operator's app configuration, a bug) → stays `active`, the error is kept,
tried again after the longest backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from herald_common.crypto import CredentialsUnavailable
from herald_common.db import session_scope
from herald_common.errors import NeedsAuth, PlatformError, TransientError
from herald_common.lifecycle import move_where
from herald_common.metrics import ACCOUNTS_NEEDING_REAUTH, TOKEN_REFRESHES
from herald_common.models import Account, AccountStatus, Target, TargetStatus
from herald_common.platforms import PLATFORMS, AccountFields, PlatformRegistry, account_ref
from herald_common.platforms.auth import Authenticator, Refreshed
from herald_common.settings import Settings
from herald_common.timeutil import from_epoch, utcnow

if TYPE_CHECKING:
    from herald_common.webhooks import Events

log = logging.getLogger(__name__)

#: error_kind of a target held for its account: a refresh is under way after a 401.
AUTH_REFRESH = "auth_refresh"
#: error_kind of a target held until its account is connected again.
NEEDS_REAUTH = "needs_reauth"
HELD_FOR_AUTH = (AUTH_REFRESH, NEEDS_REAUTH)


class RefreshResult(StrEnum):
    """What one refresh message came to."""

    REFRESHED = "refreshed"
    SKIPPED = "skipped"  # not due any more, or another worker holds the lease
    RETRY = "retry"  # transient failure: due again after a backoff, still active
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"  # configuration or a bug: kept in refresh_error, tried again later


def due_condition(now: datetime, settings: Settings) -> Any:
    """SQL: the account wants a refresh now (asked for, or its token is about to expire)."""
    window = now + timedelta(seconds=settings.token_refresh_window_seconds)
    return or_(
        col(Account.refresh_due_at) <= now,
        and_(col(Account.refresh_due_at).is_(None), col(Account.token_expires_at) <= window),
    )


def request_refresh(
    session: Session, account: AccountFields, now: datetime, *, respect_backoff: bool = False
) -> None:
    """Ask for a refresh of the account as soon as the scheduler's next tick.

    With `respect_backoff` (the publisher after a 401), a refresh that is failing and waiting
    for its backoff keeps its time: repeated 401s must not hammer a token endpoint that asked
    to wait. A person's request (the API) always means now.
    """
    due: Any = now
    if respect_backoff:
        due = case(
            (
                and_(
                    col(Account.refresh_failures) > 0,
                    col(Account.refresh_due_at).is_not(None),
                    col(Account.refresh_due_at) > now,
                ),
                Account.refresh_due_at,
            ),
            else_=now,
        )
    session.execute(
        update(Account)
        .where(col(Account.id) == account.id, col(Account.tenant_id) == account.tenant_id)
        .values(refresh_due_at=due, refresh_queued_at=None, updated_at=now)
    )


def request_refresh_all(
    session: Session, platforms: PlatformRegistry, now: datetime, *, tenant_id: str | None = None
) -> int:
    """Ask for a refresh of every active account (of one tenant, or all) whose platform has
    tokens to keep; how many were asked."""
    names = [name for name in PLATFORMS if platforms.authenticator(name) is not None]
    query = update(Account).where(
        col(Account.deleted_at).is_(None),
        col(Account.status) == AccountStatus.ACTIVE,
        col(Account.platform).in_(names),
    )
    if tenant_id is not None:
        query = query.where(col(Account.tenant_id) == tenant_id)
    asked: int = session.execute(query.values(refresh_due_at=now, refresh_queued_at=None)).rowcount  # type: ignore[attr-defined]
    return asked


def mark_needs_reauth(
    session: Session,
    account: AccountFields,
    reason: str,
    now: datetime,
    *,
    where: Iterable[Any] = (),
) -> bool:
    """The account must be connected again: its pending targets say so and wait for it.

    `where` adds conditions on the account row (the publisher only marks an account still
    `active` with the credentials its call used); False when they no longer hold.
    """
    marked: int = session.execute(
        update(Account)
        .where(
            col(Account.id) == account.id,
            col(Account.tenant_id) == account.tenant_id,
            col(Account.deleted_at).is_(None),
            *where,
        )
        .values(
            status=AccountStatus.NEEDS_REAUTH,
            status_reason=reason[:1000],
            refresh_due_at=None,
            refresh_queued_at=None,
            refresh_started_at=None,
            updated_at=now,
        )
    ).rowcount  # type: ignore[attr-defined]
    if not marked:
        return False
    # Targets waiting for a rate limit or their pace keep that reason (and that wait); they are
    # held with this one when their time comes.
    move_where(
        session,
        (TargetStatus.SCHEDULED, TargetStatus.RETRYING),
        None,
        col(Target.account_id) == account.id,
        col(Target.tenant_id) == account.tenant_id,
        or_(
            col(Target.status) == TargetStatus.SCHEDULED,
            or_(
                col(Target.error_kind).is_(None),
                col(Target.error_kind).in_([*HELD_FOR_AUTH, "retryable", "needs_auth"]),
            ),
        ),
        bump=False,
        error_kind=NEEDS_REAUTH,
        error=waiting_reason(reason)[:2000],
        updated_at=now,
    )
    return True


def waiting_reason(reason: str) -> str:
    """What a held target says while its account needs to be connected again."""
    return f"waiting for the account to be connected again: {reason}"


def release_held_targets(session: Session, account: AccountFields, now: datetime) -> int:
    """The account works again: targets held for it go out now (retrying ones) and lose the
    mark (scheduled ones keep their time)."""
    mine = (col(Target.account_id) == account.id, col(Target.tenant_id) == account.tenant_id)
    released = move_where(
        session,
        (TargetStatus.RETRYING,),
        None,
        *mine,
        col(Target.error_kind).in_(HELD_FOR_AUTH),
        due_at=now,
        updated_at=now,
    )
    move_where(
        session,
        (TargetStatus.SCHEDULED,),
        None,
        *mine,
        col(Target.error_kind) == NEEDS_REAUTH,
        bump=False,
        error_kind=None,
        error=None,
        updated_at=now,
    )
    return released


def reconnected(session: Session, account: Account, now: datetime) -> None:
    """New secrets arrived (API, OAuth callback): the account is active, held targets go.

    One UPDATE, whatever the row says now: a refresh holding the lease on the old grant then
    fails its own compare-and-set and drops its tokens, so the person's new ones win.
    """
    session.flush()
    session.execute(
        update(Account)
        .where(
            col(Account.id) == account.id,
            col(Account.tenant_id) == account.tenant_id,
            col(Account.deleted_at).is_(None),
        )
        .values(
            status=AccountStatus.ACTIVE,
            status_reason=None,
            refresh_due_at=None,
            refresh_queued_at=None,
            refresh_started_at=None,
            refresh_failures=0,
            refresh_error=None,
            updated_at=now,
        )
    )
    session.refresh(account)
    release_held_targets(session, account, now)


@dataclass
class TokenKeeper:
    """Refreshes one account's tokens under a lease; collaborators handed in."""

    engine: Engine
    platforms: PlatformRegistry
    settings: Settings
    clock: Callable[[], datetime] = field(default=utcnow)
    #: Tenants' outcome webhooks (account.needs_reauth); None: none emitted.
    events: Events | None = None

    def refresh(self, tenant_id: str, account_id: str) -> RefreshResult:
        """Refresh the account if it is still due and nobody else is refreshing it."""
        result, platform = self._refresh(tenant_id, account_id)
        TOKEN_REFRESHES.labels(platform or "unknown", result.value).inc()
        if result is RefreshResult.NEEDS_REAUTH:
            ACCOUNTS_NEEDING_REAUTH.labels(platform or "unknown", "refresh").inc()
        return result

    def _refresh(self, tenant_id: str, account_id: str) -> tuple[RefreshResult, str | None]:
        now = self.clock()
        leased = self._lease(tenant_id, account_id, now)
        if leased is None:
            log.info(
                "token-refresh: account %s is not due or is being refreshed; skipped", account_id
            )
            return RefreshResult.SKIPPED, None
        account, previous_status = leased
        platform = account.platform
        try:
            authenticator = self.platforms.authenticator(account.platform)
            if authenticator is None:  # nothing expires on this platform (the sandbox)
                self._release(account, status=previous_status, refresh_due_at=None, updated_at=now)
                return RefreshResult.SKIPPED, platform
            refreshed = authenticator.refresh(
                account_ref(account, self.platforms.credentials_of(account))
            )
        except CredentialsUnavailable as exc:
            return self._needs_reauth(account, exc.message), platform
        except NeedsAuth as exc:
            return self._needs_reauth(account, exc.message), platform
        except TransientError as exc:
            return self._retry(account, previous_status, exc.message, exc.retry_after), platform
        except PlatformError as exc:
            return self._error(account, previous_status, exc.message), platform
        except Exception as exc:
            log.exception("token-refresh: refreshing account %s raised", account_id)
            self._error(account, previous_status, f"unexpected error ({type(exc).__name__})")
            raise
        return self._store(account, authenticator, refreshed), platform

    # -- the lease ------------------------------------------------------------------------

    def _lease(self, tenant_id: str, account_id: str, now: datetime) -> tuple[Account, str] | None:
        stale = now - timedelta(seconds=self.settings.token_refresh_lease_seconds)
        with session_scope(self.engine) as session:
            account = session.exec(
                select(Account).where(
                    Account.id == account_id,
                    Account.tenant_id == tenant_id,
                    col(Account.deleted_at).is_(None),
                )
            ).first()
            if account is None:
                return None
            read = account.status
            if read == AccountStatus.ACTIVE:
                claimable: Any = due_condition(now, self.settings)
            elif read == AccountStatus.NEEDS_REAUTH:
                # A person (or the API on their behalf) asked to try again.
                claimable = and_(
                    col(Account.refresh_due_at).is_not(None), due_condition(now, self.settings)
                )
            elif read == AccountStatus.REFRESHING:
                # Its worker died mid-refresh: finished here, due or not. What the account was
                # before is not known, and only a refresh that succeeds proves it works.
                claimable = col(Account.refresh_started_at) < stale
            else:
                return None
            previous = AccountStatus.ACTIVE if read == AccountStatus.REFRESHING else read
            taken: int = session.execute(
                update(Account)
                .where(
                    col(Account.id) == account_id,
                    col(Account.tenant_id) == tenant_id,
                    col(Account.deleted_at).is_(None),
                    # Still what was read: a status that changed meanwhile is not overwritten.
                    col(Account.status) == read,
                    claimable,
                )
                .values(
                    status=AccountStatus.REFRESHING,
                    refresh_started_at=now,
                    updated_at=now,
                )
            ).rowcount  # type: ignore[attr-defined]
            if not taken:
                return None
            session.refresh(account)
            session.expunge(account)
        return account, previous

    def _release(self, account: Account, **values: Any) -> bool:
        """End our lease with `values`; False when it is no longer ours (taken over)."""
        with session_scope(self.engine) as session:
            moved = self._release_in(session, account, **values)
        return moved

    def _release_in(self, session: Session, account: Account, **values: Any) -> bool:
        moved: int = session.execute(
            update(Account)
            .where(
                col(Account.id) == account.id,
                col(Account.status) == AccountStatus.REFRESHING,
                col(Account.refresh_started_at) == account.refresh_started_at,
            )
            .values(refresh_started_at=None, refresh_queued_at=None, **values)
        ).rowcount  # type: ignore[attr-defined]
        return moved > 0

    # -- outcomes -------------------------------------------------------------------------

    def _store(
        self, account: Account, authenticator: Authenticator, refreshed: Refreshed
    ) -> RefreshResult:
        now = self.clock()
        expires = refreshed.expires_at
        if expires is None:
            expires = authenticator.expires_at(refreshed.credentials)
        expires_at = from_epoch(expires)
        window = now + timedelta(seconds=self.settings.token_refresh_window_seconds)
        # A token the platform would not renew yet (no refresh token; too young to refresh) is
        # looked at again when it expires, not on every tick until then.
        due_again = expires_at if expires_at is not None and expires_at <= window else None
        with session_scope(self.engine) as session:
            stored = self._release_in(
                session,
                account,
                credentials=self.platforms.credentials.seal(dict(refreshed.credentials)),
                token_expires_at=expires_at,
                refreshed_at=now,
                refresh_due_at=due_again,
                refresh_failures=0,
                refresh_error=None,
                status=AccountStatus.ACTIVE,
                status_reason=None,
                updated_at=now,
            )
            if stored:
                released = release_held_targets(session, account, now)
        if not stored:
            # Another worker took the lease over (ours outlived token_refresh_lease_seconds).
            log.warning(
                "token-refresh: account %s lease lost; the new tokens were dropped", account.id
            )
            return RefreshResult.SKIPPED
        log.info(
            "token-refresh: account %s (%s) refreshed; expires %s%s",
            account.id,
            account.platform,
            expires_at.isoformat() if expires_at else "never",
            f"; {released} held target(s) released" if released else "",
        )
        return RefreshResult.REFRESHED

    def _needs_reauth(self, account: Account, reason: str) -> RefreshResult:
        now = self.clock()
        with session_scope(self.engine) as session:
            if not self._release_in(session, account, updated_at=now):
                return RefreshResult.SKIPPED
            marked = mark_needs_reauth(session, account, reason, now)
        if marked and self.events is not None:
            self.events.account_needs_reauth(account, reason, now)
        log.warning(
            "token-refresh: account %s (%s) needs to be connected again: %s",
            account.id,
            account.platform,
            reason,
        )
        return RefreshResult.NEEDS_REAUTH

    def _retry(
        self, account: Account, previous: str, reason: str, retry_after: float | None
    ) -> RefreshResult:
        failures = account.refresh_failures + 1
        delay = self._backoff(failures, retry_after)
        now = self.clock()
        self._release(
            account,
            status=previous,
            refresh_failures=failures,
            refresh_error=reason[:1000],
            refresh_due_at=self._again(previous, now + timedelta(seconds=delay)),
            updated_at=now,
        )
        log.warning(
            "token-refresh: account %s (%s) failed (%s); again in %.0f s",
            account.id,
            account.platform,
            reason,
            delay,
        )
        return RefreshResult.RETRY

    def _error(self, account: Account, previous: str, reason: str) -> RefreshResult:
        now = self.clock()
        delay = self.settings.token_refresh_backoff_max_seconds
        self._release(
            account,
            status=previous,
            refresh_failures=account.refresh_failures + 1,
            refresh_error=reason[:1000],
            refresh_due_at=self._again(previous, now + timedelta(seconds=delay)),
            updated_at=now,
        )
        log.error("token-refresh: account %s (%s): %s", account.id, account.platform, reason)
        return RefreshResult.ERROR

    @staticmethod
    def _again(previous: str, when: datetime) -> datetime | None:
        """When a failed refresh is tried again: a person's retry of a needs_reauth account is
        tried once, not for ever."""
        return None if previous == AccountStatus.NEEDS_REAUTH else when

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        base = self.settings.token_refresh_backoff_seconds * 2 ** max(failures - 1, 0)
        return max(min(base, self.settings.token_refresh_backoff_max_seconds), retry_after or 0.0)
