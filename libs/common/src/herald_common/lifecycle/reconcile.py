"""Settling a target whose try may or may not have reached the platform: never by posting
blindly again.

A try ends without an outcome when its adapter raised unexpectedly (a bug, a crash, the time
limit) or its worker died mid-call; the scheduler takes the second kind over once the target
has been publishing for RECONCILE_AFTER_SECONDS. The platform is asked by idempotency key where
it can be: found → published; not found → retried with backoff until the attempt limit
(nothing went out, so trying again cannot post twice). Where it cannot be asked, the target
becomes `unknown` for a person to resolve. Only a transient failure of the lookup itself leaves
the target publishing, to be asked again later — with its attempt row written, so the try is
on record and its age is counted from when it began.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine

from herald_common.errors import HeraldError, TransientError
from herald_common.lifecycle.claim import Claim, publish_request, read_publishing
from herald_common.lifecycle.moves import Executor, move
from herald_common.lifecycle.outcome import (
    Outcome,
    backoff_seconds,
    observe,
    open_attempt,
    record_outcome,
)
from herald_common.lifecycle.states import TargetStatus
from herald_common.lifecycle.tables import ATTEMPTS
from herald_common.models import AttemptOutcome
from herald_common.platforms import LookupUnsupported, PlatformRegistry
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

if TYPE_CHECKING:
    from herald_common.webhooks import Events

log = logging.getLogger(__name__)

_OPEN_ATTEMPT = (
    select(ATTEMPTS.c.id, ATTEMPTS.c.started_at)
    .where(ATTEMPTS.c.target_id == bindparam("w_id"), ATTEMPTS.c.outcome.is_(None))
    .order_by(ATTEMPTS.c.number.desc())
    .limit(1)
)

FOR_A_PERSON = (
    "so it is not sent again automatically: check the account and say what you found "
    "(POST /v1/posts/{post_id}/targets/{target_id}/resolve: published with its URL, "
    "not_published, or retry)"
)


def _open_attempt(db: Executor, claim: Claim) -> tuple[str, datetime]:
    """The try's open attempt row (written now when there is none): its id and start."""
    row = db.execute(_OPEN_ATTEMPT, {"w_id": claim.target_id}).first()
    if row is not None:
        return str(row[0]), row[1]
    return open_attempt(db, claim), claim.started_at


def take_over(db: Executor, target_id: str, version: int, now: datetime) -> int | None:
    """Take a target some other try left publishing at `version` (a dead worker's): its
    attempt row is written if the try never wrote one, then the target gets a new version and
    start, so neither a second scheduler nor the original worker, if it was only slow, can
    also settle it. The new version, or None when somebody moved it first."""
    claim = read_publishing(db, target_id, version)
    if claim is None:
        return None
    _open_attempt(db, claim)
    if not move(db, target_id, TargetStatus.PUBLISHING, version, started_at=now, updated_at=now):
        return None
    return version + 1


def reconcile(
    engine: Engine,
    platforms: PlatformRegistry,
    settings: Settings,
    *,
    target_id: str,
    claimed_version: int,
    reason: str,
    events: Events | None = None,
) -> TargetStatus | None:
    """Settle a target still `publishing` at `claimed_version`; what it became, or None when
    it was not there to settle or must be asked about again later."""
    with engine.begin() as db:
        claim = read_publishing(db, target_id, claimed_version)
        if claim is None:
            return None
        attempt_id, tried_at = _open_attempt(db, claim)
    # The try's own start (a takeover restarts the target's `started_at`, not the attempt's).
    claim = replace(claim, started_at=tried_at)
    now = utcnow()
    outcome = _ask(platforms, settings, claim, reason, now)
    if outcome is None:
        return None
    with engine.begin() as db:
        moved = record_outcome(db, claim, outcome, now, attempt_id=attempt_id)
    if moved:
        observe(claim, outcome, now)
        if events is not None:
            events.target_settled(claim, outcome)
    return outcome.status if moved else None


def _ask(
    platforms: PlatformRegistry, settings: Settings, claim: Claim, reason: str, now: datetime
) -> Outcome | None:
    """What the platform says of the try; None when it must be asked again later."""
    platform = claim.platform
    try:
        found = platforms.get(platform).lookup(publish_request(claim, platforms))
    except TransientError as exc:  # the platform could not be asked now: ask again later...
        stuck_for = (now - claim.started_at).total_seconds()
        if stuck_for < settings.reconcile_give_up_seconds:
            log.warning("reconcile: lookup of target %s failed: %s", claim.target_id, exc.message)
            return None
        # ...but not for ever: a target nobody can cancel must reach a person.
        return unknown(
            f"{reason}; asking {platform} kept failing for {stuck_for / 3600:.1f} h "
            f"({exc.message}), " + FOR_A_PERSON
        )
    except LookupUnsupported:
        return unknown(
            f"{reason}; {platform} gives no way to ask whether the post went out, " + FOR_A_PERSON
        )
    except HeraldError as exc:
        return unknown(f"{reason}; asking {platform} failed ({exc.message}), " + FOR_A_PERSON)
    except Exception as exc:
        log.exception("reconcile: lookup of target %s raised", claim.target_id)
        return unknown(
            f"{reason}; asking {platform} failed ({type(exc).__name__}), " + FOR_A_PERSON
        )
    if found is not None:
        return Outcome(
            status=TargetStatus.PUBLISHED, attempt=AttemptOutcome.PUBLISHED, result=found
        )
    if claim.attempt_count >= settings.publish_max_attempts:
        return Outcome(
            status=TargetStatus.FAILED,
            attempt=AttemptOutcome.RETRYABLE,
            error=f"{reason}; the platform has no such post (gave up after "
            f"{claim.attempt_count} attempts)",
            error_kind="retryable",
        )
    return Outcome(
        status=TargetStatus.RETRYING,
        attempt=AttemptOutcome.RETRYABLE,
        error=f"{reason}; the platform has no such post, so it is sent again",
        error_kind="retryable",
        retry_at=now + timedelta(seconds=backoff_seconds(settings, claim.attempt_count)),
    )


def unknown(error: str) -> Outcome:
    """An outcome only a person can settle."""
    return Outcome(
        status=TargetStatus.UNKNOWN,
        attempt=AttemptOutcome.UNKNOWN,
        error=error,
        error_kind="unknown",
    )
