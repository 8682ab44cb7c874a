"""The Sender: claimed targets held until their second, then put straight on the publish
queue; on a graceful stop what is held goes to the broker delayed; a broker that is away
leaves them marked as never sent."""

from __future__ import annotations

from datetime import datetime, timedelta

from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from herald_common.broker import build_broker
from herald_common.contracts import PUBLISH
from herald_common.lifecycle import Queued
from herald_common.timeutil import utcnow
from herald_scheduler.sending import Sender
from tests.conftest import make_settings


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def stub() -> StubBroker:
    broker = build_broker(make_settings())
    assert isinstance(broker, StubBroker)
    return broker


def waiting(broker: StubBroker, queue: str) -> list[Message]:
    return [Message.decode(m) for m in list(broker.queues[queue].queue)]


def test_a_held_target_goes_straight_on_the_queue_at_its_second() -> None:
    # Given a running sender and a target due in half a second
    broker, clock, unsent = stub(), Clock(), []
    sender = Sender(broker, unsent.extend, clock=clock).hold()  # the test calls send_due
    due = clock.now + timedelta(milliseconds=500)
    item = Queued("t-1", 2, due)

    # When it is submitted, it is held: nothing is on the queue yet
    assert sender.submit([item]) == (1, 0)
    assert sender.held == 1 and waiting(broker, PUBLISH.queue) == []
    clock.now = due - timedelta(milliseconds=1)
    assert sender.send_due() == (0, 0)

    # When its second comes
    clock.now = due
    assert sender.send_due() == (1, 0)

    # I expect its message on the publish queue itself, not on the delay queue
    [message] = waiting(broker, PUBLISH.queue)
    assert message.kwargs == {"target_id": "t-1", "version": 2}
    assert "eta" not in message.options
    assert waiting(broker, f"{PUBLISH.queue}.DQ") == [] and sender.held == 0 and unsent == []


def test_a_target_already_due_is_sent_at_once_and_held_ones_in_order_of_time() -> None:
    broker, clock = stub(), Clock()
    sender = Sender(broker, lambda items: None, clock=clock).hold()
    later = Queued("later", 2, clock.now + timedelta(seconds=1))
    sooner = Queued("sooner", 2, clock.now + timedelta(milliseconds=200))
    now = Queued("now", 2, clock.now - timedelta(milliseconds=5))

    assert sender.submit([later, sooner, now]) == (3, 0)
    assert [m.kwargs["target_id"] for m in waiting(broker, PUBLISH.queue)] == ["now"]
    clock.now += timedelta(seconds=2)
    sender.send_due()
    assert [m.kwargs["target_id"] for m in waiting(broker, PUBLISH.queue)] == [
        "now",
        "sooner",
        "later",
    ]


def test_stopping_sends_what_is_held_delayed_to_its_second() -> None:
    # Given a started sender holding a target due in a minute
    broker = stub()
    sender = Sender(broker, lambda items: None).start()
    due = utcnow() + timedelta(minutes=1)
    sender.submit([Queued("t-1", 2, due)])
    assert sender.held == 1

    # When it stops
    sender.stop()

    # I expect the message with the broker, delayed to the target's second
    [message] = waiting(broker, f"{PUBLISH.queue}.DQ")
    assert message.kwargs == {"target_id": "t-1", "version": 2}
    assert abs(message.options["eta"] - due.timestamp() * 1000) < 100
    assert sender.held == 0


def test_a_sender_not_started_sends_at_once_delayed_by_the_broker() -> None:
    broker = stub()
    due = utcnow() + timedelta(seconds=30)
    assert Sender(broker, lambda items: None).submit([Queued("t-1", 2, due)]) == (1, 0)
    [message] = waiting(broker, f"{PUBLISH.queue}.DQ")
    assert abs(message.options["eta"] - due.timestamp() * 1000) < 100


class DownBroker(StubBroker):
    def enqueue(self, message, *, delay=None):  # type: ignore[no-untyped-def]
        raise ConnectionError("Redis is down")


def test_targets_the_broker_cannot_take_are_handed_back_as_unsent() -> None:
    # Given a running sender on a broker that is down
    broker = DownBroker()
    broker.declare_queue(PUBLISH.queue)
    clock, unsent = Clock(), []
    sender = Sender(broker, unsent.extend, clock=clock).hold()
    items = [Queued("t-1", 2, clock.now), Queued("t-2", 2, clock.now + timedelta(seconds=1))]

    # When the due one is sent and, later, the held one
    assert sender.submit(items) == (1, 1)
    clock.now += timedelta(seconds=2)
    assert sender.send_due() == (0, 1)

    # I expect both handed back (the scheduler marks them never sent)
    assert [item.target_id for item in unsent] == ["t-1", "t-2"]
