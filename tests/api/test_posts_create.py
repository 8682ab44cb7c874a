"""Creating posts: drafts, scheduled posts, publish-now, and every input rule."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from herald_api.app import create_app
from herald_api.auth import create_tenant
from herald_common.db import session_scope
from herald_common.models import Post, Target
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

from .conftest import fields_of, future, iso

MakeAccount = Callable[..., dict[str, Any]]


def _count(engine: Engine, model: type[Post] | type[Target]) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_create_a_draft(client: TestClient, make_account: MakeAccount) -> None:
    # Given two accounts
    first, second = make_account("one"), make_account("two")

    # When a post is created with no time
    result = client.simulate_post(
        "/v1/posts", json={"content": "Draft", "account_ids": [first["id"], second["id"]]}
    )

    # I expect a draft with one draft target per account and no due time
    assert result.status_code == 201
    post = result.json
    assert post["status"] == "draft"
    assert post["scheduled_at"] is None
    assert post["version"] == 1
    assert sorted(t["account_id"] for t in post["targets"]) == sorted([first["id"], second["id"]])
    assert {(t["status"], t["due_at"], t["version"]) for t in post["targets"]} == {
        ("draft", None, 1)
    }
    assert all(t["attempts"] == [] for t in post["targets"])
    assert result.headers["Location"] == f"/v1/posts/{post['id']}"


def test_create_a_scheduled_post(client: TestClient, make_account: MakeAccount) -> None:
    # Given a time tomorrow, with an offset
    account = make_account()
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)

    # When a post is scheduled for it
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "Tomorrow",
            "account_ids": [account["id"]],
            "scheduled_at": when.astimezone(
                __import__("zoneinfo").ZoneInfo("America/New_York")
            ).isoformat(),
        },
    )

    # I expect it scheduled in UTC, its target due at that instant
    assert result.status_code == 201
    post = result.json
    assert post["status"] == "scheduled"
    assert datetime.fromisoformat(post["scheduled_at"]) == when
    assert post["scheduled_at"].endswith("Z")
    assert post["timezone"] is None
    assert post["targets"][0]["status"] == "scheduled"
    assert datetime.fromisoformat(post["targets"][0]["due_at"]) == when


def test_a_local_time_is_read_in_its_timezone(
    client: TestClient, make_account: MakeAccount
) -> None:
    # When 09:00 in Paris on a summer day is asked for
    account = make_account()
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "Bonjour",
            "account_ids": [account["id"]],
            "scheduled_at": "2030-07-01T09:00:00",
            "timezone": "Europe/Paris",
        },
    )

    # I expect 07:00 UTC (CEST is UTC+2) and the zone kept
    assert result.status_code == 201
    assert result.json["scheduled_at"] == "2030-07-01T07:00:00Z"
    assert result.json["timezone"] == "Europe/Paris"
    assert result.json["targets"][0]["due_at"] == "2030-07-01T07:00:00Z"


def test_a_winter_local_time_uses_the_winter_offset(
    client: TestClient, make_account: MakeAccount
) -> None:
    account = make_account()
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "Hiver",
            "account_ids": [account["id"]],
            "scheduled_at": "2030-01-15T09:00",
            "timezone": "Europe/Paris",
        },
    )

    assert result.json["scheduled_at"] == "2030-01-15T08:00:00Z"


def test_a_local_time_in_a_dst_gap_uses_fold_zero(
    client: TestClient, make_account: MakeAccount
) -> None:
    # Given 02:30 on the night Paris skips from 02:00 to 03:00 (a time that never happens)
    account = make_account()
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "Gap",
            "account_ids": [account["id"]],
            "scheduled_at": "2030-03-31T02:30",
            "timezone": "Europe/Paris",
        },
    )

    # I expect the offset from before the change (+01:00): 01:30Z
    assert result.json["scheduled_at"] == "2030-03-31T01:30:00Z"


def test_publish_now(client: TestClient, make_account: MakeAccount, broker: Any) -> None:
    # When a post is published now
    account = make_account()
    before = datetime.now(UTC)
    result = client.simulate_post(
        "/v1/posts", json={"content": "Now", "account_ids": [account["id"]], "publish_now": True}
    )

    # I expect its target scheduled and due now, and nothing sent to the broker by the API
    assert result.status_code == 201
    post = result.json
    assert post["status"] == "scheduled"
    due = datetime.fromisoformat(post["targets"][0]["due_at"])
    assert before <= due <= datetime.now(UTC)
    assert post["scheduled_at"] == post["targets"][0]["due_at"]
    assert all(broker.queues[q].qsize() == 0 for q in broker.queues)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"content": ""}, "content", "must not be empty when the post has no media"),
        ({"content": "   \n "}, "content", "must not be empty when the post has no media"),
        ({"content": "x" * 10_001}, "content", "must be at most 10000 characters"),
        ({"content": 5}, "content", "must be a valid string"),
        ({"account_ids": []}, "account_ids", "must have at least 1 item"),
        ({"account_ids": "abc"}, "account_ids", "must be a valid array"),
        (
            {"account_ids": ["00000000-0000-0000-0000-000000000000"]},
            "account_ids.0",
            "no such account",
        ),
        ({"account_ids": [7]}, "account_ids.0", "must be a valid string"),
        (
            {"scheduled_at": "2030-07-01T09:00:00"},
            "scheduled_at",
            "has no UTC offset; add one or give timezone",
        ),
        ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at", "is in the past"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at", None),
        (
            {"scheduled_at": "2030-07-01T09:00", "timezone": "Mars/Olympus"},
            "timezone",
            "'Mars/Olympus' is not a known IANA time zone",
        ),
        ({"timezone": "Europe/Paris"}, "timezone", "needs scheduled_at"),
        (
            {"scheduled_at": "2030-07-01T09:00:00Z", "publish_now": True},
            "scheduled_at",
            "cannot be given together with publish_now",
        ),
        ({"publish_now": 1}, "publish_now", "must be a valid boolean"),
        ({"publish_now": "true"}, "publish_now", "must be a valid boolean"),
        ({"title": "nope"}, "title", "unknown field"),
    ],
)
def test_each_rule_is_422_naming_its_field(
    client: TestClient,
    engine: Engine,
    make_account: MakeAccount,
    body: dict[str, Any],
    field: str,
    reason: str | None,
) -> None:
    # Given a valid post body with one thing wrong
    account = make_account()
    request = {"content": "Hello", "account_ids": [account["id"]], **body}

    # When it is posted
    result = client.simulate_post("/v1/posts", json=request)

    # I expect 422 naming the field (and its reason), and nothing written
    assert result.status_code == 422, result.json
    assert result.json["error"]["code"] == "invalid_input"
    errors = fields_of(result)
    assert field in errors, errors
    if reason is not None:
        assert errors[field] == reason
    assert _count(engine, Post) == 0
    assert _count(engine, Target) == 0


def test_too_many_accounts_is_422(client: TestClient) -> None:
    result = client.simulate_post(
        "/v1/posts", json={"content": "hi", "account_ids": [f"id-{n}" for n in range(51)]}
    )

    assert result.status_code == 422
    assert fields_of(result) == {"account_ids": "must have at most 50 items"}


def test_a_repeated_account_is_422(client: TestClient, make_account: MakeAccount) -> None:
    account = make_account()

    result = client.simulate_post(
        "/v1/posts", json={"content": "hi", "account_ids": [account["id"], account["id"]]}
    )

    assert result.status_code == 422
    assert fields_of(result) == {"account_ids.1": "repeats account_ids.0"}


def test_all_broken_rules_are_reported_together(client: TestClient) -> None:
    result = client.simulate_post(
        "/v1/posts",
        json={"content": " ", "account_ids": ["a"], "scheduled_at": "2030-01-01T00:00"},
    )

    assert result.status_code == 422
    assert set(fields_of(result)) == {"content", "account_ids.0", "scheduled_at"}


def test_content_too_long_for_a_sandbox_account_names_the_account(
    client: TestClient, engine: Engine, make_account: MakeAccount
) -> None:
    # Given an account that takes 20 characters and one that takes the default 500
    short = make_account("tiny", settings={"max_length": 20})
    roomy = make_account("roomy")

    # When a 30-character post is written for both
    result = client.simulate_post(
        "/v1/posts", json={"content": "x" * 30, "account_ids": [roomy["id"], short["id"]]}
    )

    # I expect 422 on content naming the short account and the rule, and no post written
    assert result.status_code == 422
    assert fields_of(result) == {
        "content": "too long for sandbox account @tiny (max_length): is 30 characters; "
        "this sandbox account takes at most 20"
    }
    assert _count(engine, Post) == 0


def test_a_post_can_be_created_for_a_second_in_the_future(
    client: TestClient, make_account: MakeAccount
) -> None:
    account = make_account()
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "soon",
            "account_ids": [account["id"]],
            "scheduled_at": iso(future(seconds=5)),
        },
    )

    assert result.status_code == 201


# --- the 201 answer is built from what was written: it must read as the post reads back ------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_client(
    request: pytest.FixtureRequest,
    settings: Settings,
    broker: StubBroker,
) -> Iterator[TestClient]:
    """A tenant's client of an API on SQLite, then on PostgreSQL."""
    if request.param == "postgres":
        engine: Engine = request.getfixturevalue("pg_engine")
    else:
        engine = request.getfixturevalue("engine")
    platforms = PlatformRegistry(engine, settings)
    app = create_app(settings, engine=engine, broker=broker, platforms=platforms)
    with session_scope(engine) as session:
        _, key = create_tenant(session, "acme")
    yield TestClient(app, headers={"Authorization": f"Bearer {key}"})
    platforms.close()


@pytest.mark.parametrize(
    "when",
    [
        {},
        {"scheduled_at": "2030-07-01T09:00:00.123456", "timezone": "Europe/Paris"},
        {"publish_now": True},
    ],
    ids=["draft", "scheduled", "publish_now"],
)
def test_the_created_post_is_what_reads_back(any_client: TestClient, when: dict[str, Any]) -> None:
    # Given three accounts and a brand
    accounts = [
        any_client.simulate_post(
            "/v1/accounts", json={"platform": "sandbox", "handle": f"h{n}"}
        ).json["id"]
        for n in range(3)
    ]
    brand = any_client.simulate_post("/v1/brands", json={"name": "Acme"}).json["id"]

    # When a post with media is created for them
    created = any_client.simulate_post(
        "/v1/posts",
        json={
            "content": "Hello, 世界",
            "account_ids": accounts,
            "media": [{"url": "https://example.com/a.mp4", "alt": "a clip"}],
            "brand_id": brand,
            **when,
        },
    )

    # I expect the 201 answer to be exactly the post as it then reads back
    assert created.status_code == 201, created.json
    read = any_client.simulate_get(created.headers["Location"])
    assert read.status_code == 200
    assert created.json == read.json
    assert created.json["media"] == [
        {"url": "https://example.com/a.mp4", "alt": "a clip", "kind": "video"}
    ]
