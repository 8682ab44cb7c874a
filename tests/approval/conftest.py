"""Fixtures for the approval service: a real SMTP server (aiosmtpd), a Cloud API that answers
as Meta documents it, a webhook receiver, and requests waiting in a real database."""

from __future__ import annotations

import email
import email.policy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.engine import Engine

from herald_common.contracts import NotifyApproversPayload
from herald_common.db import session_scope
from herald_common.models import Approval, Brand, Post, PostStatus, Target, TargetStatus
from herald_embedded.stack import free_port
from tests.conftest import add_account, add_tenant
from tests.platforms.servers import FakeServer, Receiver, Recorded, Reply, running

GRAPH_VERSION = "v25.0"
PHONE_NUMBER_ID = "106540352242922"
WHATSAPP_TOKEN = "EAAG-system-user-token"


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What an aiosmtpd server received; `refuse` answers RCPT TO for an address with the
    replies queued for it (then accepts it)."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: dict[str, list[str]] = field(default_factory=dict)
    logins: list[tuple[str, str]] = field(default_factory=list)
    password: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        replies = self.refuse.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        # handled=False: aiosmtpd answers 535 itself when the password is wrong
        return AuthResult(success=password == self.password, handled=False)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1 (plain, no TLS: SMTP_SECURITY=none), with AUTH."""
    box = Mailbox(port=free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield box
    controller.stop()


# --- WhatsApp Cloud API ------------------------------------------------------------------------


def graph_error(status: int, code: int, message: str, *, details: str = "") -> Reply:
    """A Graph API error as the Cloud API sends it."""
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGh123",
    }
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return Reply(status, {"error": error})


class FakeCloudApi(FakeServer):
    """`POST /{version}/{phone-number-id}/messages` as Meta's Cloud API documents it: a Bearer
    token, a text message to one individual, `{"messages": [{"id": "wamid…"}]}` back."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        #: Numbers that are not on WhatsApp: (#131026) Message undeliverable.
        self.undeliverable: set[str] = set()
        self._ids = itertools.count(1)

    @property
    def path(self) -> str:
        return f"/{GRAPH_VERSION}/{PHONE_NUMBER_ID}/messages"

    def respond(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != self.path:
            return graph_error(400, 100, "Unsupported post request.")
        if request.headers.get("authorization") != f"Bearer {WHATSAPP_TOKEN}":
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        body = request.json()
        text = body.get("text") or {}
        valid = (
            body.get("messaging_product") == "whatsapp"
            and body.get("recipient_type") == "individual"
            and body.get("type") == "text"
            and isinstance(text.get("body"), str)
            and 0 < len(text["body"]) <= 4096
            and str(body.get("to", "")).isdigit()
        )
        if not valid:
            return graph_error(400, 100, "(#100) Invalid parameter")
        if body["to"] in self.undeliverable:
            return graph_error(
                400,
                131026,
                "(#131026) Message undeliverable",
                details="Unable to deliver message. The number may not be on WhatsApp.",
            )
        self.sent.append(body)
        wamid = f"wamid.HBgL{next(self._ids):06d}"
        return Reply(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            },
        )


@pytest.fixture
def cloud_api() -> Iterator[FakeCloudApi]:
    with running(FakeCloudApi()) as server:
        yield server


# --- webhooks ------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running(Receiver()) as server:
        yield server


# --- requests waiting in the database ---------------------------------------------------------


def waiting_request(
    engine: Engine,
    *,
    approvers: list[dict[str, str]],
    notification_type: str = "email",
    webhook_url: str | None = None,
    content: str = "Spring sale: 20% off every bag this weekend",
    due_at: datetime | None = None,
    scheduled_at: datetime | None = None,
    reminder: bool = False,
) -> NotifyApproversPayload:
    """A post of a brand waiting for approval, and the message that tells its approvers."""
    tenant_id = add_tenant(engine)
    account_id = add_account(engine, tenant_id, handle="bagshop")
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        brand = Brand(tenant_id=tenant_id, name="Bag Shop", requires_approval=True)
        session.add(brand)
        session.flush()
        post = Post(
            tenant_id=tenant_id,
            brand_id=brand.id,
            content=content,
            status=PostStatus.PENDING_APPROVAL,
        )
        session.add(post)
        session.flush()
        session.add(
            Target(
                tenant_id=tenant_id,
                post_id=post.id,
                account_id=account_id,
                platform="sandbox",
                status=TargetStatus.DRAFT,
            )
        )
        approval = Approval(
            tenant_id=tenant_id,
            post_id=post.id,
            approvers=approvers,
            notification_type=notification_type,
            webhook_url=webhook_url,
            due_at=due_at or now + timedelta(days=2),
            scheduled_at=scheduled_at,
            timezone="Europe/Paris",
            requested_by="sam@agency.example",
        )
        session.add(approval)
    return NotifyApproversPayload(
        tenant_id=tenant_id,
        post_id=post.id,
        approval_id=approval.id,
        notification_type=notification_type,  # type: ignore[arg-type]
        reminder=reminder,
    )
