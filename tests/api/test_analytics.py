"""/v1/analytics: starting a pull (422 naming the field, nothing enqueued then), the aggregates
over known snapshots, and one post's history; tenant-scoped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.analytics import pull_ages
from herald_common.contracts import PULL_ANALYTICS
from herald_common.db import session_scope
from herald_common.models import Job, MetricSnapshot, Target
from herald_common.settings import get_settings
from herald_common.timeutil import utcnow

from .conftest import fields_of


def waiting(broker: StubBroker) -> list[dramatiq.Message]:
    return [dramatiq.Message.decode(m) for m in list(broker.queues[PULL_ANALYTICS.queue].queue)]


def nothing_enqueued(broker: StubBroker, engine: Engine) -> bool:
    with session_scope(engine) as session:
        jobs = session.exec(select(Job)).all()
    return all(q.qsize() == 0 for q in broker.queues.values()) and not jobs


@pytest.fixture
def published_post(
    make_account: Callable[..., dict[str, Any]],
    make_post: Callable[..., dict[str, Any]],
    set_target: Callable[..., None],
) -> dict[str, Any]:
    """A post published to two sandbox accounts."""
    post = make_post([make_account("one")["id"], make_account("two")["id"]], publish_now=True)
    for number, target in enumerate(post["targets"]):
        set_target(
            target["id"],
            status="published",
            platform_post_id=f"p{number}",
            published_at=utcnow(),
        )
    return post


def snap(engine: Engine, target_id: str, taken_at: datetime, **values: Any) -> None:
    with session_scope(engine) as session:
        target = session.get_one(Target, target_id)
        session.add(
            MetricSnapshot(
                tenant_id=target.tenant_id,
                target_id=target.id,
                post_id=target.post_id,
                account_id=target.account_id,
                platform=target.platform,
                taken_at=taken_at,
                **values,
            )
        )


# -- POST /v1/analytics/pull --------------------------------------------------------------------


def test_a_pull_is_accepted_as_a_job_and_sent_by_name(client, broker, tenant, published_post):
    # When a pull of one post's likes and views is asked for
    result = client.simulate_post(
        "/v1/analytics/pull",
        json={
            "start": "2026-04-01",
            "end": "2026-04-30",
            "metrics": ["likes", "views", "likes"],
            "post_ids": [published_post["id"]],
        },
    )

    # Then a job is accepted, and its message waits on the analytics queue
    assert result.status_code == 202, result.json
    job = result.json
    assert (job["kind"], job["status"]) == ("analytics.pull", "queued")
    assert result.headers["location"] == f"/v1/jobs/{job['id']}"
    [message] = waiting(broker)
    assert message.actor_name == PULL_ANALYTICS.actor_name
    assert message.kwargs == {
        "tenant_id": tenant.id,
        "job_id": job["id"],
        "target_ids": None,
        "start": "2026-04-01",
        "end": "2026-04-30",
        "metrics": ["likes", "views"],
        "post_ids": [published_post["id"]],
    }
    # And the tenant reads it back
    assert client.simulate_get(f"/v1/jobs/{job['id']}").json["status"] == "queued"


def test_a_pull_without_a_body_pulls_everything_with_the_default_metrics(client, broker):
    result = client.simulate_post("/v1/analytics/pull", json={})

    assert result.status_code == 202
    [message] = waiting(broker)
    assert message.kwargs["metrics"] == ["likes", "reposts", "replies", "views"]
    # over the last 30 days of publishing: a pull must fit in its job's time limit
    assert message.kwargs["post_ids"] is None and message.kwargs["end"] is None
    start = date.fromisoformat(message.kwargs["start"])
    assert start == datetime.now(UTC).date() - timedelta(days=29)


def test_a_pull_over_more_than_a_year_is_refused(client, broker):
    result = client.simulate_post(
        "/v1/analytics/pull", json={"start": "2024-01-01", "end": "2025-06-30"}
    )

    assert result.status_code == 422
    assert fields_of(result) == {"start": "the range may span at most 366 days"}
    assert waiting(broker) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metrics": ["likes", "shares"]}, "metrics.1"),
        ({"metrics": []}, "metrics"),
        ({"metrics": "likes"}, "metrics"),
        ({"start": "2026-04-30", "end": "2026-04-01"}, "end"),
        ({"start": "April"}, "start"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_pull_is_refused_before_anything_is_enqueued(client, broker, engine, body, field):
    result = client.simulate_post("/v1/analytics/pull", json=body)

    assert result.status_code == 422
    assert field in fields_of(result), result.json
    assert nothing_enqueued(broker, engine)


def test_posts_a_pull_names_must_be_the_tenants(
    client, other_client, broker, engine, published_post
):
    # Given a post of another tenant
    theirs = other_client.simulate_post(
        "/v1/posts",
        json={
            "content": "Theirs",
            "account_ids": [
                other_client.simulate_post(
                    "/v1/accounts", json={"platform": "sandbox", "handle": "x"}
                ).json["id"]
            ],
        },
    ).json["id"]

    # When this tenant names it (and one that does not exist) beside its own
    result = client.simulate_post(
        "/v1/analytics/pull", json={"post_ids": [published_post["id"], theirs, "nope"]}
    )

    # Then both are named, and nothing was enqueued
    assert result.status_code == 422
    assert fields_of(result) == {"post_ids.1": "no such post", "post_ids.2": "no such post"}
    assert nothing_enqueued(broker, engine)


# -- GET /v1/analytics --------------------------------------------------------------------------


def test_the_aggregates_sum_the_latest_snapshot_of_each_target_per_day(
    client, other_client, engine, published_post
):
    # Given snapshots of two targets over two days, and another tenant asking
    first, second = (t["id"] for t in published_post["targets"])
    day = utcnow().date() - timedelta(days=1)
    morning = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    snap(engine, first, morning, likes=1, views=10)
    snap(engine, first, morning + timedelta(hours=12), likes=4, views=40, quotes=1)
    snap(engine, second, morning + timedelta(hours=2), likes=2)
    snap(engine, first, morning + timedelta(days=1), likes=6, views=60)

    # When the aggregates are read, per day and per platform
    per_day = client.simulate_get("/v1/analytics", params={"group_by": "day"})
    per_platform = client.simulate_get("/v1/analytics", params={"group_by": "platform"})
    theirs = other_client.simulate_get("/v1/analytics")

    # Then each day sums each target's latest of that day; the platform view its latest overall
    assert per_day.status_code == 200, per_day.json
    assert per_day.json["end"] == utcnow().date().isoformat()
    assert per_day.json["start"] == (utcnow().date() - timedelta(days=29)).isoformat()
    assert [
        (r["day"], r["likes"], r["views"], r["quotes"], r["posts"]) for r in per_day.json["data"]
    ] == [
        (day.isoformat(), 4 + 2, 40, 1, 1),
        ((day + timedelta(days=1)).isoformat(), 6, 60, None, 1),
    ]
    [sandbox] = per_platform.json["data"]
    assert (sandbox["platform"], sandbox["likes"], sandbox["views"]) == ("sandbox", 6 + 2, 60)
    assert sandbox["day"] is None and sandbox["impressions"] is None
    assert theirs.json["data"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2024-01-01", "end": "2025-01-02"}, "start"),
        ({"start": "2026-02-02", "end": "2026-02-01"}, "end"),
        ({"group_by": "day,week"}, "group_by.1"),
        ({"platform": "myspace"}, "platform"),
        ({"end": "yesterday"}, "end"),
    ],
)
def test_aggregates_over_ranges_that_make_no_sense_are_refused(client, params, field):
    result = client.simulate_get("/v1/analytics", params=params)

    assert result.status_code == 422
    assert field in fields_of(result), result.json


def test_a_year_of_days_is_the_longest_range(client):
    result = client.simulate_get(
        "/v1/analytics", params={"start": "2025-01-02", "end": "2026-01-02"}
    )

    assert result.status_code == 200
    assert (result.json["start"], result.json["end"]) == ("2025-01-02", "2026-01-02")
    assert result.json["group_by"] == ["day", "account", "platform"]


# -- GET /v1/posts/{post_id}/analytics ----------------------------------------------------------


def test_a_posts_analytics_show_each_targets_history_and_the_latest_totals(
    client, other_client, engine, published_post
):
    first, second = (t["id"] for t in published_post["targets"])
    start = utcnow().replace(microsecond=0) - timedelta(hours=3)
    snap(engine, first, start + timedelta(hours=1), likes=3, extra={"bookmarks": 1})
    snap(engine, first, start, likes=1)
    snap(engine, second, start + timedelta(hours=2), likes=5, views=50)
    path = f"/v1/posts/{published_post['id']}/analytics"

    result = client.simulate_get(path)

    assert result.status_code == 200, result.json
    body = result.json
    by_target = {t["target_id"]: t for t in body["targets"]}
    assert [s["likes"] for s in by_target[first]["history"]] == [1, 3]
    assert by_target[first]["latest"]["extra"] == {"bookmarks": 1}
    assert by_target[second]["latest"]["views"] == 50
    assert body["totals"] == {
        "likes": 3 + 5,
        "reposts": None,
        "replies": None,
        "quotes": None,
        "views": 50,
        "impressions": None,
    }
    assert other_client.simulate_get(path).status_code == 404


# -- resolving a target as published starts its pulls -------------------------------------------


def test_a_target_a_person_marks_published_gets_its_first_pull(
    client, engine, make_account, make_post, set_target
):
    post = make_post([make_account()["id"]], publish_now=True)
    target_id = post["targets"][0]["id"]
    set_target(target_id, status="unknown", error_kind="unknown", attempt_count=1)

    result = client.simulate_post(
        f"/v1/posts/{post['id']}/targets/{target_id}/resolve",
        json={"outcome": "published", "platform_url": "https://example.org/p/1"},
    )

    assert result.status_code == 200, result.json
    with session_scope(engine) as session:
        target = session.get_one(Target, target_id)
    assert target.published_at is not None
    first = pull_ages(get_settings())[0]
    assert target.metrics_due_at == target.published_at + timedelta(seconds=first)


def test_the_document_describes_the_analytics_routes(anonymous: TestClient) -> None:
    paths = anonymous.simulate_get("/openapi.json").json["paths"]

    pull = paths["/v1/analytics/pull"]["post"]
    listing = {p["name"] for p in paths["/v1/analytics"]["get"]["parameters"]}
    assert pull["tags"] == ["analytics"] and "202" in pull["responses"]
    assert "422" in pull["responses"]
    assert listing == {"start", "end", "platform", "account_id", "group_by"}
    assert "404" in paths["/v1/posts/{post_id}/analytics"]["get"]["responses"]
