"""Telling a request's approvers — the work of one `approval.notify` message — with each notice
sent at most once however often the message runs.

A request is told on each channel of its notification type: by email to each approver's
address, by WhatsApp to each approver's number, and by one webhook event to its URL. Each
(request, kind, channel, recipient) is one ApprovalNotice row, unique, and the row is the claim:

1. the first try inserts it `sending`; a later run that finds it `sent` or `failed` skips it;
2. the send settles it: `sent` (with the provider's id), `failed` with the reason when trying
   again cannot help (a channel not configured, a refused address, a 4xx), or `retrying` with
   the reason when it can. The message then raises and Dramatiq runs it again with the
   contract's backoff; that run claims the `retrying` notices (compare-and-set) and skips the
   rest. On the message's last try a notice still failing is `failed` ("gave up after …").
3. A notice found `sending` is being sent by another copy of the message (the scheduler
   resent one that was slow), or its worker stopped mid-send. Until STALE_AFTER has passed
   this run leaves it and tries again later; after, it takes it over and sends it — the one
   case where an approver may get a message twice, rather than never. A notice's
   `created_at` is when its current try began.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from herald_approval import messages
from herald_approval.messages import Request
from herald_common.contracts import NOTIFY_APPROVERS, NotifyApproversPayload
from herald_common.db import session_scope
from herald_common.errors import PermanentError, TransientError
from herald_common.logs import redact
from herald_common.models import (
    Account,
    Approval,
    ApprovalNotice,
    ApprovalStatus,
    Brand,
    Post,
    Target,
    TargetStatus,
)
from herald_common.notify import ADDRESS, CHANNELS, EmailSender, WebhookSender, WhatsAppSender
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)


#: A notice `sending` for longer cannot still be in flight: the actor's time limit has killed
#: its try, allowing for a send blocked in a socket up to its own timeout.
STALE_AFTER = timedelta(milliseconds=NOTIFY_APPROVERS.time_limit_ms, seconds=60)
#: How much of an error a notice keeps.
MAX_ERROR_CHARS = 1000

SENDING, RETRYING, SENT, FAILED = "sending", "retrying", "sent", "failed"
#: What `_claim` says of a notice another run is sending.
IN_FLIGHT = "in flight"


class NoticesPending(TransientError):
    """Raised when some notices could not be sent yet: Dramatiq runs the message again."""


@dataclass(frozen=True)
class Senders:
    """One sender per channel."""

    email: EmailSender
    whatsapp: WhatsAppSender
    webhook: WebhookSender


@dataclass(frozen=True)
class Planned:
    """A notice to send: the channel, its recipient, and the approver it is for (none for
    the webhook, which carries them all)."""

    channel: str
    recipient: str
    approver: Mapping[str, Any] | None = None


@dataclass
class Report:
    """What one run did, by recipient."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


def plan(approval: Approval) -> list[Planned]:
    """Every notice the request calls for, in a stable order."""
    channels = CHANNELS.get(approval.notification_type, ("email",))
    planned: list[Planned] = []
    for approver in approval.approvers:
        reachable = [c for c in channels if c in ADDRESS and approver.get(ADDRESS[c])]
        for channel in reachable:
            address = str(approver[ADDRESS[channel]]).strip()
            recipient = address.lower() if channel == "email" else _digits(address)
            planned.append(Planned(channel, recipient, approver))
        if not reachable and "webhook" not in channels:
            # Kept as a failed notice, so the request shows why this approver was not told.
            planned.append(Planned(channels[0], f"({approver.get('name') or 'approver'})", None))
    if "webhook" in channels:
        planned.append(Planned("webhook", approval.webhook_url or "(no webhook_url)"))
    return planned


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


class Notifier:
    """Sends a request's notices; collaborators handed in."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        senders: Senders,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._senders = senders
        self._clock = clock
        self._domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "herald.invalid"

    def notify(self, payload: NotifyApproversPayload, *, last_try: bool = False) -> Report:
        """Send every notice of the request `payload` names that is not sent yet.

        Raises NoticesPending when some could not be sent yet and this is not the last try.
        """
        report = Report()
        request = self._request(payload)
        if request is None:
            return report
        kind = "reminder" if payload.reminder else "request"
        for planned in plan(request.approval):
            label = f"{planned.channel}:{planned.recipient}"
            claim = self._claim(request.approval, kind, planned)
            if claim is None:
                report.skipped.append(label)
                continue
            if isinstance(claim, str):
                report.pending.append(label)
                continue
            status = self._send(request, kind, planned, claim, last_try=last_try)
            getattr(report, {SENT: "sent", FAILED: "failed"}.get(status, "pending")).append(label)
        log.info(
            "approval %s %s: %d sent, %d failed, %d already done, %d to try again",
            request.approval.id,
            kind,
            len(report.sent),
            len(report.failed),
            len(report.skipped),
            len(report.pending),
        )
        if report.pending and not last_try:
            raise NoticesPending(
                f"approval {request.approval.id}: {len(report.pending)} notice(s) to try again "
                f"({', '.join(report.pending)})"
            )
        return report

    # --- the request ---------------------------------------------------------------------

    def _request(self, payload: NotifyApproversPayload) -> Request | None:
        """The pending request the message names; None (logged) when there is nothing to tell."""
        with session_scope(self._engine) as session:
            approval = session.get(Approval, payload.approval_id)
            if (
                approval is None
                or approval.tenant_id != payload.tenant_id
                or approval.post_id != payload.post_id
            ):
                log.warning(
                    "approval %s of post %s (tenant %s) not found: nothing to send",
                    payload.approval_id,
                    payload.post_id,
                    payload.tenant_id,
                )
                return None
            if approval.status != ApprovalStatus.PENDING:
                log.info("approval %s is %s: nothing to send", approval.id, approval.status)
                return None
            post = session.get(Post, approval.post_id)
            if post is None:
                return None
            brand = session.get(Brand, post.brand_id) if post.brand_id else None
            accounts = session.exec(
                select(Account.handle, Account.platform)
                .join(Target, col(Target.account_id) == col(Account.id))
                .where(Target.post_id == post.id, Target.status != TargetStatus.CANCELED)
                .order_by(col(Account.handle))
            ).all()
        return Request(
            approval=approval,
            post=post,
            brand=brand.name if brand else None,
            accounts=tuple(f"{h if h.startswith('@') else '@' + h} on {p}" for h, p in accounts),
            public_url=self._settings.public_url,
            reminder=payload.reminder,
        )

    # --- claiming and settling notices ---------------------------------------------------

    def _claim(
        self, approval: Approval, kind: str, planned: Planned
    ) -> tuple[str, datetime] | str | None:
        """(notice id, claimed at) when this run is to send the notice; None when it is
        settled; IN_FLIGHT when another run is sending it."""
        now = self._clock()
        key = (
            col(ApprovalNotice.approval_id) == approval.id,
            col(ApprovalNotice.kind) == kind,
            col(ApprovalNotice.channel) == planned.channel,
            col(ApprovalNotice.recipient) == planned.recipient,
        )
        with session_scope(self._engine) as session:
            notice = session.exec(select(ApprovalNotice).where(*key)).first()
        if notice is None:
            notice = ApprovalNotice(
                tenant_id=approval.tenant_id,
                approval_id=approval.id,
                kind=kind,
                channel=planned.channel,
                recipient=planned.recipient,
                status=SENDING,
                created_at=now,
            )
            try:
                with session_scope(self._engine) as session:
                    session.add(notice)
                return notice.id, now
            except IntegrityError:  # another run inserted it first
                with session_scope(self._engine) as session:
                    notice = session.exec(select(ApprovalNotice).where(*key)).one()
        if notice.status in (SENT, FAILED):
            return None
        stale = notice.status == SENDING and notice.created_at < now - STALE_AFTER
        if notice.status == RETRYING or stale:
            with session_scope(self._engine) as session:
                taken: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                    update(ApprovalNotice)
                    .where(
                        col(ApprovalNotice.id) == notice.id,
                        col(ApprovalNotice.status) == notice.status,
                        col(ApprovalNotice.created_at) == notice.created_at,
                    )
                    .values(status=SENDING, created_at=now)
                )
            if taken.rowcount:
                if stale:
                    log.warning(
                        "notice %s was left sending since %s (its worker stopped?); sending "
                        "it again",
                        notice.id,
                        notice.created_at.isoformat(),
                    )
                return notice.id, now
        return IN_FLIGHT

    def _settle(
        self,
        notice_id: str,
        claimed_at: datetime,
        status: str,
        *,
        error: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "error": error}
        if status == SENT:
            values.update(sent_at=self._clock(), provider_id=(provider_id or None))
        with session_scope(self._engine) as session:
            session.execute(
                update(ApprovalNotice)
                .where(
                    col(ApprovalNotice.id) == notice_id,
                    col(ApprovalNotice.status) == SENDING,
                    col(ApprovalNotice.created_at) == claimed_at,
                )
                .values(**values)
            )

    # --- sending ---------------------------------------------------------------------------

    def _send(
        self,
        request: Request,
        kind: str,
        planned: Planned,
        claim: tuple[str, datetime],
        *,
        last_try: bool,
    ) -> str:
        """Send one claimed notice and settle it; its new status."""
        notice_id, claimed_at = claim
        try:
            provider_id = self._deliver(request, planned, notice_id)
        except PermanentError as exc:
            reason = _reason(exc.message)
            log.warning("notice %s (%s) failed: %s", notice_id, planned.channel, reason)
            self._settle(notice_id, claimed_at, FAILED, error=reason)
            return FAILED
        except Exception as exc:
            if isinstance(exc, TransientError):
                reason = _reason(exc.message)
            else:
                log.exception("notice %s (%s) raised", notice_id, planned.channel)
                reason = _reason(f"{type(exc).__name__}: {exc}")
            if last_try:
                reason = f"gave up after {NOTIFY_APPROVERS.retry.max_retries + 1} tries: {reason}"
                self._settle(notice_id, claimed_at, FAILED, error=reason)
                return FAILED
            log.warning("notice %s (%s): %s; trying again", notice_id, planned.channel, reason)
            self._settle(notice_id, claimed_at, RETRYING, error=reason)
            return RETRYING
        self._settle(notice_id, claimed_at, SENT, provider_id=provider_id)
        return SENT

    def _deliver(self, request: Request, planned: Planned, notice_id: str) -> str | None:
        """Send one notice on its channel; the provider's id for it, when there is one."""
        if planned.approver is None and planned.channel != "webhook":
            raise PermanentError(
                f"the approver has no {ADDRESS.get(planned.channel, planned.channel)} to send "
                f"{request.approval.notification_type} notices to"
            )
        if planned.channel == "email":
            assert planned.approver is not None
            email = messages.email_for(
                request, planned.approver, notice_id=notice_id, domain=self._domain
            )
            return self._senders.email.send(email)
        if planned.channel == "whatsapp":
            assert planned.approver is not None
            text = messages.whatsapp_text(request, planned.approver)
            return self._senders.whatsapp.send(planned.recipient, text)
        url = request.approval.webhook_url
        if not url:
            raise PermanentError("the request has no webhook_url")
        event = messages.webhook_event(request, notice_id=notice_id)
        status = self._senders.webhook.send(
            url,
            request.event,
            event,
            idempotency_key=notice_id,
            tenant_id=request.approval.tenant_id,
        )
        return f"HTTP {status}"


def _reason(text: str) -> str:
    return redact(text)[:MAX_ERROR_CHARS]
