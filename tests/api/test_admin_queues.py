"""The queue admin API and the admin health report, on the in-process broker of `make run`.

The same endpoints on Redis are exercised end to end in tests/e2e/test_observability.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from prometheus_client import REGISTRY

from herald_common import ledger
from herald_common.queues import SCHEDULER_ROLE, queue_store
from herald_common.timeutil import utcnow
from herald_embedded.stack import wait_for
from tests.conftest import add_account, add_post

QUEUE = "content"


class Jobs:
    """A job on the content queue that fails until it is fixed, and a worker running it."""

    def __init__(self, broker: StubBroker) -> None:
        self.fixed = threading.Event()
        self.done: list[int] = []

        def draft(n: int) -> None:
            if not self.fixed.is_set():
                raise RuntimeError(f"writer unavailable for {n}")
            self.done.append(n)

        self.draft = dramatiq.actor(draft, broker=broker, queue_name=QUEUE, max_retries=0)


@pytest.fixture
def jobs(broker: StubBroker) -> Iterator[Jobs]:
    ledger.add_to(broker, heartbeat_interval=0.05)
    jobs = Jobs(broker)
    worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=1, worker_timeout=20)
    worker.start()
    yield jobs
    worker.stop()


def counts(admin: TestClient, name: str = QUEUE) -> dict:
    [queue] = [q for q in admin.simulate_get("/v1/admin/queues").json["data"] if q["name"] == name]
    return queue


ADMIN_ROUTES = [
    ("GET", "/v1/admin/queues", None),
    ("GET", f"/v1/admin/queues/{QUEUE}", None),
    ("DELETE", f"/v1/admin/queues/{QUEUE}?state=failed", None),
    ("POST", f"/v1/admin/queues/{QUEUE}/retry-failed", {}),
    ("POST", f"/v1/admin/queues/{QUEUE}/actions", {"action": "retry_failed"}),
    ("GET", "/v1/admin/health", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_refuse_other_keys(client, anonymous, method, path, body) -> None:
    # A tenant's ordinary key is refused with 403, no key at all with 401
    refused = client.simulate_request(method, path, json=body)
    assert refused.status_code == 403
    assert refused.json["error"]["message"] == "only an admin API key may use /v1/admin/"
    assert anonymous.simulate_request(method, path, json=body).status_code == 401


def test_every_queue_is_listed_with_its_counts(admin) -> None:
    data = admin.simulate_get("/v1/admin/queues").json["data"]

    assert [q["name"] for q in data] == [
        "publish",
        "token-refresh",
        "content",
        "content-regen",
        "approval",
        "analytics",
        "image",
        "webhooks",
    ]
    publish = data[0]
    assert publish["concurrency"] == 100
    assert {k: publish[k] for k in ("waiting", "active", "delayed", "failed", "total")} == {
        "waiting": 0,
        "active": 0,
        "delayed": 0,
        "failed": 0,
        "total": 0,
    }


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("DELETE", "?state=all", None),
        ("POST", "/retry-failed", {}),
        ("POST", "/actions", {"action": "clear_completed"}),
    ],
)
def test_an_unknown_queue_is_404(admin, method, suffix, body) -> None:
    result = admin.simulate_request(method, f"/v1/admin/queues/emails{suffix}", json=body)
    assert result.status_code == 404
    assert "no queue named 'emails'" in result.json["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", f"/v1/admin/queues/{QUEUE}?state=done", None, "state"),
        ("GET", f"/v1/admin/queues/{QUEUE}?limit=0", None, "limit"),
        ("DELETE", f"/v1/admin/queues/{QUEUE}", None, "state"),
        ("DELETE", f"/v1/admin/queues/{QUEUE}?state=active", None, "state"),
        ("POST", f"/v1/admin/queues/{QUEUE}/retry-failed", {"ids": []}, "ids"),
        ("POST", f"/v1/admin/queues/{QUEUE}/actions", {"action": "retry_specific"}, "job_ids"),
        (
            "POST",
            f"/v1/admin/queues/{QUEUE}/actions",
            {"action": "clear_failed", "job_ids": ["x"]},
            "job_ids",
        ),
        ("POST", f"/v1/admin/queues/{QUEUE}/actions", {"action": "pause"}, "action"),
    ],
)
def test_bad_input_is_422_naming_the_field(admin, method, path, body, field) -> None:
    result = admin.simulate_request(method, path, json=body)
    assert result.status_code == 422, result.json
    assert [e["field"] for e in result.json["error"]["fields"]] == [field]


def test_a_dead_letter_is_listed_retried_and_then_runs(admin, jobs: Jobs) -> None:
    # Given a job that died because its writer was down
    jobs.draft.send(7)
    wait_for(lambda: counts(admin)["failed"] == 1, timeout=10, what="a dead letter")

    # When it is listed
    page = admin.simulate_get(f"/v1/admin/queues/{QUEUE}", params={"state": "failed"}).json

    # I expect the job with why it died
    assert (page["state"], page["jobs_total"], page["failed"]) == ("failed", 1, 1)
    [dead] = page["jobs"]
    assert (dead["actor"], dead["payload"], dead["attempts"]) == ("draft", {"args": [7]}, 1)
    assert dead["error"] == "RuntimeError: writer unavailable for 7"
    assert "raise RuntimeError" in dead["traceback"]

    # When the writer is back and that id is retried (and an id that is not dead)
    jobs.fixed.set()
    retried = admin.simulate_post(
        f"/v1/admin/queues/{QUEUE}/retry-failed", json={"ids": [dead["id"], "nope"]}
    ).json

    # Then it moved, ran once and is on record as completed
    assert retried == {"retried": 1, "ids": [dead["id"]], "not_found": ["nope"]}
    wait_for(lambda: jobs.done == [7], timeout=10, what="the retried job to run")
    wait_for(lambda: counts(admin)["completed"] == 1, timeout=10, what="its record")
    assert counts(admin)["failed"] == 0
    done = admin.simulate_get(f"/v1/admin/queues/{QUEUE}", params={"state": "completed"}).json
    assert [j["message_id"] for j in done["jobs"]] == [dead["message_id"]]

    # And seed 004's clear_completed empties the record
    cleared = admin.simulate_post(
        f"/v1/admin/queues/{QUEUE}/actions", json={"action": "clear_completed"}
    ).json
    assert cleared["cleared"] == {"completed": 1}
    assert counts(admin)["completed"] == 0


def test_a_failure_record_masks_secrets(admin, broker: StubBroker, jobs: Jobs) -> None:
    def leak() -> None:
        raise RuntimeError(
            "GET /me?access_token=EAABsecret failed; Authorization: Bearer abcdef.123456"
        )

    dramatiq.actor(leak, broker=broker, queue_name=QUEUE, max_retries=0).send()
    wait_for(lambda: counts(admin)["failed"] == 1, timeout=10, what="a dead letter")

    [dead] = admin.simulate_get(f"/v1/admin/queues/{QUEUE}").json["jobs"]
    for text in (dead["error"], dead["traceback"]):
        assert "EAABsecret" not in text
        assert "abcdef.123456" not in text
    assert "access_token=[redacted]" in dead["error"]


def test_retry_all_and_retry_specific_actions(admin, jobs: Jobs) -> None:
    for n in range(3):
        jobs.draft.send(n)
    wait_for(lambda: counts(admin)["failed"] == 3, timeout=10, what="3 dead letters")
    ids = [j["id"] for j in admin.simulate_get(f"/v1/admin/queues/{QUEUE}").json["jobs"]]
    jobs.fixed.set()

    one = admin.simulate_post(
        f"/v1/admin/queues/{QUEUE}/actions", json={"action": "retry_specific", "job_ids": ids[:1]}
    ).json
    assert (one["action"], one["retried"], one["ids"]) == ("retry_specific", 1, ids[:1])
    rest = admin.simulate_post(
        f"/v1/admin/queues/{QUEUE}/actions", json={"action": "retry_failed"}
    ).json
    assert sorted(rest["ids"]) == sorted(ids[1:])
    wait_for(lambda: sorted(jobs.done) == [0, 1, 2], timeout=10, what="all three to run")


def test_clear_empties_exactly_the_state_asked(admin, broker: StubBroker) -> None:
    # Given (no worker) 2 jobs waiting and 1 delayed
    draft = Jobs(broker).draft
    draft.send(1)
    draft.send(2)
    draft.send_with_options(args=(3,), delay=60_000)
    assert (counts(admin)["waiting"], counts(admin)["delayed"]) == (2, 1)
    waiting = admin.simulate_get(f"/v1/admin/queues/{QUEUE}", params={"state": "waiting"}).json
    assert [j["payload"] for j in waiting["jobs"]] == [{"args": [1]}, {"args": [2]}]

    # When waiting is cleared, the delayed one stays; then all
    cleared = admin.simulate_delete(f"/v1/admin/queues/{QUEUE}", params={"state": "waiting"})
    assert cleared.json == {"cleared": {"waiting": 2}, "note": None}
    assert (counts(admin)["waiting"], counts(admin)["delayed"]) == (0, 1)
    everything = admin.simulate_delete(f"/v1/admin/queues/{QUEUE}", params={"state": "all"})
    assert everything.json["cleared"] == {"waiting": 0, "delayed": 1, "failed": 0, "completed": 0}
    assert counts(admin)["total"] == 0


def test_job_pages_follow_offset_and_limit(admin, broker: StubBroker) -> None:
    draft = Jobs(broker).draft
    for n in range(5):
        draft.send(n)

    first = admin.simulate_get(
        f"/v1/admin/queues/{QUEUE}", params={"state": "waiting", "limit": 2}
    ).json
    last = admin.simulate_get(
        f"/v1/admin/queues/{QUEUE}", params={"state": "waiting", "offset": 4, "limit": 2}
    ).json

    assert [j["payload"]["args"][0] for j in first["jobs"]] == [0, 1]
    assert (first["jobs_total"], first["next_offset"]) == (5, 2)
    assert [j["payload"]["args"][0] for j in last["jobs"]] == [4]
    assert last["next_offset"] is None


def beat_everything(broker: StubBroker) -> None:
    store, now = queue_store(broker), time.time()
    for role in ("publish", "token-refresh", SCHEDULER_ROLE):
        store.beat(role, "host:1", now)


def test_health_is_unhealthy_without_a_scheduler_or_a_publisher(admin) -> None:
    result = admin.simulate_get("/v1/admin/health")

    assert result.status_code == 503
    report = result.json
    assert report["status"] == "unhealthy"
    assert "no live scheduler: nothing due is being sent" in report["problems"]
    assert "publish: no live worker drains it" in report["problems"]
    # A queue nobody must drain while it is empty is fine without workers
    content = next(q for q in report["queues"] if q["name"] == "content")
    assert (content["status"], content["workers"]) == ("healthy", 0)


def test_health_follows_heartbeats_and_the_oldest_due_target(admin, broker, engine, tenant) -> None:
    # Given a scheduler and every required worker beating
    beat_everything(broker)
    healthy = admin.simulate_get("/v1/admin/health")
    assert (healthy.status_code, healthy.json["status"]) == (200, "healthy")
    assert healthy.json["schedulers"] == 1
    assert healthy.json["problems"] == []

    # When a target has been due for 90 s: degraded; for 10 minutes: unhealthy
    account = add_account(engine, tenant.id)
    add_post(engine, tenant.id, [account], due_at=utcnow() - timedelta(seconds=90))
    degraded = admin.simulate_get("/v1/admin/health").json
    assert degraded["status"] == "degraded"
    assert 90 <= degraded["oldest_due_target_age_seconds"] < 120
    add_post(engine, tenant.id, [account], due_at=utcnow() - timedelta(minutes=10))
    unhealthy = admin.simulate_get("/v1/admin/health")
    assert (unhealthy.status_code, unhealthy.json["status"]) == (503, "unhealthy")
    assert any("the oldest due target has waited 6" in p for p in unhealthy.json["problems"])


def test_health_counts_dead_letters_as_degraded(admin, jobs: Jobs, broker) -> None:
    beat_everything(broker)
    jobs.draft.send(1)
    wait_for(lambda: counts(admin)["failed"] == 1, timeout=10, what="a dead letter")

    report = admin.simulate_get("/v1/admin/health").json

    assert report["status"] == "degraded"
    assert report["problems"] == ["content: 1 dead letter(s)"]
    content = next(q for q in report["queues"] if q["name"] == "content")
    assert (content["status"], content["workers"]) == ("degraded", 1)


def test_metrics_count_requests_by_route_template(client, anonymous) -> None:
    def sample(status: str) -> float:
        value = REGISTRY.get_sample_value(
            "herald_http_requests_total",
            {"route": "/v1/posts/{post_id}", "method": "GET", "status": status},
        )
        return value or 0.0

    before = sample("404")
    for post_id in ("a", "b", "c"):
        assert client.simulate_get(f"/v1/posts/{post_id}").status_code == 404

    assert sample("404") == before + 3
    text = anonymous.simulate_get("/metrics").text
    assert 'herald_http_requests_total{method="GET",route="/v1/posts/{post_id}",status="404"}' in (
        text
    )
    assert "herald_http_request_duration_seconds_bucket" in text
