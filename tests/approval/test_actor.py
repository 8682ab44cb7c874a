"""The `notify_approvers` actor, declared from the contract and run by a Dramatiq worker."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_approval.actors import declare_actors
from herald_common.broker import build_broker
from herald_common.contracts import NOTIFY_APPROVERS, send
from herald_common.db import session_scope
from herald_common.models import ApprovalNotice
from herald_common.settings import Settings
from herald_common.workers import Deps
from tests.conftest import make_settings

from .conftest import Mailbox, waiting_request

JANE = {"name": "Jane", "email": "jane@example.com"}


@pytest.fixture
def settings(mailbox: Mailbox) -> Settings:
    return make_settings(
        smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_security="none", smtp_timeout_seconds=5
    )


@pytest.fixture
def broker(settings: Settings, sqlite_engine: Engine) -> Iterator[StubBroker]:
    broker = build_broker(settings)
    assert isinstance(broker, StubBroker)
    deps = Deps(
        settings=settings,
        broker=broker,
        engine=lambda: sqlite_engine,
        platforms=lambda: pytest.fail("the approval service needs no platforms"),
    )
    declare_actors(broker, deps)
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    yield broker
    worker.stop()
    broker.close()


def statuses(engine: Engine) -> list[tuple[str, str | None]]:
    with session_scope(engine) as session:
        return [(n.status, n.error) for n in session.exec(select(ApprovalNotice)).all()]


def test_a_message_sent_by_contract_name_notifies_the_approvers(
    broker: StubBroker, sqlite_engine: Engine, mailbox: Mailbox
) -> None:
    # Given a post waiting for Jane
    payload = waiting_request(sqlite_engine, approvers=[JANE])

    # When its message is sent by the contract's name, as the API does
    send(broker, NOTIFY_APPROVERS, payload)
    broker.join(NOTIFY_APPROVERS.queue, fail_fast=True)

    # I expect Jane's email, and her notice sent
    assert [m["To"] for m in mailbox.messages] == ["jane@example.com"]
    assert statuses(sqlite_engine) == [("sent", None)]


def test_the_last_try_gives_a_failing_notice_up_instead_of_retrying(
    broker: StubBroker, sqlite_engine: Engine, mailbox: Mailbox
) -> None:
    # Given a server refusing Jane's address for now, and the message on its last retry
    payload = waiting_request(sqlite_engine, approvers=[JANE])
    mailbox.refuse["jane@example.com"] = ["421 4.7.0 Try again later"]
    message = NOTIFY_APPROVERS.message(payload)
    message.options["retries"] = NOTIFY_APPROVERS.retry.max_retries

    # When it runs
    broker.enqueue(message)
    broker.join(NOTIFY_APPROVERS.queue, fail_fast=True)

    # I expect the notice failed with why, and the message done (not dead-lettered)
    [(status, error)] = statuses(sqlite_engine)
    assert status == "failed"
    assert (error or "").startswith("gave up after 6 tries: ")
    assert broker.dead_letters == []


def test_a_malformed_message_is_not_retried(broker: StubBroker, sqlite_engine: Engine) -> None:
    # Given a message whose notification type the contract does not know
    message = dramatiq.Message(
        queue_name=NOTIFY_APPROVERS.queue,
        actor_name=NOTIFY_APPROVERS.actor_name,
        args=(),
        kwargs={
            "tenant_id": "t",
            "post_id": "p",
            "approval_id": "a",
            "notification_type": "pigeon",
            "reminder": False,
        },
        options={},
    )

    # When it runs
    broker.enqueue(message)
    broker.join(NOTIFY_APPROVERS.queue, fail_fast=False)

    # I expect it dead-lettered on its first try
    [dead] = broker.dead_letters
    assert dead.message_id == message.message_id
    assert dead.options.get("retries", 0) == 0
    assert statuses(sqlite_engine) == []
