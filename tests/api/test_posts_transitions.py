"""The post state machine: edit, reschedule, draft, accounts, publish, cancel, retry, delete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from herald_common.db import session_scope
from herald_common.models import Attempt, Post, Target
from herald_common.timeutil import utcnow

from .conftest import fields_of, future, iso

MakeAccount = Callable[..., dict[str, Any]]
MakePost = Callable[..., dict[str, Any]]
SetTarget = Callable[..., None]


@pytest.fixture
def two_accounts(make_account: MakeAccount) -> tuple[dict[str, Any], dict[str, Any]]:
    return make_account("one"), make_account("two")


@pytest.fixture
def scheduled(
    two_accounts: tuple[dict[str, Any], dict[str, Any]], make_post: MakePost
) -> dict[str, Any]:
    """A post scheduled tomorrow on two accounts."""
    return make_post([a["id"] for a in two_accounts], scheduled_at=iso(future()))


def _targets(post: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted((t["status"], t["version"]) for t in post["targets"])


# --- reschedule -------------------------------------------------------------------------------


def test_reschedule_bumps_versions_and_moves_due_times(
    client: TestClient, scheduled: dict[str, Any], set_target: SetTarget
) -> None:
    # Given one target already queued by the scheduler
    set_target(scheduled["targets"][0]["id"], status="queued", queued_at=utcnow())
    later = future(days=3).replace(microsecond=0)

    # When the post is rescheduled
    result = client.simulate_put(
        f"/v1/posts/{scheduled['id']}/schedule", json={"scheduled_at": iso(later)}
    )

    # I expect every target scheduled at the new time with its version bumped (the queued
    # message becomes stale), and the post's version bumped
    assert result.status_code == 200
    post = result.json
    assert post["status"] == "scheduled"
    assert datetime.fromisoformat(post["scheduled_at"]) == later
    assert _targets(post) == [("scheduled", 2), ("scheduled", 2)]
    assert {datetime.fromisoformat(t["due_at"]) for t in post["targets"]} == {later}
    assert post["version"] == scheduled["version"] + 1


def test_patch_scheduled_at_with_a_timezone(client: TestClient, scheduled: dict[str, Any]) -> None:
    result = client.simulate_patch(
        f"/v1/posts/{scheduled['id']}",
        json={"scheduled_at": "2031-07-01T09:00", "timezone": "Europe/Paris"},
    )

    assert result.status_code == 200
    assert result.json["scheduled_at"] == "2031-07-01T07:00:00Z"
    assert result.json["timezone"] == "Europe/Paris"
    assert {t["due_at"] for t in result.json["targets"]} == {"2031-07-01T07:00:00Z"}


def test_schedule_a_draft(client: TestClient, two_accounts: Any, make_post: MakePost) -> None:
    draft = make_post([a["id"] for a in two_accounts])

    result = client.simulate_put(
        f"/v1/posts/{draft['id']}/schedule", json={"scheduled_at": "2031-01-01T12:00:00+00:00"}
    )

    assert result.json["status"] == "scheduled"
    assert _targets(result.json) == [("scheduled", 2), ("scheduled", 2)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
        ({"scheduled_at": "2031-01-01T00:00:00"}, "scheduled_at"),
        ({"scheduled_at": "2031-01-01T00:00:00", "timezone": "Nowhere/City"}, "timezone"),
        ({"timezone": "Europe/Paris"}, "scheduled_at"),
        ({"scheduled_at": "2031-01-01T00:00:00Z", "later": True}, "later"),
    ],
)
def test_schedule_rules_are_422(
    client: TestClient, scheduled: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    result = client.simulate_put(f"/v1/posts/{scheduled['id']}/schedule", json=body)

    assert result.status_code == 422
    assert field in fields_of(result)
    assert client.simulate_get(f"/v1/posts/{scheduled['id']}").json["version"] == 1


@pytest.mark.parametrize("sent", ["publishing", "published", "unknown"])
def test_edits_are_409_once_a_target_went_out(
    client: TestClient, scheduled: dict[str, Any], set_target: SetTarget, sent: str
) -> None:
    # Given one of two targets in flight or done
    set_target(scheduled["targets"][0]["id"], status=sent)
    path = f"/v1/posts/{scheduled['id']}"

    # When the post is edited, rescheduled or made a draft
    results = [
        client.simulate_patch(path, json={"content": "changed"}),
        client.simulate_patch(path, json={"scheduled_at": iso(future(days=2))}),
        client.simulate_patch(path, json={"status": "draft"}),
        client.simulate_patch(path, json={"account_ids": [scheduled["targets"][1]["account_id"]]}),
        client.simulate_put(path + "/schedule", json={"scheduled_at": iso(future(days=2))}),
    ]

    # I expect 409 for each, saying why, and nothing changed
    for result in results:
        assert result.status_code == 409, result.json
        assert result.json["error"]["code"] == "conflict"
        assert "already published to" in result.json["error"]["message"]
    post = client.simulate_get(path).json
    assert post["content"] == scheduled["content"]
    assert post["version"] == 1


def test_409_message_counts_published_accounts(
    client: TestClient, scheduled: dict[str, Any], set_target: SetTarget
) -> None:
    set_target(scheduled["targets"][0]["id"], status="published")

    result = client.simulate_patch(f"/v1/posts/{scheduled['id']}", json={"content": "new"})

    assert result.json["error"]["message"] == (
        "cannot change this post: post was already published to 1 of 2 accounts; "
        "create a new post or retry failed targets"
    )


# --- edit -------------------------------------------------------------------------------------


def test_edit_content(client: TestClient, scheduled: dict[str, Any]) -> None:
    result = client.simulate_patch(f"/v1/posts/{scheduled['id']}", json={"content": "Edited"})

    assert result.status_code == 200
    assert result.json["content"] == "Edited"
    assert result.json["version"] == 2
    assert result.json["status"] == "scheduled"


def test_edit_checks_content_against_each_account(
    client: TestClient, make_account: MakeAccount, make_post: MakePost
) -> None:
    short = make_account("short", settings={"max_length": 10})
    post = make_post([short["id"]], content="fits")

    result = client.simulate_patch(f"/v1/posts/{post['id']}", json={"content": "far too long now"})

    assert result.status_code == 422
    assert "@short (max_length)" in fields_of(result)["content"]
    assert client.simulate_get(f"/v1/posts/{post['id']}").json["content"] == "fits"


@pytest.mark.parametrize("field", ["content", "account_ids", "scheduled_at"])
def test_null_is_not_a_value_for_patch(
    client: TestClient, scheduled: dict[str, Any], field: str
) -> None:
    result = client.simulate_patch(f"/v1/posts/{scheduled['id']}", json={field: None})

    assert result.status_code == 422
    assert fields_of(result) == {field: "must not be null"}


def test_draft_and_a_time_together_is_422(client: TestClient, scheduled: dict[str, Any]) -> None:
    result = client.simulate_patch(
        f"/v1/posts/{scheduled['id']}",
        json={"status": "draft", "scheduled_at": iso(future(days=2))},
    )

    assert result.status_code == 422
    assert "status" in fields_of(result)


def test_patch_status_draft_unschedules(client: TestClient, scheduled: dict[str, Any]) -> None:
    result = client.simulate_patch(f"/v1/posts/{scheduled['id']}", json={"status": "draft"})

    assert result.status_code == 200
    post = result.json
    assert post["status"] == "draft"
    assert post["scheduled_at"] is None
    assert _targets(post) == [("draft", 2), ("draft", 2)]
    assert {t["due_at"] for t in post["targets"]} == {None}


def test_only_draft_is_an_allowed_status(client: TestClient, scheduled: dict[str, Any]) -> None:
    result = client.simulate_patch(f"/v1/posts/{scheduled['id']}", json={"status": "published"})

    assert result.status_code == 422
    assert "status" in fields_of(result)


def test_change_accounts_cancels_removed_and_adds_new(
    client: TestClient, scheduled: dict[str, Any], make_account: MakeAccount
) -> None:
    # Given a post on accounts one and two, and a third account
    one, two = (t["account_id"] for t in scheduled["targets"])
    three = make_account("three")["id"]

    # When its accounts become two and three
    result = client.simulate_patch(
        f"/v1/posts/{scheduled['id']}", json={"account_ids": [two, three]}
    )

    # I expect one canceled (version bumped), two untouched, three added on the same schedule
    assert result.status_code == 200
    by_account = {t["account_id"]: t for t in result.json["targets"]}
    assert (by_account[one]["status"], by_account[one]["version"]) == ("canceled", 2)
    assert (by_account[two]["status"], by_account[two]["version"]) == ("scheduled", 1)
    assert (by_account[three]["status"], by_account[three]["version"]) == ("scheduled", 1)
    assert by_account[three]["due_at"] == by_account[two]["due_at"]
    assert result.json["status"] == "scheduled"

    # And when account one comes back, its canceled target is revived, not duplicated
    again = client.simulate_patch(
        f"/v1/posts/{scheduled['id']}", json={"account_ids": [one, two, three]}
    )
    assert again.status_code == 200
    revived = [t for t in again.json["targets"] if t["account_id"] == one]
    assert len(revived) == 1
    assert (revived[0]["status"], revived[0]["version"]) == ("scheduled", 3)
    assert revived[0]["id"] == by_account[one]["id"]


def test_a_removed_account_is_not_revived_by_a_reschedule(
    client: TestClient, scheduled: dict[str, Any]
) -> None:
    one, two = (t["account_id"] for t in scheduled["targets"])
    client.simulate_patch(f"/v1/posts/{scheduled['id']}", json={"account_ids": [two]})

    result = client.simulate_put(
        f"/v1/posts/{scheduled['id']}/schedule", json={"scheduled_at": iso(future(days=4))}
    )

    by_account = {t["account_id"]: t["status"] for t in result.json["targets"]}
    assert by_account == {one: "canceled", two: "scheduled"}


def test_adding_an_account_to_a_draft_adds_a_draft_target(
    client: TestClient, make_account: MakeAccount, make_post: MakePost
) -> None:
    first, second = make_account("a")["id"], make_account("b")["id"]
    draft = make_post([first])

    result = client.simulate_patch(f"/v1/posts/{draft['id']}", json={"account_ids": [second]})

    assert result.json["status"] == "draft"
    by_account = {t["account_id"]: (t["status"], t["due_at"]) for t in result.json["targets"]}
    assert by_account == {first: ("canceled", None), second: ("draft", None)}


# --- publish / cancel / retry -----------------------------------------------------------------


def test_publish_now_makes_every_unsent_target_due_now(
    client: TestClient, scheduled: dict[str, Any], set_target: SetTarget
) -> None:
    # Given one target failed and one scheduled tomorrow
    set_target(scheduled["targets"][0]["id"], status="failed", error="boom", error_kind="permanent")
    before = datetime.now(UTC)

    # When the post is published now
    result = client.simulate_post(f"/v1/posts/{scheduled['id']}/publish")

    # I expect both scheduled, due now, errors cleared, versions bumped
    assert result.status_code == 200
    post = result.json
    assert _targets(post) == [("scheduled", 2), ("scheduled", 2)]
    for target in post["targets"]:
        assert before <= datetime.fromisoformat(target["due_at"]) <= datetime.now(UTC)
        assert target["error"] is None and target["error_kind"] is None
    assert datetime.fromisoformat(post["scheduled_at"]) >= before
    assert post["status"] == "scheduled"


def test_publish_is_409_when_everything_went_out(
    client: TestClient, scheduled: dict[str, Any], set_target: SetTarget
) -> None:
    set_target(scheduled["targets"][0]["id"], status="published")
    set_target(scheduled["targets"][1]["id"], status="publishing")

    result = client.simulate_post(f"/v1/posts/{scheduled['id']}/publish")

    assert result.status_code == 409
    assert result.json["error"]["message"].startswith("nothing left to publish")


def test_cancel_stops_what_has_not_started(
    client: TestClient, scheduled: dict[str, Any], set_target: SetTarget
) -> None:
    # Given one target being published right now
    publishing, waiting = scheduled["targets"]
    set_target(publishing["id"], status="publishing")

    # When the post is canceled
    result = client.simulate_post(f"/v1/posts/{scheduled['id']}/cancel")

    # I expect the waiting target canceled and the publishing one shown as it is
    assert result.status_code == 200
    by_id = {t["id"]: t for t in result.json["targets"]}
    assert (by_id[waiting["id"]]["status"], by_id[waiting["id"]]["version"]) == ("canceled", 2)
    assert by_id[publishing["id"]]["status"] == "publishing"
    assert result.json["version"] == 2


def test_cancel_everything(client: TestClient, scheduled: dict[str, Any]) -> None:
    result = client.simulate_post(f"/v1/posts/{scheduled['id']}/cancel")

    assert result.json["status"] == "canceled"
    assert _targets(result.json) == [("canceled", 2), ("canceled", 2)]

    # And canceling again is 409, as there is nothing left
    again = client.simulate_post(f"/v1/posts/{scheduled['id']}/cancel")
    assert again.status_code == 409
    assert again.json["error"]["message"].startswith("nothing left to cancel")

    # And a canceled post can be scheduled again
    revived = client.simulate_put(
        f"/v1/posts/{scheduled['id']}/schedule", json={"scheduled_at": iso(future(days=2))}
    )
    assert revived.status_code == 200
    assert revived.json["status"] == "scheduled"
    assert _targets(revived.json) == [("scheduled", 3), ("scheduled", 3)]


def test_retry_sends_failed_targets_again(
    client: TestClient, scheduled: dict[str, Any], set_target: SetTarget
) -> None:
    # Given one target failed after three attempts and the other published
    failed, done = scheduled["targets"]
    set_target(
        failed["id"], status="failed", attempt_count=3, error="rejected", error_kind="permanent"
    )
    set_target(done["id"], status="published")
    assert (
        client.simulate_get(f"/v1/posts/{scheduled['id']}").json["status"] == "partially_published"
    )

    # When the post is retried
    result = client.simulate_post(f"/v1/posts/{scheduled['id']}/retry")

    # I expect the failed target due now with a fresh budget, the published one untouched
    assert result.status_code == 200
    by_id = {t["id"]: t for t in result.json["targets"]}
    retried = by_id[failed["id"]]
    assert (retried["status"], retried["attempt_count"], retried["version"]) == ("scheduled", 0, 2)
    assert retried["error"] is None and retried["error_kind"] is None
    assert datetime.fromisoformat(retried["due_at"]) <= datetime.now(UTC)
    assert by_id[done["id"]]["status"] == "published"
    assert result.json["status"] == "scheduled"


def test_retry_is_409_when_nothing_failed(client: TestClient, scheduled: dict[str, Any]) -> None:
    result = client.simulate_post(f"/v1/posts/{scheduled['id']}/retry")

    assert result.status_code == 409
    assert result.json["error"]["message"].startswith("nothing to retry")


# --- detail and delete ------------------------------------------------------------------------


def test_get_shows_each_targets_attempts(
    client: TestClient, engine: Engine, scheduled: dict[str, Any], tenant: Any
) -> None:
    # Given an attempt recorded for one target
    target_id = scheduled["targets"][0]["id"]
    with session_scope(engine) as session:
        session.add(
            Attempt(
                tenant_id=tenant.id,
                target_id=target_id,
                number=1,
                outcome="retryable",
                http_status=503,
                error="unavailable",
                lateness_seconds=0.25,
                duration_ms=12.5,
            )
        )

    # When the post is read
    post = client.simulate_get(f"/v1/posts/{scheduled['id']}").json

    # I expect the attempt under its target
    attempts = {t["id"]: t["attempts"] for t in post["targets"]}
    assert len(attempts[target_id]) == 1
    attempt = attempts[target_id][0]
    assert (attempt["number"], attempt["outcome"], attempt["http_status"]) == (1, "retryable", 503)
    assert set(attempt) == {
        "number", "due_at", "started_at", "finished_at", "lateness_seconds",
        "outcome", "http_status", "error", "duration_ms", "request_id",
    }  # fmt: skip


def _count(engine: Engine, model: Any) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_delete_removes_the_post_and_its_targets(
    client: TestClient, engine: Engine, scheduled: dict[str, Any], tenant: Any
) -> None:
    with session_scope(engine) as session:
        session.add(Attempt(tenant_id=tenant.id, target_id=scheduled["targets"][0]["id"], number=1))

    result = client.simulate_delete(f"/v1/posts/{scheduled['id']}")

    assert result.status_code == 204
    assert client.simulate_get(f"/v1/posts/{scheduled['id']}").status_code == 404
    assert (_count(engine, Post), _count(engine, Target), _count(engine, Attempt)) == (0, 0, 0)


def test_delete_is_409_while_publishing(
    client: TestClient, engine: Engine, scheduled: dict[str, Any], set_target: SetTarget
) -> None:
    set_target(scheduled["targets"][0]["id"], status="publishing")

    result = client.simulate_delete(f"/v1/posts/{scheduled['id']}")

    assert result.status_code == 409
    assert _count(engine, Target) == 2


def test_a_failing_edit_writes_nothing(
    client: TestClient, engine: Engine, scheduled: dict[str, Any]
) -> None:
    # Given the rows before
    before = (_count(engine, Post), _count(engine, Target))

    # When an edit changes content and accounts but one account does not exist
    result = client.simulate_patch(
        f"/v1/posts/{scheduled['id']}",
        json={"content": "new", "account_ids": [scheduled["targets"][0]["account_id"], "missing"]},
    )

    # I expect 422 and the post, its targets and their versions exactly as they were
    assert result.status_code == 422
    assert fields_of(result) == {"account_ids.1": "no such account"}
    assert (_count(engine, Post), _count(engine, Target)) == before
    post = client.simulate_get(f"/v1/posts/{scheduled['id']}").json
    assert post["content"] == scheduled["content"]
    assert _targets(post) == _targets(scheduled)
    assert post["version"] == scheduled["version"]


def test_the_api_never_enqueues(client: TestClient, scheduled: dict[str, Any], broker: Any) -> None:
    client.simulate_post(f"/v1/posts/{scheduled['id']}/publish")
    client.simulate_put(
        f"/v1/posts/{scheduled['id']}/schedule", json={"scheduled_at": iso(future(days=2))}
    )

    assert {name: q.qsize() for name, q in broker.queues.items()} == dict.fromkeys(broker.queues, 0)
