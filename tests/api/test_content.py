"""Starting content jobs: 202 with the job once it is enqueued, and 404, 409 or 422 before
anything is (the content queues stay empty)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine

from herald_common.contracts import GENERATE_MONTHLY, REGENERATE_POST
from herald_common.db import session_scope
from herald_common.models import Post

from .conftest import fields_of

MakeAccount = Callable[..., dict[str, Any]]
MakePost = Callable[..., dict[str, Any]]
PARIS = ZoneInfo("Europe/Paris")


def next_month() -> tuple[int, int]:
    today = datetime.now(PARIS)
    return (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)


def last_month() -> tuple[int, int]:
    today = datetime.now(PARIS)
    return (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)


def queued(broker: StubBroker, queue: str) -> list[dramatiq.Message[Any]]:
    """The messages waiting on a queue (read without taking them)."""
    return [dramatiq.Message.decode(raw) for raw in list(broker.queues[queue].queue)]


@pytest.fixture
def brand(client: TestClient, make_account: MakeAccount) -> dict[str, Any]:
    """A brand whose default account is a sandbox one."""
    result = client.simulate_post(
        "/v1/brands",
        json={
            "name": "Bean There",
            "topics": ["latte art"],
            "timezone": "Europe/Paris",
            "default_account_ids": [make_account()["id"]],
        },
    )
    assert result.status_code == 201, result.json
    return result.json


def generate(client: TestClient, brand_id: str, **body: Any) -> Any:
    year, month = next_month()
    return client.simulate_post(
        f"/v1/brands/{brand_id}/generate",
        json={"month": month, "year": year, "platforms": ["sandbox"], **body},
    )


def test_generate_accepts_the_job_and_enqueues_it(
    client: TestClient, broker: StubBroker, brand: dict[str, Any]
) -> None:
    # When a month is asked for, with preferences
    result = generate(
        client,
        brand["id"],
        preferences={"tone": "bold", "hashtags": ["coffee", "#Coffee"], "style": "tips"},
    )

    # Then the job is accepted, queued, sized at the default 30 posts
    assert result.status_code == 202, result.json
    job = result.json
    assert result.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["progress"], job["total"]) == (
        "content.generate.monthly",
        "queued",
        0,
        30,
    )
    assert job["brand_id"] == brand["id"]
    assert client.simulate_get(f"/v1/jobs/{job['id']}").json == job
    # and one message is on the content queue, for the contract's actor, naming the job
    [message] = queued(broker, GENERATE_MONTHLY.queue)
    assert message.actor_name == GENERATE_MONTHLY.actor_name
    year, month = next_month()
    assert message.kwargs == {
        "tenant_id": message.kwargs["tenant_id"],
        "job_id": job["id"],
        "brand_id": brand["id"],
        "month": month,
        "year": year,
        "count": 30,
        "platforms": ["sandbox"],
        "preferences": {"tone": "bold", "hashtags": ["#coffee"], "style": "tips"},
    }


def test_the_current_month_may_be_generated(
    client: TestClient, broker: StubBroker, brand: dict[str, Any]
) -> None:
    today = datetime.now(PARIS)
    result = client.simulate_post(
        f"/v1/brands/{brand['id']}/generate",
        json={"month": today.month, "year": today.year, "count": 1, "platforms": ["sandbox"]},
    )

    # (on a month's very last hour nothing fits; the 422 then says so)
    if result.status_code == 422:
        assert "count" in fields_of(result)
    else:
        assert result.status_code == 202, result.json
        assert len(queued(broker, GENERATE_MONTHLY.queue)) == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"platforms": ["x", "myspace"]}, "platforms.1", "not a platform Herald knows"),
        ({"platforms": []}, "platforms", "at least 1 item"),
        ({"count": 0}, "count", "greater than or equal to 1"),
        ({"count": 101}, "count", "less than or equal to 100"),
        ({"month": 13}, "month", "less than or equal to 12"),
        ({"month": 2, "year": 2020}, "month", "February 2020 is over"),
        ({"preferences": {"mood": "happy"}}, "preferences.mood", "unknown field"),
        ({"preferences": {"hashtags": ["a b"]}}, "preferences.hashtags.0", "one word"),
    ],
)
def test_generate_refuses_before_anything_is_enqueued(
    client: TestClient,
    broker: StubBroker,
    engine: Engine,
    brand: dict[str, Any],
    body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    result = generate(client, brand["id"], **body)

    assert result.status_code == 422
    reasons = fields_of(result)
    assert words in reasons.get(field, ""), reasons
    assert queued(broker, GENERATE_MONTHLY.queue) == []
    assert client.simulate_get("/v1/jobs").json["data"] == []


def test_platforms_without_a_default_account_are_refused(
    client: TestClient, broker: StubBroker, brand: dict[str, Any]
) -> None:
    # Given a brand whose only default account is a sandbox one
    # When drafts are asked for the sandbox, X and Bluesky
    result = generate(client, brand["id"], platforms=["sandbox", "x", "bluesky"])

    # Then the request is refused, naming the platforms it has no account on, and nothing waits
    assert result.status_code == 422
    reason = fields_of(result)["platforms"]
    assert "has no default account on x, bluesky" in reason, reason
    assert queued(broker, GENERATE_MONTHLY.queue) == []


def test_last_month_is_over(client: TestClient, broker: StubBroker, brand: dict[str, Any]) -> None:
    year, month = last_month()

    result = generate(client, brand["id"], month=month, year=year)

    assert result.status_code == 422
    assert "is over in the brand's time zone (Europe/Paris)" in fields_of(result)["month"]
    assert queued(broker, GENERATE_MONTHLY.queue) == []


def test_another_tenants_brand_is_not_found(
    other_client: TestClient, broker: StubBroker, brand: dict[str, Any]
) -> None:
    result = generate(other_client, brand["id"])

    assert result.status_code == 404
    assert queued(broker, GENERATE_MONTHLY.queue) == []


# --- regenerate ---------------------------------------------------------------------------------


@pytest.fixture
def branded_post(
    client: TestClient,
    engine: Engine,
    brand: dict[str, Any],
    make_account: MakeAccount,
    make_post: MakePost,
) -> dict[str, Any]:
    """A post of the brand with parts, as the content worker leaves one."""
    post = make_post([make_account()["id"]], content="Hook.\n\nBody.\n\n#coffee")
    parts = {"hook": "Hook.", "body": "Body.", "hashtags": ["#coffee"], "topic": "latte art"}
    with session_scope(engine) as session:
        session.execute(
            update(Post)
            .where(Post.id == post["id"])  # type: ignore[arg-type]
            .values(brand_id=brand["id"], parts=parts)
        )
    return post


def test_regenerate_accepts_the_job_and_enqueues_it(
    client: TestClient, broker: StubBroker, branded_post: dict[str, Any], brand: dict[str, Any]
) -> None:
    result = client.simulate_post(
        f"/v1/posts/{branded_post['id']}/regenerate", json={"part": "hook"}
    )

    assert result.status_code == 202, result.json
    job = result.json
    assert (job["kind"], job["status"], job["total"]) == ("content.regen.single", "queued", 1)
    assert (job["post_id"], job["brand_id"]) == (branded_post["id"], brand["id"])
    [message] = queued(broker, REGENERATE_POST.queue)
    assert message.actor_name == REGENERATE_POST.actor_name
    assert (message.kwargs["post_id"], message.kwargs["part"]) == (branded_post["id"], "hook")
    assert queued(broker, GENERATE_MONTHLY.queue) == []


@pytest.mark.parametrize(
    ("target", "post", "words"),
    [
        ({"status": "published"}, None, "a published post cannot be regenerated"),
        ({"status": "publishing"}, None, "being published right now"),
        ({"status": "unknown"}, None, "unknown state"),
        (None, "pending_approval", "waiting for approval"),
        (None, "approved", "approved"),
    ],
)
def test_regenerate_refuses_a_post_that_went_out_or_waits_for_approval(
    client: TestClient,
    broker: StubBroker,
    engine: Engine,
    set_target: Callable[..., None],
    branded_post: dict[str, Any],
    target: dict[str, Any] | None,
    post: str | None,
    words: str,
) -> None:
    # Given the post moved on
    if target is not None:
        set_target(branded_post["targets"][0]["id"], **target)
    if post is not None:
        with session_scope(engine) as session:
            session.execute(
                update(Post).where(Post.id == branded_post["id"]).values(status=post)  # type: ignore[arg-type]
            )

    # When any part is asked for again
    result = client.simulate_post(
        f"/v1/posts/{branded_post['id']}/regenerate", json={"part": "full"}
    )

    # Then 409 says why, and nothing is enqueued
    assert result.status_code == 409
    assert words in result.json["error"]["message"]
    assert queued(broker, REGENERATE_POST.queue) == []


def test_a_post_without_brand_or_topic_needs_one(
    client: TestClient, broker: StubBroker, make_account: MakeAccount, make_post: MakePost
) -> None:
    post = make_post([make_account()["id"]], content="Written by hand.")
    path = f"/v1/posts/{post['id']}/regenerate"

    refused = client.simulate_post(path, json={"part": "full"})
    assert refused.status_code == 422
    assert "no brand" in fields_of(refused)["preferences.topics"]
    assert queued(broker, REGENERATE_POST.queue) == []

    accepted = client.simulate_post(
        path, json={"part": "full", "preferences": {"topics": ["spring menu"]}}
    )
    assert accepted.status_code == 202, accepted.json
    assert accepted.json["brand_id"] is None
    assert len(queued(broker, REGENERATE_POST.queue)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({"part": "title"}, "part"), ({}, "part"), ({"part": "hook", "extra": 1}, "extra")],
)
def test_regenerate_checks_its_body(
    client: TestClient, broker: StubBroker, branded_post: dict[str, Any], body: dict, field: str
) -> None:
    result = client.simulate_post(f"/v1/posts/{branded_post['id']}/regenerate", json=body)

    assert result.status_code == 422
    assert field in fields_of(result)
    assert queued(broker, REGENERATE_POST.queue) == []


def test_another_tenants_post_is_not_found(
    other_client: TestClient, broker: StubBroker, branded_post: dict[str, Any]
) -> None:
    result = other_client.simulate_post(
        f"/v1/posts/{branded_post['id']}/regenerate", json={"part": "hook"}
    )

    assert result.status_code == 404
    assert queued(broker, REGENERATE_POST.queue) == []
