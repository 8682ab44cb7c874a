"""Publishing one target, exactly once. Plain functions: no Dramatiq in here.

1. Claim: one compare-and-set, queued at the message's version → publishing, which also brings
   the post and the account (herald_common.lifecycle.claim). Zero rows means the message is a
   duplicate or stale (the post was edited, rescheduled or canceled since): acknowledge it and
   publish nothing; or early: send it again for its time.
2. Hold or pace: when the account must be connected again, or the platform's documented rate
   (Platform.paces) is used up, the target goes back on the schedule (`retrying`) without
   spending an attempt.
3. Call the platform with an idempotency key derived from the target (and the checkpoint an
   earlier try of a multi-step publish left).
4. Record the outcome, the attempt row and the post's status in one transaction (with the
   platform's own bookkeeping, where it keeps some in Herald's database: the sandbox).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from dramatiq.broker import Broker
from dramatiq.middleware.time_limit import TimeLimitExceeded
from sqlalchemy import exists
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_common import lifecycle
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
from herald_common.hot import Hot
from herald_common.lifecycle import Claim, Outcome, backoff_seconds
from herald_common.lifecycle.claim import AccountRow
from herald_common.metrics import ACCOUNTS_NEEDING_REAUTH, PUBLISH_MESSAGES_STALE
from herald_common.models import Account, AccountStatus, Attempt, AttemptOutcome, TargetStatus
from herald_common.pacing import Pacer, limiter_backend
from herald_common.platforms import AccountFields, PlatformRegistry, account_ref
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.tokens import (
    AUTH_REFRESH,
    NEEDS_REAUTH,
    mark_needs_reauth,
    release_held_targets,
    request_refresh,
    waiting_reason,
)
from herald_common.webhooks import Events

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
    #: Tenants' outcome webhooks (None: none emitted). With no endpoints a tenant costs no
    #: statement: whether it has any is known in memory.
    events: Events | None = None
    hot: Hot = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.hot = Hot(self.engine)

    def publish(self, target_id: str, version: int) -> Result:
        """Handle one publish message for `target_id` at `version`."""
        now = self.clock()
        claim = lifecycle.claim(self.hot, target_id, version, now)
        if claim is None:
            due_at = lifecycle.queued_due_at(self.engine, target_id, version)
            if due_at is not None:  # still queued at this version: the message came early
                raise EarlyMessage((due_at - self.clock()).total_seconds())
            PUBLISH_MESSAGES_STALE.inc()
            log.debug("publish: target %s v%s is not queued at that version", target_id, version)
            return Result.STALE
        held = self._hold_for_auth(claim, now)
        if held is not None:
            if held:
                return Result.HELD
            claim = self._with_account_now(claim)
        if self._pace(claim, now):
            return Result.PACED
        outcome = self._call_platform(claim)
        if outcome is None:  # the call ended in a way that says nothing of the platform's state
            status = lifecycle.reconcile(
                self.engine,
                self.platforms,
                self.settings,
                target_id=target_id,
                claimed_version=claim.version,
                reason="the publish call ended unexpectedly",
                events=self.events,
            )
            return Result(status.value) if status else Result.LOST
        if not self._record(claim, outcome):
            log.warning("publish: target %s was moved by someone else mid-publish", target_id)
            return Result.LOST
        if outcome.auth is not None:
            self._after_auth_failure(claim.account, outcome)
        if self.events is not None:
            self.events.target_settled(claim, outcome)
        if outcome.status == TargetStatus.PUBLISHED:
            log.debug("publish: target %s → published", target_id)
        else:
            log.info(
                "publish: target %s → %s%s",
                target_id,
                outcome.status,
                f" ({outcome.error})" if outcome.error else "",
            )
        return Result(outcome.status.value)

    def _record(self, claim: Claim, outcome: Outcome) -> bool:
        """Record the outcome in one transaction (one round trip on PostgreSQL), with the
        platform's own bookkeeping when it keeps some in Herald's database (the sandbox's
        delivery), written only if the outcome is."""
        now = self.clock()
        result = outcome.result
        with self.hot.transaction() as db:
            recorded = lifecycle.record_outcome(
                db,
                claim,
                outcome,
                now,
                bookkeeping=result.with_outcome if result is not None else None,
            )
        if not recorded:
            return False
        lifecycle.observe(claim, outcome, now)
        return True

    def _hold_for_auth(self, claim: Claim, now: datetime) -> bool | None:
        """Put the target back to wait for its account to be connected again: True when it
        was, None when there is no reason to; False when the account was reconnected since the
        claim read it (the caller reads it again and goes on)."""
        account = claim.account
        if account.status != AccountStatus.NEEDS_REAUTH:
            return None
        until = self._reauth_deadline(claim)
        if until <= now:
            return None  # waited long enough: the call fails it with the reason
        reason = account.status_reason or "the account must be connected again"
        with self.engine.begin() as db:
            held = lifecycle.put_back(
                db,
                claim,
                now,
                due_at=until,
                kind=NEEDS_REAUTH,
                error=waiting_reason(reason),
                # Only while it still needs re-auth: a reconnect that just released the
                # account's targets must not see this one parked for days.
                where=[
                    exists().where(
                        col(Account.id) == claim.account.id,
                        col(Account.status) == AccountStatus.NEEDS_REAUTH,
                    )
                ],
            )
        if held:
            log.info(
                "publish: target %s waits for account %s to be reconnected",
                claim.target_id,
                account.id,
            )
        return held

    def _with_account_now(self, claim: Claim) -> Claim:
        with session_scope(self.engine) as session:
            account = session.get(Account, claim.account.id)
            if account is not None:
                session.expunge(account)
        return replace(claim, account=account) if account is not None else claim

    def _reauth_deadline(self, claim: Claim) -> datetime:
        """Until when a target waits for its account to be connected again."""
        since = claim.since or self.clock()
        return since + timedelta(seconds=self.settings.needs_reauth_max_wait_seconds)

    def _pace(self, claim: Claim, now: datetime) -> bool:
        """Whether the target was put back for its platform's pace."""
        if self.pacer is None:
            return False
        account = claim.account
        try:
            paces = self.platforms.get(account.platform).paces(account_ref(account))
        except HeraldError:
            return False  # the call reports an unknown platform
        paced = self.pacer.admit(account.platform, account.id, paces) if paces else None
        if paced is None:
            return False
        with self.engine.begin() as db:
            moved = lifecycle.put_back(
                db,
                claim,
                now,
                due_at=now + timedelta(seconds=paced.wait_seconds),
                kind="paced",
                error=paced.reason,
            )
        if moved:
            log.info("publish: target %s %s", claim.target_id, paced.reason)
        return moved

    def _call_platform(self, claim: Claim) -> Outcome | None:
        account = claim.account
        if account.deleted_at is not None or account.status == AccountStatus.DISCONNECTED:
            return _failed(AttemptOutcome.PERMANENT, "the account was disconnected", "permanent")
        if account.status == AccountStatus.NEEDS_REAUTH:
            # It waited long enough (or was marked after the claim read it): no call.
            reason = account.status_reason or "the account must be connected again"
            return self._needs_auth(claim, reason, None, refresh=False, mark=False)
        try:
            adapter = self.platforms.get(account.platform)
            save = lifecycle.checkpoint_saver(self.engine, claim.target_id, claim.version)
            result = adapter.publish(
                lifecycle.publish_request(claim, self.platforms, save_checkpoint=save)
            )
        except CredentialsUnavailable as exc:
            return self._needs_auth(claim, exc.message, None, refresh=False)
        except Waiting as exc:
            return self._wait(claim, exc)
        except TransientError as exc:
            return self._retry_or_fail(claim, exc)
        except NeedsAuth as exc:
            return self._needs_auth(claim, exc.message, exc.http_status)
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
        claim: Claim,
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

        `claim.account` is the row as the claim read it: the credentials this call used.
        """
        account = claim.account
        now = self.clock()
        deadline = self._reauth_deadline(claim)
        if now >= deadline:
            return _failed(AttemptOutcome.NEEDS_AUTH, message, "needs_auth", http_status)
        authenticator = self.platforms.authenticator(account.platform)
        if refresh and authenticator is not None and authenticator.configured:
            status, refreshed_at = self._account_now(account)
            if status == AccountStatus.REFRESHING or refreshed_at != account.refreshed_at:
                # The tokens changed (or are changing) since this call began: the refusal may
                # be of the old ones. Try again shortly, without asking for another refresh.
                return self._hold_for_refresh(message, http_status, now, ask=False)
            if not self._refreshed_in_vain(claim):
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

    def _account_now(self, account: AccountFields) -> tuple[str | None, datetime | None]:
        with session_scope(self.engine) as session:
            row = session.exec(
                select(Account.status, Account.refreshed_at).where(
                    Account.id == account.id, Account.tenant_id == account.tenant_id
                )
            ).first()
        return (row[0], row[1]) if row else (None, None)

    def _refreshed_in_vain(self, claim: Claim) -> bool:
        """Whether the tokens this call used came from a refresh made after this target's last
        refusal: then refreshing again will not help."""
        with session_scope(self.engine) as session:
            refused_at = session.exec(
                select(Attempt.finished_at)
                .where(
                    Attempt.target_id == claim.target_id,
                    Attempt.outcome == AttemptOutcome.NEEDS_AUTH,
                )
                .order_by(col(Attempt.number).desc())
            ).first()
        refreshed_at = claim.account.refreshed_at
        return refused_at is not None and refreshed_at is not None and refreshed_at >= refused_at

    def _after_auth_failure(self, account: AccountRow | Account, outcome: Outcome) -> None:
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
            marked = mark_needs_reauth(session, account, reason, now, where=where)
            if marked:
                ACCOUNTS_NEEDING_REAUTH.labels(account.platform, "publish").inc()
            else:
                release_held_targets(session, account, now)
        if marked and self.events is not None:
            self.events.account_needs_reauth(account, reason, now)

    def _wait(self, claim: Claim, exc: Waiting) -> Outcome:
        """A rate limit, a quota, or a post still processing: wait without spending an attempt,
        up to RATE_LIMIT_MAX_WAIT_SECONDS past the post's time."""
        now = self.clock()
        since = claim.since or now
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

    def _retry_or_fail(self, claim: Claim, exc: TransientError) -> Outcome:
        attempts = claim.attempt_count
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
