"""Approvals through the API: submit, approve, reject, history, and the gate that keeps posts of
brands requiring approval off the schedule until they are approved."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import falcon
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_api.app import create_app
from herald_common.broker import redis_client
from herald_common.contracts import CONTRACTS
from herald_common.db import session_scope
from herald_common.models import Approval, Brand
from herald_common.notify import tenant_signing_key
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_embedded.stack import free_port

from .conftest import Tenant, fields_of, future, iso

MakeAccount = Callable[..., dict[str, Any]]
MakePost = Callable[..., dict[str, Any]]

JANE = {"name": "Jane", "email": "jane@example.com"}
OMAR = {"name": "Omar", "phone": "+33 6 12 34 56 78"}


def add_brand(engine: Engine, tenant_id: str, **values: Any) -> str:
    """A brand row (the brands API is another domain's): requires approval by default."""
    fields: dict[str, Any] = {
        "name": "Acme Coffee",
        "requires_approval": True,
        "approvers": [JANE, OMAR],
        "notification_type": "email",
        "timezone": "Europe/Paris",
    }
    fields.update(values)
    with session_scope(engine) as session:
        brand = Brand(tenant_id=tenant_id, **fields)
        session.add(brand)
    return brand.id


@pytest.fixture
def account(make_account: MakeAccount) -> dict[str, Any]:
    return make_account("shop")


@pytest.fixture
def brand(engine: Engine, tenant: Tenant) -> str:
    return add_brand(engine, tenant.id)


@pytest.fixture
def draft(account: dict[str, Any], make_post: MakePost, brand: str) -> dict[str, Any]:
    """A draft of the brand that requires approval."""
    return make_post([account["id"]], content="Spring sale: 20% off", brand_id=brand)


def notify_messages(broker: StubBroker) -> list[dict[str, Any]]:
    """The approval.notify messages waiting on the stub broker."""
    queue = broker.queues["approval"].queue  # type: ignore[attr-defined]
    return [dramatiq.Message.decode(raw).kwargs for raw in queue]


def submit(client: TestClient, post_id: str, **body: Any) -> Any:
    return client.simulate_post(f"/v1/posts/{post_id}/submit", json=body)


def decide(client: TestClient, post_id: str, action: str, **body: Any) -> Any:
    return client.simulate_post(f"/v1/posts/{post_id}/{action}", json=body)


# --- submit ---------------------------------------------------------------------------------


def test_submit_holds_the_post_and_sends_one_notify_message_after_commit(
    client: TestClient, draft: dict[str, Any], broker: StubBroker, tenant: Tenant
) -> None:
    # Given a draft
    at = future(days=1).replace(microsecond=0)

    # When it is submitted with its approvers and a time to go out
    result = submit(
        client,
        draft["id"],
        approvers=[JANE, OMAR],
        notification_type="both",
        scheduled_at=iso(at),
        requested_by="sam@agency.example",
    )

    # I expect it pending, the request shown on it, and one message for the approval service
    assert result.status_code == 200, result.json
    post = result.json
    assert post["status"] == "pending_approval"
    assert {t["status"] for t in post["targets"]} == {"draft"}
    approval = post["approval"]
    assert approval["status"] == "pending"
    assert [a["name"] for a in approval["approvers"]] == ["Jane", "Omar"]
    assert approval["notification_type"] == "both"
    assert datetime.fromisoformat(approval["scheduled_at"]) == at
    # due by the time it goes out, which comes before the default 48 hours
    assert datetime.fromisoformat(approval["due_at"]) == at
    assert approval["requested_by"] == "sam@agency.example"
    assert notify_messages(broker) == [
        {
            "tenant_id": tenant.id,
            "post_id": draft["id"],
            "approval_id": approval["id"],
            "notification_type": "both",
            "reminder": False,
        }
    ]


def test_submit_takes_its_defaults_from_the_brand_and_the_body_may_be_left_out(
    client: TestClient, engine: Engine, tenant: Tenant, account: dict[str, Any], make_post: MakePost
) -> None:
    # Given a brand with approvers, a webhook and a time zone, and a draft of it
    brand = add_brand(
        engine,
        tenant.id,
        approvers=[JANE, OMAR],
        notification_type="all",
        webhook_url="https://hooks.example.com/herald",
    )
    post = make_post([account["id"]], brand_id=brand)
    before = datetime.now(UTC)

    # When it is submitted without a body
    result = client.simulate_post(f"/v1/posts/{post['id']}/submit")

    # I expect the brand's approvers, notification type, webhook and time zone, due in 48 h
    assert result.status_code == 200, result.json
    approval = result.json["approval"]
    assert approval["approvers"] == [
        {"name": "Jane", "email": "jane@example.com", "phone": None},
        {"name": "Omar", "email": None, "phone": "+33 6 12 34 56 78"},
    ]
    assert approval["notification_type"] == "all"
    assert approval["webhook_url"] == "https://hooks.example.com/herald"
    assert approval["timezone"] == "Europe/Paris"
    assert approval["scheduled_at"] is None
    due = datetime.fromisoformat(approval["due_at"])
    assert timedelta(hours=47, minutes=59) < due - before < timedelta(hours=48, minutes=1)


def test_a_brands_approver_may_have_no_name(
    client: TestClient, engine: Engine, tenant: Tenant, account: dict[str, Any], make_post: MakePost
) -> None:
    # Given a brand whose approver is only an address
    brand = add_brand(engine, tenant.id, approvers=[{"name": None, "email": "ops@example.com"}])
    post = make_post([account["id"]], brand_id=brand)
    client.simulate_post(f"/v1/posts/{post['id']}/submit")

    # When someone else, then that address, approves it
    stranger = decide(client, post["id"], "approve", approver="jane@example.com")
    approved = decide(client, post["id"], "approve", approver="ops@example.com")

    # I expect the stranger told who may (by address), and the address's approval taken
    assert stranger.status_code == 403
    assert (
        "(by the email or phone number the request names: ops@example.com)"
        in (stranger.json["error"]["message"])
    )
    assert approved.status_code == 200, approved.json
    assert approved.json["approval"]["decided_by"] == "<ops@example.com>"


def test_a_submitter_cannot_name_approvers_the_brand_does_not_have(
    client: TestClient, draft: dict[str, Any], broker: StubBroker
) -> None:
    # When the draft of a brand requiring approval is submitted to someone not among its
    # approvers (the submitter, say, who would then approve their own post)
    result = submit(client, draft["id"], approvers=[JANE, {"email": "sam@agency.example"}])

    # I expect 422 naming that approver, the post still a draft, and nothing sent
    assert result.status_code == 422
    assert list(fields_of(result)) == ["approvers.1"]
    assert client.simulate_get(f"/v1/posts/{draft['id']}").json["status"] == "draft"
    assert notify_messages(broker) == []


def test_submit_without_approvers_anywhere_names_the_field(
    client: TestClient, account: dict[str, Any], make_post: MakePost
) -> None:
    # Given a draft with no brand
    post = make_post([account["id"]])

    # When it is submitted without approvers
    result = submit(client, post["id"])

    # I expect 422 naming approvers, and the post still a draft
    assert result.status_code == 422
    assert fields_of(result) == {"approvers": "is required: the post has no brand"}
    assert client.simulate_get(f"/v1/posts/{post['id']}").json["status"] == "draft"


def test_submit_names_every_field_that_breaks_a_rule(
    client: TestClient, draft: dict[str, Any]
) -> None:
    # When a submission breaks several rules at once
    result = submit(
        client,
        draft["id"],
        approvers=[{"name": "Jane", "email": "not-an-address"}, {"name": "Nobody"}],
    )
    also = submit(
        client,
        draft["id"],
        approvers=[{"name": "Omar", "phone": "+33612345678"}],
        notification_type="email",
        due_at=iso(datetime.now(UTC) - timedelta(hours=1)),
        scheduled_at=iso(datetime.now(UTC) - timedelta(hours=1)),
    )
    webhook = submit(client, draft["id"], approvers=[JANE], notification_type="webhook")

    # I expect each field named with its reason
    assert result.status_code == 422
    assert fields_of(result) == {
        "approvers.0.email": "is not an email address",
        "approvers.1": "give an email or a phone number",
    }
    assert also.status_code == 422
    assert fields_of(also) == {
        "approvers.0": "has no email to send email notices to",
        "scheduled_at": "is in the past",
        "due_at": "must be in the future",
    }
    assert webhook.status_code == 422
    assert fields_of(webhook) == {"webhook_url": "is required for webhook notices"}


def test_submitting_a_scheduled_post_takes_it_off_the_schedule_and_keeps_its_time(
    client: TestClient, account: dict[str, Any], make_post: MakePost
) -> None:
    # Given a post (no brand) scheduled for tomorrow
    at = future(days=1).replace(microsecond=0)
    post = make_post([account["id"]], scheduled_at=iso(at))
    [target] = post["targets"]

    # When it is submitted for approval
    result = submit(client, post["id"], approvers=[JANE])

    # I expect its target a draft again (its queued message stale) and its time on the request
    assert result.status_code == 200, result.json
    held = result.json
    assert held["status"] == "pending_approval"
    assert held["scheduled_at"] is None
    [after] = held["targets"]
    assert (after["status"], after["due_at"]) == ("draft", None)
    assert after["version"] == target["version"] + 1
    assert datetime.fromisoformat(held["approval"]["scheduled_at"]) == at


def test_a_post_waiting_or_already_sent_cannot_be_submitted(
    client: TestClient,
    draft: dict[str, Any],
    account: dict[str, Any],
    make_post: MakePost,
    set_target: Callable[..., None],
) -> None:
    # Given a post waiting for approval, and a post already published
    assert submit(client, draft["id"], approvers=[JANE]).status_code == 200
    published = make_post([account["id"]], publish_now=True)
    set_target(published["targets"][0]["id"], status="published")

    # When each is submitted
    again = submit(client, draft["id"], approvers=[JANE])
    sent = submit(client, published["id"], approvers=[JANE])

    # I expect 409 saying why
    assert again.status_code == 409
    assert "already waiting for approval" in again.json["error"]["message"]
    assert sent.status_code == 409
    assert "cannot submit a published post" in sent.json["error"]["message"]


# --- approve and reject -----------------------------------------------------------------------


def test_only_a_named_approver_may_decide(client: TestClient, draft: dict[str, Any]) -> None:
    # Given a post waiting for Jane and Omar
    assert submit(client, draft["id"], approvers=[JANE, OMAR], notification_type="both").json[
        "status"
    ] == ("pending_approval")

    # When someone else approves it
    result = decide(client, draft["id"], "approve", approver="mallory@example.com")

    # I expect 403 saying who may, and the request still pending
    assert result.status_code == 403
    assert result.json["error"]["code"] == "forbidden"
    message = result.json["error"]["message"]
    assert "'mallory@example.com' is not one of this post's approvers" in message
    assert "Jane, Omar" in message
    post = client.simulate_get(f"/v1/posts/{draft['id']}").json
    assert (post["status"], post["approval"]["status"]) == ("pending_approval", "pending")


def test_approving_with_a_time_ahead_schedules_the_post_for_it(
    client: TestClient, draft: dict[str, Any]
) -> None:
    # Given a post submitted to go out in two days
    at = future(days=2).replace(microsecond=0)
    submit(
        client, draft["id"], approvers=[JANE, OMAR], notification_type="both", scheduled_at=iso(at)
    )

    # When Omar approves it by his number, written another way
    result = decide(client, draft["id"], "approve", approver="+33-6-12-34-56-78")

    # I expect it scheduled at that time (targets too) and the request approved by Omar
    assert result.status_code == 200, result.json
    post = result.json
    assert post["status"] == "scheduled"
    assert datetime.fromisoformat(post["scheduled_at"]) == at
    assert {(t["status"], datetime.fromisoformat(t["due_at"])) for t in post["targets"]} == {
        ("scheduled", at)
    }
    approval = post["approval"]
    assert approval["status"] == "approved"
    assert approval["decided_by"] == "Omar (+33 6 12 34 56 78)"
    assert approval["schedule_missed"] is False


def test_approving_without_a_time_leaves_it_approved_to_be_scheduled_later(
    client: TestClient, draft: dict[str, Any]
) -> None:
    # Given a post of a brand requiring approval, submitted without a time
    submit(client, draft["id"], approvers=[JANE])

    # When Jane approves it (her address in another case), with a comment
    result = decide(client, draft["id"], "approve", approver="JANE@example.com", comment="Go")

    # I expect it approved, its targets drafts, and scheduling it now allowed
    assert result.status_code == 200, result.json
    assert result.json["status"] == "approved"
    assert {t["status"] for t in result.json["targets"]} == {"draft"}
    assert result.json["approval"]["comment"] == "Go"
    assert result.json["approval"]["decided_by"] == "Jane <jane@example.com>"
    scheduled = client.simulate_put(
        f"/v1/posts/{draft['id']}/schedule", json={"scheduled_at": iso(future())}
    )
    assert scheduled.status_code == 200, scheduled.json
    assert scheduled.json["status"] == "scheduled"


def test_approving_after_its_time_passed_leaves_it_approved_and_says_so(
    client: TestClient, draft: dict[str, Any], engine: Engine
) -> None:
    # Given a request whose time to go out passed while it waited
    submit(client, draft["id"], approvers=[JANE], scheduled_at=iso(future(hours=2)))
    with session_scope(engine) as session:
        session.execute(
            update(Approval)
            .where(Approval.post_id == draft["id"])
            .values(scheduled_at=datetime.now(UTC) - timedelta(minutes=5))
        )

    # When Jane approves it
    result = decide(client, draft["id"], "approve", approver="jane@example.com")

    # I expect it approved but not scheduled, and the request saying the time passed
    assert result.status_code == 200, result.json
    assert result.json["status"] == "approved"
    assert {t["status"] for t in result.json["targets"]} == {"draft"}
    approval = result.json["approval"]
    assert approval["status"] == "approved"
    assert approval["schedule_missed"] is True
    assert "had passed" in approval["note"]


def test_reject_needs_a_comment_and_returns_the_post_to_draft(
    client: TestClient, draft: dict[str, Any]
) -> None:
    # Given a post waiting for Jane
    submit(client, draft["id"], approvers=[JANE])

    # When she rejects it without a comment, then with one
    bare = decide(client, draft["id"], "reject", approver="jane@example.com")
    result = decide(
        client, draft["id"], "reject", approver="jane@example.com", comment="Say 25%, not 20%"
    )

    # I expect 422 naming comment, then a draft with the comment kept on the request
    assert bare.status_code == 422
    assert fields_of(bare) == {"comment": "is required"}
    assert result.status_code == 200, result.json
    assert result.json["status"] == "draft"
    assert result.json["approval"]["status"] == "rejected"
    assert result.json["approval"]["comment"] == "Say 25%, not 20%"


def test_deciding_with_nothing_pending_is_a_conflict(
    client: TestClient, draft: dict[str, Any]
) -> None:
    # Given a post never submitted, and one already approved
    never = decide(client, draft["id"], "approve", approver="jane@example.com")
    submit(client, draft["id"], approvers=[JANE])
    decide(client, draft["id"], "approve", approver="jane@example.com")

    # When each is decided on
    twice = decide(client, draft["id"], "reject", approver="jane@example.com", comment="no")

    # I expect 409 saying nothing waits
    assert never.status_code == 409
    assert "no approval is pending" in never.json["error"]["message"]
    assert twice.status_code == 409
    assert "the last request was approved" in twice.json["error"]["message"]


def test_history_lists_requests_newest_first(client: TestClient, draft: dict[str, Any]) -> None:
    # Given a request rejected, then a second one approved
    submit(client, draft["id"], approvers=[JANE])
    decide(client, draft["id"], "reject", approver="jane@example.com", comment="Fix the price")
    client.simulate_patch(f"/v1/posts/{draft['id']}", json={"content": "Spring sale: 25% off"})
    submit(client, draft["id"], approvers=[OMAR], notification_type="whatsapp")
    decide(client, draft["id"], "approve", approver="+33612345678")

    # When the history is read
    result = client.simulate_get(f"/v1/posts/{draft['id']}/approvals")

    # I expect both, newest first
    assert result.status_code == 200
    assert [(a["status"], a["comment"]) for a in result.json["data"]] == [
        ("approved", None),
        ("rejected", "Fix the price"),
    ]
    assert result.json["data"][0]["notices"] == []


# --- the gate -----------------------------------------------------------------------------


def test_a_brand_requiring_approval_keeps_unapproved_posts_off_the_schedule(
    client: TestClient, draft: dict[str, Any], account: dict[str, Any], brand: str
) -> None:
    # When a post of the brand is scheduled or published in any way without an approval
    path = f"/v1/posts/{draft['id']}"
    tries = {
        "create scheduled": client.simulate_post(
            "/v1/posts",
            json={
                "content": "x",
                "account_ids": [account["id"]],
                "brand_id": brand,
                "scheduled_at": iso(future()),
            },
        ),
        "create now": client.simulate_post(
            "/v1/posts",
            json={
                "content": "x",
                "account_ids": [account["id"]],
                "brand_id": brand,
                "publish_now": True,
            },
        ),
        "schedule": client.simulate_put(path + "/schedule", json={"scheduled_at": iso(future())}),
        "publish": client.simulate_post(path + "/publish"),
        "patch": client.simulate_patch(path, json={"scheduled_at": iso(future())}),
    }

    # I expect 409 "needs approval" each time, and the draft untouched
    for name, result in tries.items():
        assert result.status_code == 409, (name, result.json)
        assert "needs approval" in result.json["error"]["message"], name
    assert client.simulate_get(path).json["status"] == "draft"


def test_a_post_waiting_for_approval_cannot_be_scheduled_or_published(
    client: TestClient, account: dict[str, Any], make_post: MakePost
) -> None:
    # Given a post with no brand, submitted
    post = make_post([account["id"]])
    submit(client, post["id"], approvers=[JANE])

    # When it is scheduled or published
    path = f"/v1/posts/{post['id']}"
    schedule = client.simulate_put(path + "/schedule", json={"scheduled_at": iso(future())})
    publish = client.simulate_post(path + "/publish")

    # I expect 409 saying it waits for approval
    for result in (schedule, publish):
        assert result.status_code == 409
        assert "waiting for approval" in result.json["error"]["message"]


def test_editing_a_waiting_post_withdraws_its_request(
    client: TestClient, draft: dict[str, Any]
) -> None:
    # Given a post waiting for approval
    submit(client, draft["id"], approvers=[JANE])

    # When its text is edited
    result = client.simulate_patch(f"/v1/posts/{draft['id']}", json={"content": "New text"})

    # I expect it a draft again, its request withdrawn and saying why, and no approving it now
    assert result.status_code == 200, result.json
    assert result.json["status"] == "draft"
    approval = result.json["approval"]
    assert approval["status"] == "withdrawn"
    assert "changed while it waited" in approval["comment"]
    [notice] = result.json["notices"]
    assert "withdrew the post's pending approval request" in notice, notice
    assert decide(client, draft["id"], "approve", approver="jane@example.com").status_code == 409


def test_editing_an_approved_post_needs_a_new_approval(
    client: TestClient, draft: dict[str, Any]
) -> None:
    # Given an approved post of a brand requiring approval, scheduled
    submit(client, draft["id"], approvers=[JANE], scheduled_at=iso(future(days=2)))
    assert decide(client, draft["id"], "approve", approver="jane@example.com").json["status"] == (
        "scheduled"
    )

    # When its media change
    result = client.simulate_patch(
        f"/v1/posts/{draft['id']}", json={"media": [{"url": "https://cdn.example.com/a.png"}]}
    )

    # I expect it off the schedule, its approval no longer valid, and scheduling it refused
    assert result.status_code == 200, result.json
    assert result.json["status"] == "draft"
    assert {t["status"] for t in result.json["targets"]} == {"draft"}
    assert result.json["approval"]["status"] == "withdrawn"
    # and the answer saying so, and what to do
    [notice] = result.json["notices"]
    assert "withdrew the post's approved approval request" in notice, notice
    assert f"/v1/posts/{draft['id']}/submit" in notice
    assert client.simulate_get(f"/v1/posts/{draft['id']}").json["notices"] == []
    again = client.simulate_put(
        f"/v1/posts/{draft['id']}/schedule", json={"scheduled_at": iso(future())}
    )
    assert again.status_code == 409
    assert "needs approval" in again.json["error"]["message"]


def test_taking_back_canceling_or_deleting_a_waiting_post_withdraws_its_request(
    client: TestClient,
    account: dict[str, Any],
    make_post: MakePost,
    brand: str,
    engine: Engine,
) -> None:
    # Given three posts waiting for approval
    posts = [make_post([account["id"]], brand_id=brand) for _ in range(3)]
    for post in posts:
        submit(client, post["id"], approvers=[JANE])

    # When one is taken back to draft, one canceled and one deleted
    drafted = client.simulate_patch(f"/v1/posts/{posts[0]['id']}", json={"status": "draft"})
    canceled = client.simulate_post(f"/v1/posts/{posts[1]['id']}/cancel")
    deleted = client.simulate_delete(f"/v1/posts/{posts[2]['id']}")

    # I expect the first two requests withdrawn, and the third gone with its post
    assert (drafted.json["status"], drafted.json["approval"]["status"]) == ("draft", "withdrawn")
    assert (canceled.json["status"], canceled.json["approval"]["status"]) == (
        "canceled",
        "withdrawn",
    )
    assert deleted.status_code == 204
    with session_scope(engine) as session:
        left = session.exec(select(Approval.post_id)).all()
    assert sorted(left) == sorted([posts[0]["id"], posts[1]["id"]])


def test_brand_id_must_be_one_of_the_tenants_brands(
    client: TestClient, engine: Engine, other_tenant: Tenant, account: dict[str, Any], draft: Any
) -> None:
    # Given another tenant's brand
    theirs = add_brand(engine, other_tenant.id, requires_approval=False)

    # When a post is created or changed to use it
    created = client.simulate_post(
        "/v1/posts", json={"content": "x", "account_ids": [account["id"]], "brand_id": theirs}
    )
    patched = client.simulate_patch(f"/v1/posts/{draft['id']}", json={"brand_id": theirs})

    # I expect 422 naming brand_id
    assert created.status_code == 422
    assert fields_of(created) == {"brand_id": "no such brand"}
    assert patched.status_code == 422
    assert fields_of(patched) == {"brand_id": "no such brand"}


def test_another_tenant_can_neither_submit_decide_nor_read(
    client: TestClient, other_client: TestClient, draft: dict[str, Any]
) -> None:
    # Given a post waiting for approval
    submit(client, draft["id"], approvers=[JANE])

    # When another tenant's app submits, approves or reads it
    results = [
        submit(other_client, draft["id"], approvers=[JANE]),
        decide(other_client, draft["id"], "approve", approver="jane@example.com"),
        other_client.simulate_get(f"/v1/posts/{draft['id']}/approvals"),
    ]

    # I expect 404 each time and the request still pending
    assert [r.status_code for r in results] == [404, 404, 404]
    assert client.simulate_get(f"/v1/posts/{draft['id']}").json["approval"]["status"] == ("pending")


# --- lists ---------------------------------------------------------------------------------


def test_the_post_list_shows_each_posts_latest_request_in_one_query(
    client: TestClient, engine: Engine, account: dict[str, Any], make_post: MakePost
) -> None:
    # Given two pages' worth of posts, with and without requests
    def statements_for_list() -> int:
        count = 0

        def counted(*_: Any) -> None:
            nonlocal count
            count += 1

        event.listen(engine, "before_cursor_execute", counted)
        try:
            assert client.simulate_get("/v1/posts?limit=100").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", counted)
        return count

    first = make_post([account["id"]])
    submit(client, first["id"], approvers=[JANE])
    few = statements_for_list()
    for _ in range(5):
        post = make_post([account["id"]])
        submit(client, post["id"], approvers=[JANE])
    make_post([account["id"]])

    # When the list is read
    listing = client.simulate_get("/v1/posts?limit=100").json["data"]

    # I expect each post's request (or none), and as many statements as with one post
    assert [p["approval"]["status"] if p["approval"] else None for p in listing] == [None] + [
        "pending"
    ] * 6
    assert statements_for_list() == few


# --- the broker away -----------------------------------------------------------------------


@pytest.fixture
def client_without_broker(
    settings: Settings, engine: Engine, platforms: PlatformRegistry, tenant: Tenant
) -> Iterator[TestClient]:
    """An app whose broker is a Redis that does not answer (nothing listens on its port)."""
    broker = RedisBroker(client=redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    for contract in CONTRACTS:
        broker.declare_queue(contract.queue)
    app: falcon.App = create_app(settings, engine=engine, broker=broker, platforms=platforms)
    yield TestClient(app, headers=tenant.headers)
    broker.close()


def test_with_the_broker_away_the_request_still_stands(
    client_without_broker: TestClient, draft: dict[str, Any], engine: Engine
) -> None:
    # When a post is submitted while the broker is away
    result = submit(client_without_broker, draft["id"], approvers=[JANE])

    # I expect it accepted, and the request marked for the scheduler to send
    assert result.status_code == 200, result.json
    assert result.json["status"] == "pending_approval"
    with session_scope(engine) as session:
        approval = session.exec(select(Approval)).one()
    assert approval.updated_at.year == 1970


# --- webhook signing key ----------------------------------------------------------------------


def test_each_tenant_reads_its_own_webhook_signing_key(
    engine: Engine,
    broker: StubBroker,
    platforms: Any,
    settings: Any,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    # Given an operator secret
    signed = settings.model_copy(update={"approval_webhook_secret": "operator-secret"})
    app = create_app(signed, engine=engine, broker=broker, platforms=platforms)

    # When two tenants read their keys
    mine = TestClient(app, headers=tenant.headers).simulate_get("/v1/webhooks/signing-key")
    theirs = TestClient(app, headers=other_tenant.headers).simulate_get("/v1/webhooks/signing-key")

    # I expect each its own key, neither the operator's secret
    assert mine.status_code == 200
    assert mine.json["key"] == tenant_signing_key("operator-secret", tenant.id)
    assert theirs.json["key"] == tenant_signing_key("operator-secret", other_tenant.id)
    assert mine.json["key"] != theirs.json["key"]
    assert "operator-secret" not in mine.text


def test_without_an_operator_secret_there_is_no_signing_key(client: TestClient) -> None:
    result = client.simulate_get("/v1/webhooks/signing-key")

    assert result.status_code == 409
    assert "APPROVAL_WEBHOOK_SECRET" in result.json["error"]["message"]
