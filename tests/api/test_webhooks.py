"""/v1/webhooks: an app's endpoints, their deliveries (with every try), resend, re-enable."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, update

from herald_common.models import WebhookDelivery
from herald_common.notify import WebhookSender, tenant_signing_key, webhook_client
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.webhooks import Deliverer, events_for
from tests.api.conftest import api_settings, fields_of
from tests.api.test_jobs import waiting
from tests.platforms.servers import Receiver, running

SECRET = "operator-webhook-secret"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The receiver is on loopback, as a test's must be; signed with the operator's secret.
    return api_settings(
        tmp_path, platform_allow_private_addresses=True, approval_webhook_secret=SECRET
    )


@pytest.fixture
def receiver():
    with running(Receiver()) as server:
        yield server


def _register(client, url: str, events: list[str]) -> dict:
    result = client.simulate_post("/v1/webhooks", json={"url": url, "events": events})
    assert result.status_code == 201, result.json
    return result.json


def test_endpoints_are_registered_listed_changed_and_removed(client, other_client):
    # Given an endpoint
    made = _register(client, "https://app.example.com/hooks", ["post.published", "post.failed"])

    # I expect it listed, readable, changeable, invisible to another tenant, and removable
    assert [w["id"] for w in client.simulate_get("/v1/webhooks").json["data"]] == [made["id"]]
    changed = client.simulate_patch(
        f"/v1/webhooks/{made['id']}", json={"events": ["job.failed"], "description": "ops"}
    ).json
    assert (changed["events"], changed["description"], changed["enabled"]) == (
        ["job.failed"],
        "ops",
        True,
    )
    assert other_client.simulate_get(f"/v1/webhooks/{made['id']}").status_code == 404
    assert client.simulate_delete(f"/v1/webhooks/{made['id']}").status_code == 204
    assert client.simulate_get("/v1/webhooks").json["data"] == []


def test_an_unknown_event_type_or_a_bad_url_is_a_422(client):
    bad_event = client.simulate_post(
        "/v1/webhooks", json={"url": "https://app.example.com/h", "events": ["post.exploded"]}
    )
    bad_url = client.simulate_post(
        "/v1/webhooks", json={"url": "ftp://app.example.com/h", "events": ["post.failed"]}
    )
    assert "events.0" in fields_of(bad_event)
    assert "url" in fields_of(bad_url)


def test_an_endpoint_on_a_private_address_is_refused(app, engine, tmp_path):
    # Given the production rule (private addresses refused)
    from falcon.testing import TestClient

    from herald_api.app import create_app
    from herald_api.auth import create_tenant
    from herald_common.broker import build_broker
    from herald_common.db import session_scope
    from herald_common.platforms import PlatformRegistry

    strict = api_settings(tmp_path)
    with session_scope(engine) as session:
        _, key = create_tenant(session, "strict")
    app = create_app(
        strict,
        engine=engine,
        broker=build_broker(strict),
        platforms=PlatformRegistry(engine, strict),
    )
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})

    result = client.simulate_post(
        "/v1/webhooks", json={"url": "http://169.254.169.254/hook", "events": ["post.failed"]}
    )
    assert result.status_code == 422
    assert "non-public" in fields_of(result)["url"]


def test_an_event_is_delivered_signed_and_its_try_is_visible(
    client, engine, broker, settings, tenant, receiver
):
    # Given an endpoint that wants approvals, and a post submitted for approval
    hook = _register(client, f"{receiver.url}/hooks", ["approval.requested"])
    account = client.simulate_post("/v1/accounts", json={"platform": "sandbox", "handle": "a"}).json
    post = client.simulate_post(
        "/v1/posts", json={"content": "Hi", "account_ids": [account["id"]]}
    ).json
    submitted = client.simulate_post(
        f"/v1/posts/{post['id']}/submit", json={"approvers": [{"email": "ana@acme.test"}]}
    )
    assert submitted.status_code == 200, submitted.json

    # When the webhooks worker takes the message
    [message] = waiting(broker, "webhooks")
    deliverer = Deliverer(engine, WebhookSender(settings, webhook_client(settings)), settings)
    assert deliverer.deliver(**_kwargs(message)) == "succeeded"

    # I expect one signed POST of the event, and the delivery with its try
    [call] = receiver.calls("/hooks", "POST")
    assert call.headers["x-herald-event"] == "approval.requested"
    body = call.json()
    assert body["type"] == "approval.requested" and body["data"]["post_id"] == post["id"]
    assert call.headers["idempotency-key"] == body["id"]
    stamp, mac = (p.split("=", 1)[1] for p in call.headers["x-herald-signature"].split(","))
    key = tenant_signing_key(SECRET, tenant.id)
    expected = hmac.new(key.encode(), f"{stamp}.".encode() + call.body, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    [delivery] = client.simulate_get(f"/v1/webhooks/{hook['id']}/deliveries").json["data"]
    assert (delivery["status"], delivery["attempts"], delivery["event_id"]) == (
        "succeeded",
        1,
        body["id"],
    )
    assert [t["status_code"] for t in delivery["history"]] == [204]


def _kwargs(message) -> dict:
    return {"delivery_id": message.kwargs["delivery_id"], "attempt": message.kwargs["attempt"]}


def test_a_failing_endpoint_is_retried_then_disabled_and_can_be_turned_back_on(
    client, engine, broker, settings, tenant, receiver
):
    # Given an endpoint that answers 500, and an event for it
    hook = _register(client, f"{receiver.url}/down", ["job.failed"])
    receiver.fail_next(2, 500, {"error": "down"})
    events = events_for(engine, broker, settings)
    assert events.emit(tenant.id, "job.failed", {"job_id": "j-1"}) == 1
    deliverer = Deliverer(engine, WebhookSender(settings, webhook_client(settings)), settings)
    [delivery] = client.simulate_get(f"/v1/webhooks/{hook['id']}/deliveries").json["data"]

    # When the first try fails
    assert deliverer.deliver(delivery["id"], 0) == "retrying"
    # then a duplicate of that message comes (it finds the delivery moved on)
    assert deliverer.deliver(delivery["id"], 0) == "stale"
    retrying = client.simulate_get(f"/v1/webhooks/{hook['id']}/deliveries").json["data"][0]

    # I expect it scheduled again after the first backoff, with the try recorded
    assert retrying["status"] == "pending" and retrying["history"][0]["status_code"] == 500
    wait = _at(retrying["next_attempt_at"]) - utcnow()
    assert timedelta(seconds=5) < wait <= timedelta(seconds=10)

    # When its retry window is over and the next try fails too
    with engine.begin() as db:
        db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery["id"])  # type: ignore[arg-type]
            .values(retry_until=utcnow() - timedelta(seconds=1))
        )
    assert deliverer.deliver(delivery["id"], 1) == "failed"

    # I expect the endpoint disabled with the reason
    disabled = client.simulate_get(f"/v1/webhooks/{hook['id']}").json
    assert disabled["enabled"] is False
    assert "failed 2 times" in disabled["disabled_reason"]
    assert "HTTP 500" in disabled["disabled_reason"]

    # When the tenant turns it back on and sends the delivery again by hand
    enabled = client.simulate_patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True}).json
    resent = client.simulate_post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/resend")

    # I expect it on, and the delivery pending with a message on its way that succeeds
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
    assert resent.status_code == 202 and resent.json["status"] == "pending"
    assert deliverer.deliver(delivery["id"], 2) == "succeeded"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_tenant_without_endpoints_costs_no_statement_per_event(engine, broker, settings, tenant):
    # Given a tenant with no endpoints, asked about once
    events = events_for(engine, broker, settings)
    assert events.emit(tenant.id, "post.published", {}) == 0
    statements: list[str] = []

    def record(*args) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        # When events of it come
        for _ in range(100):
            events.emit(tenant.id, "post.published", {})
    finally:
        event.remove(engine, "before_cursor_execute", record)

    # I expect no statement sent
    assert statements == []
