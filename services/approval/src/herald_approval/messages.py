"""What the notices say: an email (text and HTML), a WhatsApp text, a webhook event.

Every notice carries the post's text, when the decision is due, when the post goes out once
approved, and how to decide: the app the approver uses calls Herald's API with its own key.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald_common.models import Approval, Post
from herald_common.notify import Email

#: The longest post text quoted in a WhatsApp message (the body may hold 4096 characters).
WHATSAPP_QUOTE_CHARS = 2500


@dataclass(frozen=True)
class Request:
    """A pending approval request, as its notices describe it."""

    approval: Approval
    post: Post
    brand: str | None
    accounts: tuple[str, ...]  # "@handle on platform"
    public_url: str
    reminder: bool

    @property
    def event(self) -> str:
        """The webhook event: `approval.requested` or `approval.reminder`."""
        return "approval.reminder" if self.reminder else "approval.requested"

    def action_url(self, action: str) -> str:
        """The API call that approves or rejects the post."""
        return f"{self.public_url.rstrip('/')}/v1/posts/{self.post.id}/{action}"


def when(moment: datetime | None, zone_name: str | None) -> str:
    """`moment` in the request's time zone, for people: `Tue 02 Jun 2026, 14:00 (Europe/Paris)`."""
    if moment is None:
        return "not set"
    try:
        zone = ZoneInfo(zone_name) if zone_name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone, zone_name = UTC, None
    return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M") + f" ({zone_name or 'UTC'})"


def _goes_out(request: Request) -> str:
    approval = request.approval
    if approval.scheduled_at is None:
        return "Once approved it is not scheduled yet: someone schedules or publishes it."
    return f"Once approved it goes out {when(approval.scheduled_at, approval.timezone)}."


def _intro(request: Request, name: str) -> str:
    who = request.approval.requested_by or "Someone"
    brand = f" for {request.brand}" if request.brand else ""
    if request.reminder:
        return (
            f"Hello {name}, a reminder: a post{brand} still waits for your decision, due "
            f"{when(request.approval.due_at, request.approval.timezone)}."
        )
    return f"Hello {name}, {who} asks you to approve a post{brand} before it is published."


#: The longest subject: one that fits on the Subject line unfolded (RFC 5322's 78 characters),
#: since Python's email package folds a longer one before its first word.
MAX_SUBJECT_CHARS = 78 - len("Subject: ")


def subject(request: Request) -> str:
    """The email's subject line: what is asked, the brand, and the post's first words."""
    what = "Reminder: approval due" if request.reminder else "Approval needed"
    brand = f" ({request.brand[:30]})" if request.brand else ""
    head = f"{what}{brand}"
    content = request.post.content.strip()
    first_line = content.splitlines()[0] if content else ""
    room = MAX_SUBJECT_CHARS - len(head) - 2
    if not first_line or room < 10:
        return head
    if len(first_line) > room:
        # ASCII dots: a non-ASCII subject is sent as encoded words, which some readers space oddly
        first_line = first_line[: room - 3].rsplit(" ", 1)[0] + "..."
    return f"{head}: {first_line}"


def _calls(request: Request, approver_id: str) -> tuple[str, str]:
    approve = json.dumps({"approver": approver_id})
    reject = json.dumps({"approver": approver_id, "comment": "what to change"})
    return (
        f"POST {request.action_url('approve')} {approve}",
        f"POST {request.action_url('reject')} {reject}",
    )


def _facts(request: Request) -> list[str]:
    approval, post = request.approval, request.post
    facts = []
    if post.media:
        facts.append(f"With {len(post.media)} media file(s).")
    if request.accounts:
        facts.append("Accounts: " + ", ".join(request.accounts) + ".")
    facts.append(f"Decision due {when(approval.due_at, approval.timezone)}.")
    facts.append(_goes_out(request))
    return facts


def email_for(
    request: Request, approver: Mapping[str, Any], *, notice_id: str, domain: str
) -> Email:
    """The email to one approver: the post, the times and how to decide."""
    name = str(approver.get("name") or "there")
    address = str(approver["email"])
    approve, reject = _calls(request, address)
    text = "\n".join(
        [
            _intro(request, name),
            "",
            "----------",
            request.post.content,
            "----------",
            "",
            *_facts(request),
            "",
            "To decide, use the app that sent you this request; it calls Herald's API for you:",
            f"  approve: {approve}",
            f"  reject (a comment is required): {reject}",
            "",
            f"Request {request.approval.id}.",
        ]
    )
    esc = html.escape
    facts = "".join(f"<li>{esc(fact)}</li>" for fact in _facts(request))
    body = esc(request.post.content).replace("\n", "<br>")
    markup = (
        "<!doctype html><html><body>"
        f"<p>{esc(_intro(request, name))}</p>"
        f'<blockquote style="border-left:3px solid #ccc;margin:1em 0;padding:0 1em">{body}'
        "</blockquote>"
        f"<ul>{facts}</ul>"
        "<p>To decide, use the app that sent you this request; it calls Herald's API for "
        "you:</p>"
        f"<p>Approve: <code>{esc(approve)}</code><br>"
        f"Reject (a comment is required): <code>{esc(reject)}</code></p>"
        f'<p style="color:#777">Request {esc(request.approval.id)}.</p>'
        "</body></html>"
    )
    return Email(
        to=address,
        subject=subject(request),
        text=text,
        html=markup,
        message_id=f"<{notice_id}@{domain}>",
    )


def whatsapp_text(request: Request, approver: Mapping[str, Any]) -> str:
    """The WhatsApp message to one approver (plain text, within the Cloud API's 4096)."""
    name = str(approver.get("name") or "there")
    content = request.post.content
    if len(content) > WHATSAPP_QUOTE_CHARS:
        content = content[: WHATSAPP_QUOTE_CHARS - 1] + "…"
    digits = "".join(ch for ch in str(approver["phone"]) if ch.isdigit())
    approve, reject = _calls(request, f"+{digits}")
    return "\n".join(
        [
            _intro(request, name),
            "",
            content,
            "",
            *_facts(request),
            "",
            "To decide, use the app that sent you this request. It calls:",
            approve,
            reject,
        ]
    )


def iso(moment: datetime | None) -> str | None:
    """A time as the API writes it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def webhook_event(request: Request, *, notice_id: str) -> dict[str, Any]:
    """The webhook's body: the event, the post, the request and its approvers."""
    approval, post = request.approval, request.post
    return {
        "event": request.event,
        "notice_id": notice_id,
        "post": {
            "id": post.id,
            "status": post.status,
            "content": post.content,
            "media": list(post.media or []),
            "brand_id": post.brand_id,
            "suggested_at": iso(post.suggested_at),
            "accounts": list(request.accounts),
        },
        "approval": {
            "id": approval.id,
            "status": approval.status,
            "notification_type": approval.notification_type,
            "due_at": iso(approval.due_at),
            "scheduled_at": iso(approval.scheduled_at),
            "timezone": approval.timezone,
            "requested_by": approval.requested_by,
            "requested_at": iso(approval.requested_at),
            "reminded_at": iso(approval.reminded_at),
            "approve_url": request.action_url("approve"),
            "reject_url": request.action_url("reject"),
        },
        "approvers": [dict(a) for a in approval.approvers],
    }
