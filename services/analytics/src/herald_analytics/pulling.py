"""Pulling the metrics of published targets. Plain functions: no Dramatiq in here.

Two kinds of pull arrive on the `analytics` queue:

- a client's (`job_id` set, from POST /v1/analytics/pull): it runs through `run_job`, selects
  the tenant's published targets (of `post_ids`, published between `start` and `end`, dates
  inclusive, UTC), and reports progress per target. One target failing does not fail the job:
  its reason is in the result. Only when every target failed for a passing reason (a rate
  limit, an outage) does the run raise, so that Dramatiq tries it again later.
- the scheduler's (`target_ids` set, no job): the targets whose slot came. A passing failure
  leaves the target for its next slot (the scheduler has already moved it there).

Each pull of a target writes one MetricSnapshot with the metrics asked for (the others None,
as are those the platform does not give). What goes wrong is classified like publishing:

- RateLimited: the account's other targets in this pull are skipped too (asking on would only
  prolong the wait); TransientError: this target waits for its next pull.
- NeedsAuth: a token refresh is asked for (as the publisher does after a 401), and the
  account's other targets are skipped; the refresh-token machinery does the rest.
- PermanentError (the post was deleted, the platform gives no metrics, a scope the token lacks):
  the target's pulls stop (`metrics_due_at` = NULL) and the reason is logged.

One account's targets are pulled one after another, never in parallel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from herald_common.analytics import METRICS
from herald_common.contracts import PullAnalyticsPayload
from herald_common.crypto import CredentialsUnavailable
from herald_common.db import session_scope
from herald_common.errors import HeraldError, NeedsAuth, RateLimited, TransientError
from herald_common.jobs import JobRun
from herald_common.models import Account, AccountStatus, MetricSnapshot, Target, TargetStatus
from herald_common.platforms import (
    MetricsRequest,
    Platform,
    PlatformRegistry,
    PostMetrics,
    account_ref,
)
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.tokens import request_refresh

log = logging.getLogger(__name__)

#: Called after each target: (targets done so far, the session that wrote its snapshot or None).
Progress = Callable[[int, Session | None], None]


class EveryTargetWaits(TransientError):
    """Raised when no target of a client's pull could be read for a passing reason: the job
    is tried again later."""


@dataclass(frozen=True)
class Failure:
    """A target whose metrics could not be read, and why."""

    target_id: str
    reason: str
    transient: bool


@dataclass
class PullReport:
    """What one pull did."""

    targets: int = 0
    snapshots: int = 0
    failed: list[Failure] = field(default_factory=list)

    def as_result(self) -> dict[str, Any]:
        """The job's result."""
        return {
            "targets": self.targets,
            "snapshots": self.snapshots,
            "failed": [{"target_id": f.target_id, "reason": f.reason} for f in self.failed],
        }


@dataclass
class _Batch:
    """One pull under way: its report, the metrics asked for, and its progress."""

    report: PullReport
    wanted: frozenset[str]
    progress: Progress | None
    done: int = 0

    def finished(self, session: Session | None) -> None:
        """One more target done (its snapshot written in `session`, if any)."""
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, session)


@dataclass(frozen=True)
class _Source:
    """Where one account's metrics come from: its adapter, and its secrets for this pull."""

    adapter: Platform
    account: Account
    credentials: dict[str, Any] = field(repr=False)


def published_between(start: date | None, end: date | None) -> list[Any]:
    """SQL conditions: published on `start` or later, on `end` or earlier (UTC days)."""
    conditions: list[Any] = []
    if start is not None:
        conditions.append(col(Target.published_at) >= datetime.combine(start, time.min, UTC))
    if end is not None:
        after = datetime.combine(end + timedelta(days=1), time.min, UTC)
        conditions.append(col(Target.published_at) < after)
    return conditions


@dataclass
class Puller:
    """Pulls targets' metrics; collaborators handed in."""

    engine: Engine
    platforms: PlatformRegistry
    settings: Settings
    clock: Callable[[], datetime] = field(default=utcnow)

    # -- the two kinds of pull --------------------------------------------------------------

    def pull_job(self, run: JobRun) -> dict[str, Any]:
        """A client's pull, as `run_job`'s work: its result, or EveryTargetWaits."""
        payload = PullAnalyticsPayload.model_validate(run.payload, strict=False)
        target_ids = self.select(run.tenant_id, payload)
        # A later try (the last one ran out of time or lost its worker) carries on: targets
        # read since the job was accepted are not asked again.
        since = run.created_at or run.clock()
        done = self.read_since(target_ids, since) if run.attempt > 1 else set()
        target_ids = [t for t in target_ids if t not in done]
        run.progress(len(done), len(done) + len(target_ids))
        report = self.pull(
            run.tenant_id,
            target_ids,
            payload.metrics,
            progress=lambda count, session: run.progress(len(done) + count, session=session),
        )
        if report.targets and not report.snapshots and all(f.transient for f in report.failed):
            reasons = "; ".join(sorted({f.reason for f in report.failed}))
            raise EveryTargetWaits(f"no target could be read for now ({reasons})")
        return report.as_result()

    def pull_due(self, payload: PullAnalyticsPayload) -> PullReport:
        """The scheduler's pull of the targets whose slot came."""
        report = self.pull(payload.tenant_id, payload.target_ids or [], payload.metrics)
        log.info(
            "analytics: pulled %d of %d due target(s) of tenant %s (%d failed)",
            report.snapshots,
            report.targets,
            payload.tenant_id,
            len(report.failed),
        )
        return report

    def read_since(self, target_ids: Sequence[str], since: datetime) -> set[str]:
        """Those of the targets with a snapshot taken at `since` or later."""
        with session_scope(self.engine) as session:
            found: set[str] = set()
            for chunk in range(0, len(target_ids), 500):
                found |= set(
                    session.exec(
                        select(MetricSnapshot.target_id).where(
                            col(MetricSnapshot.target_id).in_(target_ids[chunk : chunk + 500]),
                            col(MetricSnapshot.taken_at) >= since,
                        )
                    ).all()
                )
            return found

    def select(self, tenant_id: str, payload: PullAnalyticsPayload) -> list[str]:
        """The tenant's published targets a client's pull covers, oldest first."""
        query = select(Target.id).where(
            col(Target.tenant_id) == tenant_id,
            col(Target.status) == TargetStatus.PUBLISHED,
            *published_between(payload.start, payload.end),
        )
        if payload.post_ids is not None:
            query = query.where(col(Target.post_id).in_(payload.post_ids))
        if payload.target_ids is not None:
            query = query.where(col(Target.id).in_(payload.target_ids))
        with session_scope(self.engine) as session:
            return list(
                session.exec(query.order_by(col(Target.published_at), col(Target.id))).all()
            )

    # -- pulling ----------------------------------------------------------------------------

    def pull(
        self,
        tenant_id: str,
        target_ids: Sequence[str],
        metrics: Iterable[str],
        *,
        progress: Progress | None = None,
    ) -> PullReport:
        """Pull these targets of the tenant (published ones; others are left out), one
        account at a time, and write a snapshot of each."""
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(Target, Account)
                .join(Account, col(Account.id) == col(Target.account_id))
                .where(
                    col(Target.tenant_id) == tenant_id,
                    col(Target.id).in_(list(target_ids)),
                    col(Target.status) == TargetStatus.PUBLISHED,
                )
                .order_by(col(Target.account_id), col(Target.published_at), col(Target.id))
            ).all()
            session.expunge_all()
        by_account: dict[str, tuple[Account, list[Target]]] = {}
        for target, account in rows:
            by_account.setdefault(account.id, (account, []))[1].append(target)
        batch = _Batch(
            report=PullReport(targets=len(rows)),
            wanted=frozenset(metrics) & frozenset(METRICS),
            progress=progress,
        )
        for account, targets in by_account.values():
            self._pull_account(account, targets, batch)
        return batch.report

    def _pull_account(self, account: Account, targets: list[Target], batch: _Batch) -> None:
        skip, final = self._refusal(account)
        source: _Source | None = None
        if skip is None:
            try:
                adapter = self.platforms.get(account.platform)
                credentials = self.platforms.credentials_of(account)
            except CredentialsUnavailable as exc:
                skip = f"the account's credentials cannot be read: {exc.message}"
            except HeraldError as exc:
                skip, final = exc.message, True
            else:
                source = _Source(adapter, account, credentials)
        for target in targets:
            if source is None or skip is not None:
                self._failed(batch.report, target, skip or "skipped", transient=not final)
                batch.finished(None)
                continue
            skip = self._pull_one(source, target, batch)

    def _refusal(self, account: Account) -> tuple[str | None, bool]:
        """Why none of this account's targets can be pulled now, and whether that is final."""
        if account.deleted_at is not None or account.status == AccountStatus.DISCONNECTED:
            return "the account was disconnected", True
        if account.status == AccountStatus.NEEDS_REAUTH:
            reason = account.status_reason or "its token was refused"
            return f"the account must be connected again ({reason})", False
        return None, False

    def _pull_one(self, source: _Source, target: Target, batch: _Batch) -> str | None:
        """Pull one target and report it finished. Returns why the account's remaining
        targets are skipped, if they are (a rate limit, a refused token)."""
        now = self.clock()
        metrics, skip = self._read(source, target, batch.report, now)
        if metrics is None or not self._store(target, metrics, now, batch):
            batch.finished(None)
        return skip

    def _read(
        self, source: _Source, target: Target, report: PullReport, now: datetime
    ) -> tuple[PostMetrics | None, str | None]:
        """The target's metrics (None when they could not be read, recorded in the report),
        and why the account's other targets are to be skipped, if they are."""
        if not target.platform_post_id:
            self._failed(report, target, "the platform gave no id for this post", transient=False)
            return None, None
        request = MetricsRequest(
            account=account_ref(source.account, source.credentials),
            platform_post_id=target.platform_post_id,
            url=target.platform_url,
            published_at=target.published_at,
            checkpoint=dict(target.checkpoint or {}),
            now=now,
        )
        try:
            return source.adapter.metrics(request), None
        except RateLimited as exc:
            self._failed(report, target, exc.message, transient=True)
            return None, f"skipped: {exc.message}"
        except NeedsAuth as exc:
            self._failed(report, target, exc.message, transient=True)
            self._ask_refresh(source.account)
            return None, f"skipped: {exc.message}; the account's token is being refreshed"
        except TransientError as exc:
            self._failed(report, target, exc.message, transient=True)
        except HeraldError as exc:  # PermanentError and the like: asking again cannot help
            self._failed(report, target, exc.message, transient=False)
        except Exception as exc:
            log.exception("analytics: %s raised reading target %s", source.adapter.name, target.id)
            self._failed(report, target, f"unexpected error ({type(exc).__name__})", True)
        return None, None

    def _store(self, target: Target, metrics: PostMetrics, now: datetime, batch: _Batch) -> bool:
        """Write the snapshot (reporting the target finished in the same transaction); False
        when its target is gone."""
        snapshot = MetricSnapshot(
            tenant_id=target.tenant_id,
            target_id=target.id,
            post_id=target.post_id,
            account_id=target.account_id,
            platform=target.platform,
            taken_at=now,
            extra=dict(metrics.extra),
        )
        for name in METRICS:  # only what was asked for; a metric not given stays None
            setattr(snapshot, name, getattr(metrics, name) if name in batch.wanted else None)
        try:
            with session_scope(self.engine) as session:
                session.add(snapshot)
                session.flush()
                batch.finished(session)  # the job's progress commits with the snapshot
        except IntegrityError:  # its target went with its post in the meantime
            self._failed(batch.report, target, "the post was deleted meanwhile", transient=False)
            return False
        batch.report.snapshots += 1
        return True

    def _failed(self, report: PullReport, target: Target, reason: str, transient: bool) -> None:
        report.failed.append(Failure(target.id, reason, transient))
        if transient:
            return
        # Asking again cannot help: no more pulls of this target.
        with session_scope(self.engine) as session:
            session.execute(
                update(Target)
                .where(col(Target.id) == target.id, col(Target.tenant_id) == target.tenant_id)
                .values(metrics_due_at=None)
            )
        log.warning("analytics: target %s: %s; its metrics are no longer pulled", target.id, reason)

    def _ask_refresh(self, account: Account) -> None:
        """Ask the token-refresher to renew the account's tokens, as after a 401 when
        publishing (a refresh that keeps failing keeps its backoff)."""
        authenticator = self.platforms.authenticator(account.platform)
        if authenticator is None or not authenticator.configured:
            return
        if account.status != AccountStatus.ACTIVE:
            return
        with session_scope(self.engine) as session:
            request_refresh(session, account, self.clock(), respect_backoff=True)
        log.info("analytics: asked for a token refresh of account %s", account.id)
