"""What an operator sees, scraped from the running processes: /metrics of the API (two gunicorn
workers), the publisher, the token-refresher and the scheduler; the queue admin API against
what Redis holds; and the admin health when nothing drains.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from herald_embedded.stack import Stack, wait_for
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json
from tests.e2e.test_publish_flow import account, settled


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {
        "WEB_CONCURRENCY": "2",
        "METRICS_INTERVAL_SECONDS": "0.3",
        "HEARTBEAT_INTERVAL_SECONDS": "0.3",
        "HEARTBEAT_TIMEOUT_SECONDS": "3",
    }
    logdir = tmp_path_factory.mktemp("observability-logs")
    with e2e_stack(pg_url, redis_server_url, logdir, env) as stack:
        yield stack.start(services=())


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.create_tenant("ops", admin=True)) as client:
        yield client


@pytest.fixture(scope="module")
def raw(stack: Stack, redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url)
    yield client
    client.close()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample a /metrics endpoint serves."""
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def queue(admin: httpx.Client, name: str, **params: object) -> dict:
    response = admin.get(f"/v1/admin/queues/{name}", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_metrics_after_a_publish_and_a_failure(stack: Stack) -> None:
    with stack.client() as client:
        # Given one account that works and one the platform refuses for good
        ok = account(client, "metrics-ok")
        refused = account(client, "metrics-no", fail="permanent")
        # When 3 posts go to the first and 1 to the second, through both gunicorn workers
        posts = [
            post_json(client, "/v1/posts", {"content": f"m{n}", "account_ids": [ok]})["id"]
            for n in range(3)
        ]
        failing = post_json(client, "/v1/posts", {"content": "no", "account_ids": [refused]})
        for post_id in posts:
            assert client.post(f"/v1/posts/{post_id}/publish").status_code == 200
        assert client.post(f"/v1/posts/{failing['id']}/publish").status_code == 200
        for post_id in posts:
            wait_for(settled(client, post_id, "published"), timeout=15, what="published")
        wait_for(settled(client, failing["id"], "failed"), timeout=15, what="failed")

    # Then the publisher's /metrics counts them, by platform and reason, with their lateness
    publisher = scrape(stack.metrics_url("publisher"))
    assert value(publisher, "herald_targets_published_total", platform="sandbox") == 3
    assert (
        value(publisher, "herald_targets_failed_total", platform="sandbox", reason="permanent") == 1
    )
    assert value(publisher, "herald_publish_lateness_seconds_count", platform="sandbox") == 3
    assert value(publisher, "herald_publish_lateness_seconds_sum", platform="sandbox") < 30
    assert value(publisher, "herald_publish_attempts_total", outcome="failed") == 1
    # and Dramatiq's own middleware counts the messages
    assert value(publisher, "dramatiq_messages_total", queue_name="publish") >= 4
    # The API's counts add up over both gunicorn workers
    api = scrape(stack.metrics_url("api"))
    created = value(
        api, "herald_http_requests_total", route="/v1/posts", method="POST", status="201"
    )
    assert created == 4
    assert (
        value(api, "herald_http_request_duration_seconds_count", route="/v1/posts", method="POST")
        == 4
    )
    assert not any("post_id=" in str(labels) for _, labels in api)  # templates, never ids
    # The scheduler dispatched them; nothing due waits; workers beat
    scheduler = scrape(stack.metrics_url("scheduler"))
    assert value(scheduler, "herald_targets_dispatched_total") >= 4
    assert value(scheduler, "herald_scheduler_last_tick_timestamp_seconds") > 0

    def scheduler_sees_workers() -> bool:
        s = scrape(stack.metrics_url("scheduler"))
        return (
            value(s, "herald_workers_alive", role="publish") == 1
            and value(s, "herald_workers_alive", role="token-refresh") == 1
            and value(s, "herald_workers_alive", role="scheduler") == 1
            and value(s, "herald_oldest_due_target_age_seconds") == 0
        )

    wait_for(scheduler_sees_workers, timeout=10, what="the scheduler's gauges")
    # The token-refresher serves its own endpoint
    assert httpx.get(stack.metrics_url("token-refresher"), timeout=5).status_code == 200


def test_queue_counts_match_redis_and_a_dead_letter_is_retried(
    stack: Stack, admin: httpx.Client, raw: redis.Redis
) -> None:
    # Given messages straight on Redis: a malformed publish message (it dies at once), and 3
    # content jobs waiting plus 2 delayed, which no worker drains yet
    broker = RedisBroker(client=raw, namespace=stack.namespace)
    bad = Message(
        queue_name="publish",
        actor_name="publish_target",
        args=(),
        kwargs={"target_id": "x" * 50, "version": 1},
        options={},
    )
    broker.enqueue(bad)
    for n in range(3):
        broker.enqueue(_content(n))
    for n in range(2):
        broker.enqueue(_content(10 + n), delay=3_600_000)
    ns = stack.namespace
    wait_for(lambda: queue(admin, "publish")["failed"] == 1, timeout=15, what="a dead letter")

    # I expect the admin counts to be what Redis holds
    content = queue(admin, "content", state="waiting")
    assert (content["waiting"], content["delayed"]) == (3, 2)
    assert content["waiting"] == raw.llen(f"{ns}:content")
    assert content["delayed"] == raw.hlen(f"{ns}:content.DQ.msgs")
    assert [j["payload"]["brand_id"] for j in content["jobs"]] == ["b0", "b1", "b2"]
    dead = queue(admin, "publish", state="failed")
    assert dead["failed"] == raw.zcard(f"{ns}:publish.XQ") == 1
    [job] = dead["jobs"]
    assert job["message_id"] == bad.message_id
    assert job["error"].startswith("ValidationError")
    assert "target_id" in job["traceback"]
    listed = admin.get("/v1/admin/queues").json()["data"]
    assert {q["name"]: q["waiting"] for q in listed}["content"] == 3

    # When it is retried, it goes back on the queue and the publisher takes it again
    retried = admin.post("/v1/admin/queues/publish/retry-failed", json={"ids": [job["id"]]})
    assert retried.json()["retried"] == 1

    def died_again() -> dict | None:
        again = queue(admin, "publish", state="failed")["jobs"]
        # (its job record, which counts the tries, is written in the ledger's next batch: a
        # quarter of a second after the dead letter, so wait for both)
        if again and again[0]["failed_at"] > job["failed_at"] and again[0]["attempts"]:
            return again[0]
        return None

    # (it is still malformed, so it dies again: a second, later death of the same message)
    again = wait_for(died_again, timeout=15, what="the retried message to be processed")
    assert again["message_id"] == bad.message_id
    assert again["attempts"] == 1  # the count started afresh

    # When content's waiting jobs are cleared, the delayed ones stay
    cleared = admin.delete("/v1/admin/queues/content", params={"state": "waiting"}).json()
    assert cleared["cleared"] == {"waiting": 3}
    assert raw.llen(f"{ns}:content") == 0
    assert queue(admin, "content")["delayed"] == raw.hlen(f"{ns}:content.DQ.msgs") == 2
    # and clearing the dead letters empties exactly those
    admin.delete("/v1/admin/queues/publish", params={"state": "failed"})
    assert raw.zcard(f"{ns}:publish.XQ") == 0
    assert queue(admin, "content")["delayed"] == 2

    # The scheduler's gauge reads the same
    def gauge_matches() -> bool:
        s = scrape(stack.metrics_url("scheduler"))
        return (
            value(s, "herald_queue_messages", queue="content", state="delayed") == 2
            and value(s, "herald_queue_messages", queue="publish", state="failed") == 0
        )

    wait_for(gauge_matches, timeout=10, what="the queue gauges")


def _content(n: int) -> Message:
    return Message(
        queue_name="content",
        actor_name="generate_monthly_content",
        args=(),
        kwargs={"tenant_id": "t", "job_id": f"j{n}", "brand_id": f"b{n}"},
        options={},
    )


def test_a_stack_that_drains_nothing_shows_it(stack: Stack, admin: httpx.Client) -> None:
    # Given everything running, and no work left on queues nobody drains here: healthy
    admin.delete("/v1/admin/queues/content", params={"state": "all"})
    health = admin.get("/v1/admin/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "healthy", health.json()

    # When the publisher stops and a post is due now
    stack.stop("publisher")
    with stack.client() as client:
        sandbox = account(client, "stalled")
        created = post_json(client, "/v1/posts", {"content": "stuck", "account_ids": [sandbox]})
        assert client.post(f"/v1/posts/{created['id']}/publish").status_code == 200

        # Then the oldest due target ages, and the admin health names the cause
        def aging() -> bool:
            s = scrape(stack.metrics_url("scheduler"))
            return value(s, "herald_oldest_due_target_age_seconds") >= 1.5

        wait_for(aging, timeout=15, what="the oldest due target to age")

        # (a worker that stops cleanly leaves at once; one killed, as the harness's signal to
        # the whole process group does, is gone after HEARTBEAT_TIMEOUT_SECONDS)
        def unhealthy() -> dict | None:
            report = admin.get("/v1/admin/health")
            body = report.json()
            down = "publish: no live worker drains it" in body["problems"]
            return body if report.status_code == 503 and down else None

        report = wait_for(unhealthy, timeout=10, what="the health to name the cause")
        assert report["oldest_due_target_age_seconds"] >= 1.5

        # When it comes back, the post goes out and the age returns to zero
        stack.start_publisher()
        wait_for(settled(client, created["id"], "published"), timeout=20, what="published")

    def drained() -> bool:
        s = scrape(stack.metrics_url("scheduler"))
        return value(s, "herald_oldest_due_target_age_seconds") == 0

    wait_for(drained, timeout=10, what="the age to return to zero")
    wait_for(
        lambda: admin.get("/v1/admin/health").json()["status"] == "healthy",
        timeout=10,
        what="healthy again",
    )
