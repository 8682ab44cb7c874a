"""Notices reach approvers through a real SMTP server, a Cloud API that answers as Meta
documents it, and a webhook receiver; each notice goes at most once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_approval.notifying import NoticesPending, Notifier, Senders
from herald_common.contracts import NotifyApproversPayload
from herald_common.db import session_scope
from herald_common.models import Approval, ApprovalNotice
from herald_common.notify import (
    EmailSender,
    WebhookSender,
    WhatsAppSender,
    signature,
    tenant_signing_key,
    webhook_client,
    whatsapp_client,
    whatsapp_slots,
)
from herald_common.settings import Settings
from tests.conftest import make_settings

from .conftest import (
    GRAPH_VERSION,
    PHONE_NUMBER_ID,
    WHATSAPP_TOKEN,
    FakeCloudApi,
    Mailbox,
    Receiver,
    graph_error,
    waiting_request,
)

JANE = {"name": "Jane", "email": "jane@example.com"}
OMAR = {"name": "Omar", "phone": "+33 6 12 34 56 78"}
SECRET = "whsec-test-1234"


def settings_for(
    mailbox: Mailbox | None = None, cloud_api: FakeCloudApi | None = None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "public_url": "https://herald.example.com",
        "smtp_security": "none",
        "smtp_from": "Herald <approvals@herald.example.com>",
        "graph_api_version": GRAPH_VERSION,
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_token": WHATSAPP_TOKEN,
        "approval_webhook_secret": SECRET,
        "platform_allow_private_addresses": True,
        "platform_timeout_seconds": 5.0,
        "smtp_timeout_seconds": 5.0,
    }
    if mailbox is not None:
        values.update(smtp_host="127.0.0.1", smtp_port=mailbox.port)
    if cloud_api is not None:
        values["whatsapp_api_url"] = cloud_api.url
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
def make_notifier(sqlite_engine: Engine) -> Iterator[Any]:
    clients = []

    def make(settings: Settings) -> Notifier:
        whatsapp_http, webhook_http = whatsapp_client(settings), webhook_client(settings)
        clients.extend([whatsapp_http, webhook_http])
        slots = whatsapp_slots(StubBroker(), settings)
        senders = Senders(
            email=EmailSender(settings),
            whatsapp=WhatsAppSender(settings, whatsapp_http, slots, wait_seconds=1.0),
            webhook=WebhookSender(settings, webhook_http),
        )
        return Notifier(sqlite_engine, settings, senders)

    yield make
    for client in clients:
        client.close()


def notices(engine: Engine, payload: NotifyApproversPayload) -> list[ApprovalNotice]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(ApprovalNotice)
                .where(ApprovalNotice.approval_id == payload.approval_id)
                .order_by(col(ApprovalNotice.channel), col(ApprovalNotice.recipient))
            ).all()
        )


# --- email ------------------------------------------------------------------------------------


def test_an_email_notice_reaches_the_approver_as_a_real_message(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given a post waiting for Jane, due on a given day, to go out the day after
    due = datetime(2031, 6, 2, 12, 0, tzinfo=UTC)
    payload = waiting_request(
        sqlite_engine,
        approvers=[JANE],
        due_at=due,
        scheduled_at=due + timedelta(days=1),
    )
    notifier = make_notifier(settings_for(mailbox))

    # When its approvers are notified
    report = notifier.notify(payload)

    # I expect one multipart message to Jane with the post, the times (in the request's zone)
    # and how to decide
    [message] = mailbox.messages
    assert mailbox.envelopes == [("approvals@herald.example.com", ["jane@example.com"])]
    assert message["To"] == "jane@example.com"
    assert message["From"] == "Herald <approvals@herald.example.com>"
    # (cut at a word to fit on its line)
    assert (
        message["Subject"] == "Approval needed (Bag Shop): Spring sale: 20% off every bag this..."
    )
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    markup = message.get_body(preferencelist=("html",)).get_content()
    assert "Spring sale: 20% off every bag this weekend" in text
    assert "sam@agency.example asks you to approve a post for Bag Shop" in text
    assert "Decision due Mon 02 Jun 2031, 14:00 (Europe/Paris)." in text
    assert "goes out Tue 03 Jun 2031, 14:00 (Europe/Paris)" in text
    approve_call = (
        f"POST https://herald.example.com/v1/posts/{payload.post_id}/approve "
        '{"approver": "jane@example.com"}'
    )
    assert approve_call in text
    assert "Spring sale: 20% off every bag this weekend" in markup
    # and the notice recorded as sent, with the message's id
    [notice] = notices(sqlite_engine, payload)
    assert (notice.kind, notice.channel, notice.recipient, notice.status) == (
        "request",
        "email",
        "jane@example.com",
        "sent",
    )
    assert notice.provider_id == message["Message-ID"] == f"<{notice.id}@herald.example.com>"
    assert report.sent == ["email:jane@example.com"]


def test_herald_logs_in_when_a_username_is_set_and_a_refused_login_is_permanent(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given an SMTP server that takes one password
    mailbox.password = "right-password"
    good = waiting_request(sqlite_engine, approvers=[JANE])
    bad = waiting_request(sqlite_engine, approvers=[JANE])
    with_login = settings_for(mailbox, smtp_username="herald", smtp_password="right-password")
    wrong = settings_for(mailbox, smtp_username="herald", smtp_password="wrong-password")

    # When notices go with the right password, then the wrong one
    make_notifier(with_login).notify(good)
    report = make_notifier(wrong).notify(bad)

    # I expect the first sent after logging in, and the second failed for good (not retried),
    # its reason naming the setting and not the password
    # (smtplib tries each mechanism the server offers: PLAIN, then LOGIN)
    assert mailbox.logins[0] == ("herald", "right-password")
    assert set(mailbox.logins[1:]) == {("herald", "wrong-password")}
    assert len(mailbox.messages) == 1
    [notice] = notices(sqlite_engine, bad)
    assert notice.status == "failed"
    assert "refused Herald's login" in (notice.error or "")
    assert "wrong-password" not in (notice.error or "")
    assert report.failed == ["email:jane@example.com"]


def test_a_retry_does_not_resend_the_notices_already_sent(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given two approvers, the server refusing the second one's address once "for now"
    kim = {"name": "Kim", "email": "kim@example.com"}
    payload = waiting_request(sqlite_engine, approvers=[JANE, kim])
    mailbox.refuse["kim@example.com"] = ["451 4.3.0 Mailbox busy, try again later"]
    notifier = make_notifier(settings_for(mailbox))

    # When the message runs, fails for Kim, and runs again (as Dramatiq retries it)
    with pytest.raises(NoticesPending):
        notifier.notify(payload)
    between = {n.recipient: (n.status, n.error) for n in notices(sqlite_engine, payload)}
    report = notifier.notify(payload)

    # I expect Jane's notice sent once, Kim's waiting with the reason, then sent
    assert between["jane@example.com"] == ("sent", None)
    assert between["kim@example.com"][0] == "retrying"
    assert "451" in (between["kim@example.com"][1] or "")
    assert (report.skipped, report.sent) == (["email:jane@example.com"], ["email:kim@example.com"])
    assert [m["To"] for m in mailbox.messages] == ["jane@example.com", "kim@example.com"]
    assert {n.status for n in notices(sqlite_engine, payload)} == {"sent"}


def test_on_the_last_try_a_notice_still_failing_is_given_up(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given a server that keeps refusing the address for now
    payload = waiting_request(sqlite_engine, approvers=[JANE])
    mailbox.refuse["jane@example.com"] = ["452 4.2.2 Mailbox full"] * 3
    notifier = make_notifier(settings_for(mailbox))

    # When the message's last try runs
    report = notifier.notify(payload, last_try=True)

    # I expect the notice failed with why, and nothing raised (nothing left to retry)
    [notice] = notices(sqlite_engine, payload)
    assert notice.status == "failed"
    assert (notice.error or "").startswith("gave up after 6 tries: ")
    assert "452" in (notice.error or "")
    assert report.failed == ["email:jane@example.com"]


def test_a_permanent_refusal_fails_the_notice_without_retrying(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given a server that does not know the address
    payload = waiting_request(sqlite_engine, approvers=[JANE])
    mailbox.refuse["jane@example.com"] = ["550 5.1.1 No such user"]

    # When the approvers are notified
    make_notifier(settings_for(mailbox)).notify(payload)

    # I expect the notice failed with the server's words
    [notice] = notices(sqlite_engine, payload)
    assert notice.status == "failed"
    assert "550 5.1.1 No such user" in (notice.error or "")


def test_a_channel_not_configured_fails_its_notices_with_a_clear_reason(
    sqlite_engine: Engine, make_notifier: Any
) -> None:
    # Given no SMTP server and no WhatsApp token
    payload = waiting_request(
        sqlite_engine, approvers=[{**JANE, "phone": "+15551234567"}], notification_type="both"
    )
    settings = settings_for(whatsapp_token=None)

    # When the approvers are notified
    report = make_notifier(settings).notify(payload)

    # I expect both notices failed, saying what to set, and no retry asked for
    reasons = {n.channel: (n.status, n.error) for n in notices(sqlite_engine, payload)}
    assert reasons == {
        "email": ("failed", "email is not configured: set SMTP_HOST (and SMTP_PORT, …)"),
        "whatsapp": (
            "failed",
            "WhatsApp is not configured: set WHATSAPP_TOKEN and WHATSAPP_PHONE_NUMBER_ID",
        ),
    }
    assert len(report.failed) == 2


def test_a_decided_request_sends_nothing(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given a request approved before its message ran
    payload = waiting_request(sqlite_engine, approvers=[JANE])
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(Approval)
            .where(col(Approval.id) == payload.approval_id)
            .values(status="approved")
        )

    # When the message runs
    make_notifier(settings_for(mailbox)).notify(payload)

    # I expect no message and no notice
    assert mailbox.messages == []
    assert notices(sqlite_engine, payload) == []


def test_a_reminder_is_its_own_notice(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given a request whose approver was told
    payload = waiting_request(sqlite_engine, approvers=[JANE])
    notifier = make_notifier(settings_for(mailbox))
    notifier.notify(payload)

    # When the reminder runs, twice
    reminder = payload.model_copy(update={"reminder": True})
    notifier.notify(reminder)
    notifier.notify(reminder)

    # I expect two messages in all, the second a reminder
    assert [m["Subject"].split(" (")[0] for m in mailbox.messages] == [
        "Approval needed",
        "Reminder: approval due",
    ]
    text = mailbox.messages[1].get_body(preferencelist=("plain",)).get_content()
    assert "a reminder: a post for Bag Shop still waits for your decision" in text
    assert sorted((n.kind, n.status) for n in notices(sqlite_engine, payload)) == [
        ("reminder", "sent"),
        ("request", "sent"),
    ]


def test_a_notice_another_run_is_sending_is_left_to_it_until_it_is_stale(
    sqlite_engine: Engine, mailbox: Mailbox, make_notifier: Any
) -> None:
    # Given Jane's notice claimed by another copy of the message a moment ago
    payload = waiting_request(sqlite_engine, approvers=[JANE])
    with session_scope(sqlite_engine) as session:
        session.add(
            ApprovalNotice(
                tenant_id=payload.tenant_id,
                approval_id=payload.approval_id,
                kind="request",
                channel="email",
                recipient="jane@example.com",
                status="sending",
            )
        )
    notifier = make_notifier(settings_for(mailbox))

    # When this copy runs now, and again once that claim is stale (its worker died)
    with pytest.raises(NoticesPending):
        notifier.notify(payload)
    untouched = len(mailbox.messages)
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(ApprovalNotice).values(created_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    notifier.notify(payload)

    # I expect nothing sent while the other copy may be sending, then the notice taken over
    assert untouched == 0
    assert [m["To"] for m in mailbox.messages] == ["jane@example.com"]
    [notice] = notices(sqlite_engine, payload)
    assert notice.status == "sent"


# --- WhatsApp -----------------------------------------------------------------------------------


def test_a_whatsapp_notice_is_the_cloud_apis_text_message(
    sqlite_engine: Engine, cloud_api: FakeCloudApi, make_notifier: Any
) -> None:
    # Given a post waiting for Omar, told by WhatsApp
    payload = waiting_request(sqlite_engine, approvers=[OMAR], notification_type="whatsapp")

    # When the approvers are notified
    make_notifier(settings_for(cloud_api=cloud_api)).notify(payload)

    # I expect one documented call: Bearer token, a text to his digits, no link preview
    [call] = cloud_api.calls(cloud_api.path, "POST")
    assert call.headers["authorization"] == f"Bearer {WHATSAPP_TOKEN}"
    assert call.headers["content-type"] == "application/json"
    body = call.json()
    assert {k: v for k, v in body.items() if k != "text"} == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "33612345678",
        "type": "text",
    }
    assert body["text"]["preview_url"] is False
    assert "Spring sale: 20% off every bag this weekend" in body["text"]["body"]
    assert '{"approver": "+33612345678"}' in body["text"]["body"]
    [notice] = notices(sqlite_engine, payload)
    assert (notice.recipient, notice.status, notice.provider_id) == (
        "33612345678",
        "sent",
        "wamid.HBgL000001",
    )


def test_whatsapps_rate_limit_is_retried_and_then_sent_once(
    sqlite_engine: Engine, cloud_api: FakeCloudApi, make_notifier: Any
) -> None:
    # Given a Cloud API at its throughput limit for the next call
    payload = waiting_request(sqlite_engine, approvers=[OMAR], notification_type="whatsapp")
    limit = graph_error(429, 130429, "(#130429) Rate limit hit")
    cloud_api.fail_next(1, limit.status, limit.body, {"Retry-After": "1"})
    notifier = make_notifier(settings_for(cloud_api=cloud_api))

    # When the message runs, and runs again
    with pytest.raises(NoticesPending):
        notifier.notify(payload)
    [between] = notices(sqlite_engine, payload)
    notifier.notify(payload)

    # I expect the first try waiting with Meta's reason, then one message delivered
    assert between.status == "retrying"
    assert "(#130429) Rate limit hit" in (between.error or "")
    assert "code 130429, HTTP 429" in (between.error or "")
    assert len(cloud_api.sent) == 1
    assert len(cloud_api.calls(cloud_api.path)) == 2
    assert notices(sqlite_engine, payload)[0].status == "sent"


def test_an_undeliverable_number_fails_its_notice_for_good(
    sqlite_engine: Engine, cloud_api: FakeCloudApi, make_notifier: Any
) -> None:
    # Given a number that is not on WhatsApp, beside one that is
    kim = {"name": "Kim", "phone": "+4915112345678"}
    payload = waiting_request(sqlite_engine, approvers=[OMAR, kim], notification_type="whatsapp")
    cloud_api.undeliverable.add("4915112345678")

    # When the approvers are notified
    report = make_notifier(settings_for(cloud_api=cloud_api)).notify(payload)

    # I expect Omar's sent, Kim's failed with Meta's code and details, and no retry asked for
    outcome = {n.recipient: (n.status, n.error) for n in notices(sqlite_engine, payload)}
    assert outcome["33612345678"] == ("sent", None)
    status, error = outcome["4915112345678"]
    assert status == "failed"
    assert "(#131026) Message undeliverable" in (error or "")
    assert "The number may not be on WhatsApp" in (error or "")
    assert report.pending == []


def test_both_sends_email_and_whatsapp_to_whoever_has_each(
    sqlite_engine: Engine,
    mailbox: Mailbox,
    cloud_api: FakeCloudApi,
    make_notifier: Any,
) -> None:
    # Given Jane (email only) and Lea (email and phone), told by both
    lea = {"name": "Lea", "email": "lea@example.com", "phone": "+33700000001"}
    payload = waiting_request(sqlite_engine, approvers=[JANE, lea], notification_type="both")

    # When the approvers are notified
    make_notifier(settings_for(mailbox, cloud_api)).notify(payload)

    # I expect three notices: two emails and one WhatsApp message
    assert [(n.channel, n.recipient, n.status) for n in notices(sqlite_engine, payload)] == [
        ("email", "jane@example.com", "sent"),
        ("email", "lea@example.com", "sent"),
        ("whatsapp", "33700000001", "sent"),
    ]
    assert sorted(m["To"] for m in mailbox.messages) == ["jane@example.com", "lea@example.com"]
    assert [b["to"] for b in cloud_api.sent] == ["33700000001"]


# --- webhooks -----------------------------------------------------------------------------------


def test_a_webhook_notice_is_signed_and_carries_its_idempotency_key(
    sqlite_engine: Engine, receiver: Receiver, make_notifier: Any
) -> None:
    # Given a request told by webhook
    url = f"{receiver.url}/hooks/herald"
    payload = waiting_request(
        sqlite_engine, approvers=[JANE, OMAR], notification_type="webhook", webhook_url=url
    )

    # When the approvers are notified
    make_notifier(settings_for()).notify(payload)

    # I expect one POST whose signature is the HMAC of its time and exact body under the
    # tenant's own key, with the event and the notice's id as the idempotency key
    [call] = receiver.calls("/hooks/herald", "POST")
    [notice] = notices(sqlite_engine, payload)
    sent = call.headers["x-herald-signature"]
    stamp = int(sent.split(",")[0].removeprefix("t="))
    assert abs(stamp - time.time()) < 60
    key = tenant_signing_key(SECRET, notice.tenant_id)
    assert sent == signature(key, call.body, stamp)
    # and another tenant's key (or the operator's secret itself) does not verify it
    assert sent != signature(tenant_signing_key(SECRET, "another-tenant"), call.body, stamp)
    assert sent != signature(SECRET, call.body, stamp)
    assert call.headers["x-herald-event"] == "approval.requested"
    assert call.headers["idempotency-key"] == notice.id
    body = json.loads(call.body)
    assert body["event"] == "approval.requested"
    assert body["post"]["id"] == payload.post_id
    assert body["post"]["content"] == "Spring sale: 20% off every bag this weekend"
    assert body["approval"]["id"] == payload.approval_id
    assert [a["name"] for a in body["approvers"]] == ["Jane", "Omar"]
    assert (notice.channel, notice.recipient, notice.status) == ("webhook", url, "sent")


def test_a_webhooks_5xx_is_retried_and_its_4xx_is_not(
    sqlite_engine: Engine, receiver: Receiver, make_notifier: Any
) -> None:
    # Given two requests told by webhook: the receiver fails the first call with 503, then
    # answers 410 to the second request's
    first = waiting_request(
        sqlite_engine,
        approvers=[JANE],
        notification_type="webhook",
        webhook_url=receiver.url + "/a",
    )
    second = waiting_request(
        sqlite_engine,
        approvers=[JANE],
        notification_type="webhook",
        webhook_url=receiver.url + "/b",
    )
    receiver.fail_next(1, 503, {"error": "down for maintenance"}, path="/a")
    receiver.fail_next(1, 410, {"error": "gone"}, path="/b")
    notifier = make_notifier(settings_for())

    # When each request's message runs (the first twice)
    with pytest.raises(NoticesPending):
        notifier.notify(first)
    notifier.notify(first)
    notifier.notify(second)

    # I expect the first sent on its second try, the second failed for good
    assert notices(sqlite_engine, first)[0].status == "sent"
    [gone] = notices(sqlite_engine, second)
    assert gone.status == "failed"
    assert "HTTP 410" in (gone.error or "")
    assert len(receiver.calls("/a")) == 2
    assert len(receiver.calls("/b")) == 1


def test_a_webhook_to_a_private_address_is_refused(
    sqlite_engine: Engine, receiver: Receiver, make_notifier: Any
) -> None:
    # Given a request whose webhook points inside the network, private addresses not allowed
    payload = waiting_request(
        sqlite_engine,
        approvers=[JANE],
        notification_type="webhook",
        webhook_url=receiver.url + "/internal",
    )
    settings = settings_for(platform_allow_private_addresses=False)

    # When the approvers are notified
    make_notifier(settings).notify(payload)

    # I expect nothing sent there, and the notice failed saying why
    assert receiver.requests == []
    [notice] = notices(sqlite_engine, payload)
    assert notice.status == "failed"
    assert "non-public address" in (notice.error or "")
