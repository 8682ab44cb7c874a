"""The approval workflow: a post is submitted, one of its approvers approves or rejects it.

The post's side lives in the state machine (services/posts.py): the gate that keeps a post of
a brand requiring approval off the schedule until its latest request is approved, the
withdrawal of a request when the post is edited, taken back, canceled or deleted, and the
post's status while its targets are drafts (`pending_approval`, `approved`).

Who acts: the tenant's API key authenticates the app, and the app (which authenticates its own
users) says which approver acts; only the request's approvers, named by email or phone, may
decide. Approvers are told by the approval service, through one `approval.notify` message sent
after the request commits (`send_request`); with the broker away the request still stands and
the scheduler's approvals sweep sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dramatiq.broker import Broker
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from herald_api.schemas.approvals import (
    ApproverIn,
    DecisionBody,
    SubmitBody,
    phone_digits,
)
from herald_api.services import posts
from herald_api.services.scheduling import resolve_schedule, to_utc, zone
from herald_common.contracts import NOTIFY_APPROVERS, NotifyApproversPayload, send
from herald_common.db import session_scope
from herald_common.errors import Conflict, FieldError, Forbidden, InvalidInput, field_errors
from herald_common.models import (
    Approval,
    ApprovalNotice,
    ApprovalStatus,
    Brand,
    Post,
    PostStatus,
)
from herald_common.notify import ADDRESS, CHANNELS
from herald_common.platforms import PlatformRegistry
from herald_common.platforms.http import PublicAddresses
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)

#: Posts that can be submitted: not sent, not already waiting. A scheduled post comes off the
#: schedule, and its time becomes the request's `scheduled_at` unless another one is given.
SUBMITTABLE = frozenset({PostStatus.DRAFT, PostStatus.APPROVED, PostStatus.SCHEDULED})

#: `updated_at` of a pending request whose message could not be sent: the sweep sends it on
#: its next pass (it resends requests with no notice untouched for JOB_REQUEUE_AFTER_SECONDS).
NEVER_SENT = datetime(1970, 1, 1, tzinfo=UTC)


# --- submitting -----------------------------------------------------------------------------


def submit(
    session: Session,
    tenant_id: str,
    post_id: str,
    body: SubmitBody,
    *,
    settings: Settings,
    addresses: PublicAddresses,
    now: datetime | None = None,
) -> tuple[Post, Approval]:
    """A new pending request for the post; the post waits for it as `pending_approval`."""
    now = now or utcnow()
    post = posts.get_post(session, tenant_id, post_id, lock=True)
    approval = _request(session, post, body, settings, now, addresses=addresses)
    if post.status == PostStatus.PENDING_APPROVAL:
        raise Conflict(
            "the post is already waiting for approval; an approver approves or rejects it, or "
            "edit it to withdraw the request"
        )
    if post.status not in SUBMITTABLE:
        raise Conflict(
            f"cannot submit a {post.status} post for approval: only a draft, approved or "
            "scheduled post that has not gone out"
        )
    session.add(approval)
    session.flush()
    posts.hold_for_approval(session, post, now)
    return post, approval


def _request(
    session: Session,
    post: Post,
    body: SubmitBody,
    settings: Settings,
    now: datetime,
    *,
    addresses: PublicAddresses,
) -> Approval:
    """The request `body` asks for, defaults taken from the post and its brand; InvalidInput
    naming every field that breaks a rule."""
    brand = session.get(Brand, post.brand_id) if post.brand_id else None
    errors: list[FieldError] = []

    approvers = _approvers(body, brand, errors)
    notification_type = body.notification_type or (brand.notification_type if brand else "email")
    channels = CHANNELS.get(notification_type)
    if channels is None:  # a brand's value this API does not know
        errors.append(
            FieldError("notification_type", f"the brand's {notification_type!r} is not known")
        )
        channels = ()
    webhook_url = body.webhook_url or (brand.webhook_url if brand else None)
    if "webhook" in channels and not webhook_url:
        errors.append(FieldError("webhook_url", f"is required for {notification_type} notices"))
    errors += addresses.errors({"webhook_url": body.webhook_url})
    people = [c for c in channels if c != "webhook"]
    if people and "webhook" not in channels:
        for index, approver in enumerate(approvers):
            if not any(approver.get(ADDRESS[c]) for c in people):
                errors.append(
                    FieldError(
                        f"approvers.{index}",
                        f"has no {' or '.join(ADDRESS[c] for c in people)} to send "
                        f"{notification_type} notices to",
                    )
                )

    if body.timezone is not None and zone(body.timezone) is None:
        errors.append(FieldError("timezone", f"{body.timezone!r} is not a known IANA time zone"))
    timezone = body.timezone
    scheduled_at: datetime | None = None
    if body.scheduled_at is not None:
        scheduled_at, time_errors = resolve_schedule(body.scheduled_at, body.timezone, now)
        errors += [e for e in time_errors if e.field != "timezone"]
    elif post.status == PostStatus.SCHEDULED and post.scheduled_at and post.scheduled_at > now:
        scheduled_at, timezone = post.scheduled_at, timezone or post.timezone
    elif post.suggested_at is not None and post.suggested_at > now:
        scheduled_at = post.suggested_at
    due_at = _due_at(body, scheduled_at, settings, now, errors)
    if errors:
        raise InvalidInput(errors)

    # Asked inside the reminder window, the request itself is the reminder: none follows it.
    reminder_at = due_at - timedelta(seconds=settings.approval_reminder_before_seconds)
    return Approval(
        tenant_id=post.tenant_id,
        post_id=post.id,
        status=ApprovalStatus.PENDING,
        approvers=approvers,
        notification_type=notification_type,
        webhook_url=webhook_url if "webhook" in channels else None,
        due_at=due_at,
        scheduled_at=scheduled_at,
        timezone=timezone or (brand.timezone if brand else None),
        requested_by=body.requested_by,
        requested_at=now,
        reminded_at=now if reminder_at <= now else None,
        updated_at=now,
    )


def _approvers(
    body: SubmitBody, brand: Brand | None, errors: list[FieldError]
) -> list[dict[str, Any]]:
    if body.approvers is not None:
        chosen = [a.model_dump(exclude_none=True) for a in body.approvers]
        if brand is not None and brand.requires_approval:
            # Whoever submits may narrow the brand's approvers, never add one (themselves).
            for index, approver in enumerate(chosen):
                named = [
                    approver_named(brand.approvers, approver[k])
                    for k in ("email", "phone")
                    if approver.get(k)
                ]
                if not any(named):
                    errors.append(
                        FieldError(
                            f"approvers.{index}",
                            f"is not one of brand {brand.name!r}'s approvers, who decide for "
                            "a brand that requires approval",
                        )
                    )
        return chosen
    if brand is None or not brand.approvers:
        where = "the post has no brand" if brand is None else f"brand {brand.name!r} has none"
        errors.append(FieldError("approvers", f"is required: {where}"))
        return []
    approvers = []
    for index, raw in enumerate(brand.approvers):
        try:
            approver = ApproverIn.model_validate(raw, strict=False)
        except ValidationError as exc:
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in field_errors(exc))
            errors.append(FieldError(f"approvers.{index}", f"the brand's approver: {reasons}"))
            continue
        approvers.append(approver.model_dump(exclude_none=True))
    return approvers


def _due_at(
    body: SubmitBody,
    scheduled_at: datetime | None,
    settings: Settings,
    now: datetime,
    errors: list[FieldError],
) -> datetime:
    if body.due_at is None:
        # Due when it is to go out, if that comes first: a later decision would miss it.
        due_at = now + timedelta(seconds=settings.approval_default_due_seconds)
        return min(due_at, scheduled_at) if scheduled_at is not None else due_at
    due_at = body.due_at
    if due_at.tzinfo is None or due_at.utcoffset() is None:
        tz = zone(body.timezone) if body.timezone else None
        if tz is None:
            if body.timezone is None:
                errors.append(FieldError("due_at", "has no UTC offset; add one or give timezone"))
            return now
        due_at = due_at.replace(tzinfo=tz, fold=0)
    in_utc = to_utc(due_at, "due_at", errors)
    if in_utc is None:
        return now
    due_at = in_utc
    if due_at <= now:
        errors.append(FieldError("due_at", "must be in the future"))
    elif scheduled_at is not None and due_at > scheduled_at:
        errors.append(
            FieldError(
                "due_at",
                f"must not be after the time the post is to go out ({scheduled_at.isoformat()})",
            )
        )
    return due_at


def send_request(engine: Engine, broker: Broker, approval: Approval) -> bool:
    """Send a committed request's `approval.notify` message; False (and the request marked
    never sent, for the scheduler's sweep) when the broker is away."""
    payload = NotifyApproversPayload(
        tenant_id=approval.tenant_id,
        post_id=approval.post_id,
        approval_id=approval.id,
        notification_type=approval.notification_type,  # type: ignore[arg-type]
    )
    try:
        send(broker, NOTIFY_APPROVERS, payload)
    except Exception as exc:
        log.warning(
            "approval %s: could not enqueue its notices (%s); the scheduler will send them",
            approval.id,
            type(exc).__name__,
        )
        with session_scope(engine) as session:
            session.execute(
                update(Approval)
                .where(
                    col(Approval.id) == approval.id,
                    col(Approval.status) == ApprovalStatus.PENDING,
                    col(Approval.updated_at) == approval.updated_at,
                )
                .values(updated_at=NEVER_SENT)
            )
        return False
    return True


# --- deciding -------------------------------------------------------------------------------


def approve(
    session: Session,
    tenant_id: str,
    post_id: str,
    body: DecisionBody,
    *,
    platforms: PlatformRegistry,
    now: datetime | None = None,
) -> Post:
    """Approve the pending request as one of its approvers. With its time still ahead the post
    is scheduled for it (the platforms' rules apply: a post that breaks one is not approved);
    without one, or when it passed while the request waited, the post is `approved`."""
    now = now or utcnow()
    post, approval = _pending(session, tenant_id, post_id, body.approver)
    _decide(session, approval, ApprovalStatus.APPROVED, body, now)
    when = approval.scheduled_at
    if when is not None and when > now:
        # No longer waiting: the gate now finds the request approved.
        post.status = PostStatus.APPROVED
        return posts.put_on_schedule(
            session, post, when, approval.timezone, platforms=platforms, now=now
        )
    posts.settle(session, post, now)
    return post


def reject(
    session: Session,
    tenant_id: str,
    post_id: str,
    body: DecisionBody,
    *,
    now: datetime | None = None,
) -> Post:
    """Reject the pending request as one of its approvers; the post is a draft again."""
    now = now or utcnow()
    post, approval = _pending(session, tenant_id, post_id, body.approver)
    _decide(session, approval, ApprovalStatus.REJECTED, body, now)
    posts.settle(session, post, now)
    return post


def _pending(session: Session, tenant_id: str, post_id: str, who: str) -> tuple[Post, Approval]:
    """The locked post and its pending request; Conflict when none waits, Forbidden when `who`
    is none of its approvers."""
    post = posts.get_post(session, tenant_id, post_id, lock=True)
    approval = posts.latest_approval(session, post.id)
    if approval is None or approval.status != ApprovalStatus.PENDING:
        last = f"; the last request was {approval.status}" if approval is not None else ""
        raise Conflict(f"no approval is pending for this post (it is {post.status}{last})")
    if approver_named(approval.approvers, who) is None:
        raise Forbidden(
            f"{who!r} is not one of this post's approvers; only they may approve or reject it "
            f"(by the email or phone number the request names: "
            f"{', '.join(_shown(a) for a in approval.approvers)})"
        )
    return post, approval


def _shown(approver: Mapping[str, Any]) -> str:
    return str(approver.get("name") or approver.get("email") or approver.get("phone"))


def approver_named(approvers: Sequence[Mapping[str, Any]], who: str) -> Mapping[str, Any] | None:
    """The approver whose email (any case) or phone number (any formatting) is `who`."""
    email = who.strip().lower()
    digits = phone_digits(who)
    for approver in approvers:
        if approver.get("email") and str(approver["email"]).strip().lower() == email:
            return approver
        if digits and approver.get("phone") and phone_digits(str(approver["phone"])) == digits:
            return approver
    return None


def _decide(
    session: Session, approval: Approval, status: ApprovalStatus, body: DecisionBody, now: datetime
) -> None:
    approver = approver_named(approval.approvers, body.approver)
    assert approver is not None
    email = approver.get("email")
    shown = f"<{email}>" if email and "@" in body.approver else f"({approver.get('phone')})"
    decided_by = f"{approver.get('name') or ''} {shown}".strip()[:320]
    # The post is locked, so this cannot miss; the condition keeps it a compare-and-set.
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Approval)
        .where(col(Approval.id) == approval.id, col(Approval.status) == ApprovalStatus.PENDING)
        .values(
            status=status,
            decided_by=decided_by,
            decided_at=now,
            comment=body.comment,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        raise Conflict("the approval request changed while it was being decided; try again")
    session.refresh(approval)


# --- reading --------------------------------------------------------------------------------


def history(
    session: Session, tenant_id: str, post_id: str
) -> list[tuple[Approval, list[ApprovalNotice]]]:
    """The post's requests, newest first, each with its notices."""
    post = posts.get_post(session, tenant_id, post_id)
    approvals = session.exec(
        select(Approval)
        .where(Approval.post_id == post.id)
        .order_by(col(Approval.requested_at).desc(), col(Approval.id).desc())
    ).all()
    notices: dict[str, list[ApprovalNotice]] = {a.id: [] for a in approvals}
    if notices:
        rows = session.exec(
            select(ApprovalNotice)
            .where(col(ApprovalNotice.approval_id).in_(list(notices)))
            .order_by(col(ApprovalNotice.created_at), col(ApprovalNotice.id))
        ).all()
        for notice in rows:
            notices[notice.approval_id].append(notice)
    return [(approval, notices[approval.id]) for approval in approvals]
