"""Outcome events: written once per event and endpoint, and the scheduler's sweep of retries."""

from __future__ import annotations

from datetime import timedelta

from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update
from sqlmodel import select

from herald_common.db import session_scope
from herald_common.models import Post, Target, WebhookDelivery, WebhookEndpoint
from herald_common.timeutil import utcnow
from herald_common.webhooks import Events, send_due
from tests.conftest import add_account, add_post, add_tenant, make_settings


def _endpoint(engine, tenant_id: str, events: list[str], *, enabled: bool = True) -> str:
    with session_scope(engine) as session:
        endpoint = WebhookEndpoint(
            tenant_id=tenant_id, url="https://app.example.com/h", events=events, enabled=enabled
        )
        session.add(endpoint)
    return endpoint.id


def _sent(broker: StubBroker) -> list[dict]:
    return [Message.decode(m).kwargs for m in list(broker.queues["webhooks"].queue)]


def test_a_post_reaching_an_outcome_is_one_event_however_often_it_is_seen(sqlite_engine):
    # Given a tenant whose endpoint wants post outcomes, and a post whose targets went out
    broker = StubBroker()
    broker.declare_queue("webhooks")
    tenant = add_tenant(sqlite_engine)
    endpoint = _endpoint(sqlite_engine, tenant, ["post.published", "post.failed"])
    account = add_account(sqlite_engine, tenant)
    post_id, [target] = add_post(sqlite_engine, tenant, [account])
    with sqlite_engine.begin() as db:
        db.execute(update(Post).where(Post.id == post_id).values(status="published"))  # type: ignore[arg-type]
        db.execute(
            update(Target)
            .where(Target.id == target)  # type: ignore[arg-type]
            .values(status="published", platform_url="https://sandbox.test/1")
        )
    events = Events(sqlite_engine, broker, make_settings())

    # When the outcome is reported twice (two targets settling at once each see it)
    for _ in range(2):
        events.post_settled(tenant, post_id, "scheduled", {"id": target, "status": "published"})

    # I expect one delivery of post.published naming the post and its targets, one message
    with session_scope(sqlite_engine) as session:
        [delivery] = session.exec(select(WebhookDelivery)).all()
    assert (delivery.endpoint_id, delivery.event_type) == (endpoint, "post.published")
    assert delivery.payload["data"]["targets"][0]["platform_url"] == "https://sandbox.test/1"
    assert _sent(broker) == [{"delivery_id": delivery.id, "attempt": 0}]


def test_the_sweep_sends_due_deliveries_of_enabled_endpoints_and_holds_them(sqlite_engine):
    # Given a due delivery of an enabled endpoint, and one of a disabled endpoint
    broker = StubBroker()
    broker.declare_queue("webhooks")
    tenant = add_tenant(sqlite_engine)
    on = _endpoint(sqlite_engine, tenant, ["job.failed"])
    off = _endpoint(sqlite_engine, tenant, ["job.failed"], enabled=False)
    now = utcnow()
    with session_scope(sqlite_engine) as session:
        for endpoint in (on, off):
            session.add(
                WebhookDelivery(
                    id=f"d-{endpoint[:8]}",
                    tenant_id=tenant,
                    endpoint_id=endpoint,
                    event_id=f"e-{endpoint[:8]}",
                    event_type="job.failed",
                    attempts=2,
                    next_attempt_at=now - timedelta(seconds=1),
                )
            )

    # When the scheduler sweeps, twice
    first, second = send_due(sqlite_engine, broker, now), send_due(sqlite_engine, broker, now)

    # I expect the enabled one sent once (then held for its lease), with its count of tries
    assert (first, second) == (1, 0)
    assert _sent(broker) == [{"delivery_id": f"d-{on[:8]}", "attempt": 2}]
