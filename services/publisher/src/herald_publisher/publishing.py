"""Publishing one target, exactly once. Plain functions: no Dramatiq in here.

0. Pace: when the account's platform documents a rate (Platform.paces) and its window is full,
   the target goes back on the schedule a little later (`retrying`, error_kind `paced`)
   without spending an attempt.
1. Claim: one compare-and-set, queued at the message's version → publishing. Zero rows means
   the message is a duplicate or stale (the post was edited, rescheduled or canceled since):
   acknowledge it and publish nothing.
2. Call the platform with an idempotency key derived from the target (and the checkpoint an
   earlier try of a multi-step publish left).
3. Record the outcome and the attempt row; derive the post's status from its targets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from dramatiq.broker import Broker
from dramatiq.middleware.time_limit import TimeLimitExceeded
from sqlalchemy import exists
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from herald_common.crypto import CredentialsUnavailable
from herald_common.db import session_scope
from herald_common.errors import (
    HeraldError,
    InvalidInput,
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    PlatformError,
    RateLimited,
    StillProcessing,
    TransientError,
    Waiting,
)
from herald_common.metrics import ACCOUNTS_NEEDING_REAUTH
from herald_common.models import (
    Account,
    AccountStatus,
    Attempt,
    AttemptOutcome,
    Post,
    Target,
    TargetStatus,
)
from herald_common.pacing import Pacer, limiter_backend
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.targets import (
    Outcome,
    account_ref,
    backoff_seconds,
    checkpoint_saver,
    move_target,
    publish_request,
    reconcile,
    record_outcome,
)
from herald_common.timeutil import utcnow
from herald_common.tokens import (
    AUTH_REFRESH,
    NEEDS_REAUTH,
    mark_needs_reauth,
    release_held_targets,
    request_refresh,
    waiting_reason,
)

log = logging.getLogger(__name__)

#: Retry-After values beyond this are treated as "fail now": a day-long wait is a decision.
MAX_RETRY_AFTER_SECONDS = 24 * 3600


class EarlyMessage(Exception):
    """Raised when a message arrives before its target is due: send it again later."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"due in {seconds:.3f} s")
        self.seconds = seconds


class Result(StrEnum):
    """What handling one publish message came to."""

    STALE = "stale"  # duplicate or outdated message: nothing done
    PACED = "paced"  # the platform's rate window is full: back on the schedule, no attempt spent
    HELD = "held"  # the account must be connected again: the target waits, no attempt spent
    PUBLISHED = "published"
    RETRYING = "retrying"
    FAILED = "failed"
    UNKNOWN = "unknown"
    LOST = "lost"  # the outcome could not be recorded; the scheduler's reconciliation will


@dataclass
class Publisher:
    """Publishes targets; its collaborators are handed in."""

    engine: Engine
    platforms: PlatformRegistry
    settings: Settings
    clock: Callable[[], datetime] = field(default=utcnow)
    pacer: Pacer | None = None  # None: no pacing

    def publish(self, target_id: str, version: int) -> Result:
        """Handle one publish message for `target_id` at `version`."""
        # One read serves both checks made before the claim (this is every message's path).
        now = self.clock()
        found = self._claimable(target_id, version, now)
        if found is not None:
            if self._hold_for_auth(found, version, now):
                return Result.HELD
            if self._pace(found, version, now):
                return Result.PACED
        claimed = self._claim(target_id, version)
        if claimed is None:
            self._raise_if_early(target_id, version)
            log.info(
                "publish: target %s v%s is not queued at that version; skipped", target_id, version
            )
            return Result.STALE
        target, post, account, attempt_id = claimed
        claimed_version = target.version
        outcome = self._call_platform(target, post, account)
        if outcome is None:  # the call ended in a way that says nothing of the platform's state
            status = reconcile(
                self.engine,
                self.platforms,
                self.settings,
                target_id=target_id,
                claimed_version=claimed_version,
                reason="the publish call ended unexpectedly",
            )
            return Result(status.value) if status else Result.LOST
        with session_scope(self.engine) as session:
            moved = record_outcome(
                session,
                target_id=target_id,
                claimed_version=claimed_version,
                attempt_id=attempt_id,
                outcome=outcome,
                now=self.clock(),
            )
        if not moved:
            log.warning("publish: target %s was moved by someone else mid-publish", target_id)
            return Result.LOST
        if outcome.auth is not None:
            self._after_auth_failure(account, outcome)
        log.info(
            "publish: target %s → %s%s",
            target_id,
            outcome.status,
            f" ({outcome.error})" if outcome.error else "",
        )
        return Result(outcome.status.value)

    def _claimable(
        self, target_id: str, version: int, now: datetime
    ) -> tuple[Target, Post, Account] | None:
        """The target, its post and its account when the claim would take it now (else the
        claim decides: stale, or early)."""
        with session_scope(self.engine) as session:
            target = session.get(Target, target_id)
            if (
                target is None
                or target.status != TargetStatus.QUEUED
                or target.version != version
                or target.due_at is None
                or target.due_at > now
            ):
                return None
            account = session.get(Account, target.account_id)
            post = session.get(Post, target.post_id)
            if account is None or post is None:
                return None
            session.expunge_all()
        return target, post, account

    def _hold_for_auth(
        self, found: tuple[Target, Post, Account], version: int, now: datetime
    ) -> bool:
        """Whether the target was put back to wait for its account to be connected again."""
        target, post, account = found
        target_id = target.id
        if account.status != AccountStatus.NEEDS_REAUTH:
            return False
        until = self._reauth_deadline(target, post)
        if until <= now:
            return False  # waited long enough: the claim and the call fail it with the reason
        reason = account.status_reason or "the account must be connected again"
        moved = self._put_back(
            target_id,
            version,
            now,
            due_at=until,
            kind=NEEDS_REAUTH,
            error=waiting_reason(reason),
            # Only while it still needs re-auth: a reconnect that just released the account's
            # targets must not see this one parked for days.
            where=[
                exists().where(
                    col(Account.id) == Target.account_id,
                    col(Account.status) == AccountStatus.NEEDS_REAUTH,
                )
            ],
        )
        if moved:
            log.info(
                "publish: target %s waits for account %s to be reconnected", target_id, account.id
            )
        return moved

    def _reauth_deadline(self, target: Target, post: Post) -> datetime:
        """Until when a target waits for its account to be connected again."""
        since = post.scheduled_at or target.due_at or self.clock()
        return since + timedelta(seconds=self.settings.needs_reauth_max_wait_seconds)

    def _pace(self, found: tuple[Target, Post, Account], version: int, now: datetime) -> bool:
        """Whether the target was put back for its platform's pace."""
        if self.pacer is None:
            return False
        target, _, account = found
        target_id = target.id
        try:
            paces = self.platforms.get(account.platform).paces(account_ref(account))
        except HeraldError:
            return False  # the claim and the call report an unknown platform
        paced = self.pacer.admit(account.platform, account.id, paces) if paces else None
        if paced is None:
            return False
        moved = self._put_back(
            target_id,
            version,
            now,
            due_at=now + timedelta(seconds=paced.wait_seconds),
            kind="paced",
            error=paced.reason,
        )
        if moved:
            log.info("publish: target %s %s", target_id, paced.reason)
        return moved

    def _put_back(
        self,
        target_id: str,
        version: int,
        now: datetime,
        *,
        due_at: datetime,
        kind: str,
        error: str,
        where: list[Any] | None = None,
    ) -> bool:
        """Move a queued target back to `retrying` before it is claimed: no attempt spent."""
        with session_scope(self.engine) as session:
            return move_target(
                session,
                target_id,
                TargetStatus.QUEUED,
                version,
                where=where or (),
                status=TargetStatus.RETRYING,
                version=version + 1,
                due_at=due_at,
                queued_at=None,
                error_kind=kind,
                error=error,
                updated_at=now,
            )

    def _claim(self, target_id: str, version: int) -> tuple[Target, Post, Account, str] | None:
        now = self.clock()
        with session_scope(self.engine) as session:
            claimed = move_target(
                session,
                target_id,
                TargetStatus.QUEUED,
                version,
                # Never before its time, whatever message turns up early.
                where=[Target.due_at <= now],  # type: ignore[operator]
                status=TargetStatus.PUBLISHING,
                version=version + 1,
                started_at=now,
                updated_at=now,
                attempt_count=Target.attempt_count + 1,
            )
            if not claimed:
                return None
            target = session.get(Target, target_id)
            assert target is not None
            post = session.get(Post, target.post_id)
            account = session.get(Account, target.account_id)
            assert post is not None and account is not None
            # The attempt row is written with the claim, so a worker that dies mid-call
            # still leaves a trace for reconciliation and for people.
            attempt = Attempt(
                tenant_id=target.tenant_id,
                target_id=target.id,
                # Counted from the rows: attempt_count restarts on a person's retry and is
                # not spent by rate-limit waits, but the audit trail keeps counting.
                number=_attempts_so_far(session, target.id) + 1,
                due_at=target.due_at,
                started_at=now,
                lateness_seconds=(now - target.due_at).total_seconds() if target.due_at else None,
            )
            session.add(attempt)
            session.flush()
            return target, post, account, attempt.id

    def _raise_if_early(self, target_id: str, version: int) -> None:
        with session_scope(self.engine) as session:
            target = session.get(Target, target_id)
        if target is None or target.status != TargetStatus.QUEUED or target.version != version:
            return
        if target.due_at is not None:
            raise EarlyMessage((target.due_at - self.clock()).total_seconds())

    def _call_platform(self, target: Target, post: Post, account: Account) -> Outcome | None:
        if account.deleted_at is not None or account.status == AccountStatus.DISCONNECTED:
            return _failed(AttemptOutcome.PERMANENT, "the account was disconnected", "permanent")
        if account.status == AccountStatus.NEEDS_REAUTH:
            # Marked between the hold check and the claim: wait like the others, no call.
            reason = account.status_reason or "the account must be connected again"
            return self._needs_auth(target, post, account, reason, None, refresh=False, mark=False)
        try:
            adapter = self.platforms.get(account.platform)
            save = checkpoint_saver(self.engine, target.id, target.version)
            result = adapter.publish(
                publish_request(target, post, account, self.platforms, save_checkpoint=save)
            )
        except CredentialsUnavailable as exc:
            return self._needs_auth(target, post, account, exc.message, None, refresh=False)
        except Waiting as exc:
            return self._wait(target, post, exc)
        except TransientError as exc:
            return self._retry_or_fail(target, exc)
        except NeedsAuth as exc:
            return self._needs_auth(target, post, account, exc.message, exc.http_status)
        except OutcomeUnknown as exc:
            return Outcome(
                status=TargetStatus.UNKNOWN,
                attempt=AttemptOutcome.UNKNOWN,
                error=exc.message,
                error_kind="unknown",
                http_status=exc.http_status,
            )
        except PermanentError as exc:
            return _failed(AttemptOutcome.PERMANENT, exc.message, "permanent", exc.http_status)
        except (InvalidInput, PlatformError) as exc:
            return _failed(AttemptOutcome.PERMANENT, exc.message, "permanent")
        except HeraldError as exc:
            return _failed(AttemptOutcome.PERMANENT, exc.message, "permanent")
        except (Exception, TimeLimitExceeded):
            # A bug, a crash or the time limit inside the adapter: the post may or may not
            # have gone out, so the platform is asked before anything else is decided.
            log.exception("publish: adapter %s raised unexpectedly", account.platform)
            return None
        return Outcome(
            status=TargetStatus.PUBLISHED,
            attempt=AttemptOutcome.PUBLISHED,
            result=result,
            http_status=result.http_status,
        )

    def _needs_auth(
        self,
        target: Target,
        post: Post,
        account: Account,
        message: str,
        http_status: int | None,
        *,
        refresh: bool = True,
        mark: bool = True,
    ) -> Outcome:
        """The platform refused the account's token. The first time, the token is refreshed and
        the target tried once more after it; when a refresh did not help (or there is no way to
        refresh), the account needs to be connected again and the target waits for that,
        spending no attempt, until NEEDS_REAUTH_MAX_WAIT_SECONDS past its time.

        `account` is the row as the claim read it: the credentials this call used.
        """
        now = self.clock()
        deadline = self._reauth_deadline(target, post)
        if now >= deadline:
            return _failed(AttemptOutcome.NEEDS_AUTH, message, "needs_auth", http_status)
        authenticator = self.platforms.authenticator(account.platform)
        if refresh and authenticator is not None and authenticator.configured:
            status, refreshed_at = self._account_now(account)
            if status == AccountStatus.REFRESHING or refreshed_at != account.refreshed_at:
                # The tokens changed (or are changing) since this call began: the refusal may
                # be of the old ones. Try again shortly, without asking for another refresh.
                return self._hold_for_refresh(message, http_status, now, ask=False)
            if not self._refreshed_in_vain(target, account):
                return self._hold_for_refresh(message, http_status, now, ask=True)
        return Outcome(
            status=TargetStatus.RETRYING,
            attempt=AttemptOutcome.NEEDS_AUTH,
            error=waiting_reason(message),
            error_kind=NEEDS_REAUTH,
            http_status=http_status,
            retry_at=deadline,
            refund_attempt=True,
            auth="reauth" if mark else None,
        )

    def _hold_for_refresh(
        self, message: str, http_status: int | None, now: datetime, *, ask: bool
    ) -> Outcome:
        wait = (
            self.settings.token_refresh_lease_seconds
            if ask
            else self.settings.token_refresh_backoff_seconds
        )
        return Outcome(
            status=TargetStatus.RETRYING,
            attempt=AttemptOutcome.NEEDS_AUTH,
            error=f"{message}; refreshing the account's token, then trying once more",
            error_kind=AUTH_REFRESH,
            http_status=http_status,
            # A refresh that succeeds releases the target at once; this is the fallback.
            retry_at=now + timedelta(seconds=wait),
            refund_attempt=True,
            auth="refresh" if ask else None,
        )

    def _account_now(self, account: Account) -> tuple[str | None, datetime | None]:
        with session_scope(self.engine) as session:
            row = session.exec(
                select(Account.status, Account.refreshed_at).where(
                    Account.id == account.id, Account.tenant_id == account.tenant_id
                )
            ).first()
        return (row[0], row[1]) if row else (None, None)

    def _refreshed_in_vain(self, target: Target, account: Account) -> bool:
        """Whether the tokens this call used came from a refresh made after this target's last
        refusal: then refreshing again will not help."""
        with session_scope(self.engine) as session:
            refused_at = session.exec(
                select(Attempt.finished_at)
                .where(
                    Attempt.target_id == target.id,
                    Attempt.outcome == AttemptOutcome.NEEDS_AUTH,
                )
                .order_by(col(Attempt.number).desc())
            ).first()
        refreshed_at = account.refreshed_at
        return refused_at is not None and refreshed_at is not None and refreshed_at >= refused_at

    def _after_auth_failure(self, account: Account, outcome: Outcome) -> None:
        """Ask for the refresh, or mark the account, once the target's outcome is recorded (so
        a refresh that succeeds at once still finds the target to release)."""
        now = self.clock()
        with session_scope(self.engine) as session:
            if outcome.auth == "refresh":
                request_refresh(session, account, now, respect_backoff=True)
                return
            reason = (outcome.error or "").removeprefix(waiting_reason("")) or "refused"
            # Only the account as this call found it: still active, with the same tokens. One
            # reconnected or refreshed meanwhile is not demoted by a refusal of its old tokens.
            same_tokens = (
                col(Account.refreshed_at) == account.refreshed_at
                if account.refreshed_at is not None
                else col(Account.refreshed_at).is_(None)
            )
            where = [col(Account.status) == AccountStatus.ACTIVE, same_tokens]
            if mark_needs_reauth(session, account, reason, now, where=where):
                ACCOUNTS_NEEDING_REAUTH.labels(account.platform, "publish").inc()
            else:
                release_held_targets(session, account, now)

    def _wait(self, target: Target, post: Post, exc: Waiting) -> Outcome:
        """A rate limit, a quota, or a post still processing: wait without spending an attempt,
        up to RATE_LIMIT_MAX_WAIT_SECONDS past the post's time."""
        now = self.clock()
        since = post.scheduled_at or target.due_at or now
        waited = (now - since).total_seconds()
        wait = max(exc.retry_after or 0.0, backoff_seconds(self.settings, 1))
        kind = "rate_limited" if isinstance(exc, RateLimited) else "processing"
        if waited + wait > self.settings.rate_limit_max_wait_seconds:
            gave_up = f"{exc.message} (still waiting {waited / 3600:.1f} h after its time)"
            if isinstance(exc, StillProcessing):
                # The platform holds the post: it may yet go out, so a person decides.
                return Outcome(
                    status=TargetStatus.UNKNOWN,
                    attempt=AttemptOutcome.UNKNOWN,
                    error=gave_up + "; check the account",
                    error_kind="unknown",
                    http_status=exc.http_status,
                )
            return _failed(AttemptOutcome.RETRYABLE, gave_up + "; gave up", kind, exc.http_status)
        return Outcome(
            status=TargetStatus.RETRYING,
            attempt=AttemptOutcome.RETRYABLE,
            error=f"{exc.message}; waiting {wait:.0f} s",
            error_kind=kind,
            http_status=exc.http_status,
            retry_at=now + timedelta(seconds=wait),
            refund_attempt=True,
        )

    def _retry_or_fail(self, target: Target, exc: TransientError) -> Outcome:
        attempts = target.attempt_count
        if attempts >= self.settings.publish_max_attempts:
            return _failed(
                AttemptOutcome.RETRYABLE,
                f"{exc.message} (gave up after {attempts} attempts)",
                "retryable",
                exc.http_status,
            )
        if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER_SECONDS:
            return _failed(
                AttemptOutcome.RETRYABLE,
                f"{exc.message} (the platform asks to wait {exc.retry_after:.0f} s)",
                "retryable",
                exc.http_status,
            )
        delay = backoff_seconds(self.settings, attempts, retry_after=exc.retry_after)
        return Outcome(
            status=TargetStatus.RETRYING,
            attempt=AttemptOutcome.RETRYABLE,
            error=exc.message,
            error_kind="retryable",
            http_status=exc.http_status,
            retry_at=self.clock() + timedelta(seconds=delay),
        )


def _attempts_so_far(session: Session, target_id: str) -> int:
    return session.exec(
        select(func.count()).select_from(Attempt).where(Attempt.target_id == target_id)
    ).one()


def publish_pacer(broker: Broker, settings: Settings) -> Pacer | None:
    """The pacer publishes go through: counters beside the broker's, or None when turned off."""
    if not settings.publish_pacing:
        return None
    return Pacer(limiter_backend(broker), namespace=settings.broker_namespace)


def _failed(
    attempt: AttemptOutcome, error: str, kind: str, http_status: int | None = None
) -> Outcome:
    return Outcome(
        status=TargetStatus.FAILED,
        attempt=attempt,
        error=error,
        error_kind=kind,
        http_status=http_status,
    )
