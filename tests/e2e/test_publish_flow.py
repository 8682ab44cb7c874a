"""Over HTTP, through gunicorn, Redis, the dramatiq publisher and the scheduler."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from herald_embedded.stack import Stack, wait_for
from tests.e2e.helpers import post_json
from tests.platforms.servers import Receiver, running


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def account(client: httpx.Client, handle: str, **settings: object) -> str:
    body = {"platform": "sandbox", "handle": handle, "settings": settings}
    return str(post_json(client, "/v1/accounts", body)["id"])


def post_status(client: httpx.Client, post_id: str) -> dict:
    response = client.get(f"/v1/posts/{post_id}")
    assert response.status_code == 200, response.text
    return response.json()


def settled(client: httpx.Client, post_id: str, *statuses: str):  # type: ignore[no-untyped-def]
    def check() -> dict | None:
        post = post_status(client, post_id)
        return post if post["status"] in statuses else None

    return check


def sandbox_posts(client: httpx.Client, account_id: str) -> list[dict]:
    response = client.get(f"/v1/accounts/{account_id}/sandbox-posts")
    assert response.status_code == 200, response.text
    body = response.json()
    calls = body["data"] if isinstance(body, dict) else body
    # The sandbox lists every call it got; the posts are the accepted ones.
    return [call for call in calls if call["outcome"] == "accepted"]


def test_a_post_scheduled_two_seconds_ahead_is_published_within_a_second_of_its_time(
    stack: Stack,
):
    with stack.client() as client:
        # Given a sandbox account
        account_id = account(client, "ontime")

        # When a post is scheduled two seconds ahead
        at = datetime.now(UTC) + timedelta(seconds=2)
        created = post_json(
            client,
            "/v1/posts",
            {"content": "On the second", "account_ids": [account_id], "scheduled_at": iso(at)},
        )
        assert created["status"] == "scheduled"

        # I expect it published once, no earlier than its time and less than 1 s after
        post = wait_for(settled(client, created["id"], "published"), timeout=15, what="published")
        published_at = parse(post["targets"][0]["published_at"])
        lateness = (published_at - parse(created["scheduled_at"])).total_seconds()
        assert 0 <= lateness < 1.0, lateness
        assert [p["content"] for p in sandbox_posts(client, account_id)] == ["On the second"]
        [attempt] = post["targets"][0]["attempts"]
        assert attempt["outcome"] == "published"


def test_publish_now(stack: Stack):
    with stack.client() as client:
        # Given an account, When a post is created with publish_now
        account_id = account(client, "now")
        created = post_json(
            client,
            "/v1/posts",
            {"content": "Right now", "account_ids": [account_id], "publish_now": True},
        )

        # I expect it published within a few seconds
        wait_for(settled(client, created["id"], "published"), timeout=10, what="published")
        assert len(sandbox_posts(client, account_id)) == 1


def test_a_rescheduled_post_is_published_once_at_its_new_time(stack: Stack):
    with stack.client() as client:
        # Given a post due in 1.5 s
        account_id = account(client, "moved")
        first = datetime.now(UTC) + timedelta(seconds=1.5)
        created = post_json(
            client,
            "/v1/posts",
            {"content": "Moved", "account_ids": [account_id], "scheduled_at": iso(first)},
        )

        # When, a moment before (its message may already be queued), it is moved 3 s later
        time.sleep(0.8)
        later = first + timedelta(seconds=3)
        response = client.put(
            f"/v1/posts/{created['id']}/schedule", json={"scheduled_at": iso(later)}
        )
        assert response.status_code == 200, response.text

        # I expect nothing at the old time, and one post at the new one
        time.sleep((first - datetime.now(UTC)).total_seconds() + 1.0)
        assert sandbox_posts(client, account_id) == []
        post = wait_for(settled(client, created["id"], "published"), timeout=15, what="published")
        assert parse(post["targets"][0]["published_at"]) >= later
        assert len(sandbox_posts(client, account_id)) == 1


def test_a_canceled_post_is_never_published(stack: Stack):
    with stack.client() as client:
        # Given a post due in 1.2 s, already inside the scheduler's lookahead soon
        account_id = account(client, "canceled")
        at = datetime.now(UTC) + timedelta(seconds=1.2)
        created = post_json(
            client,
            "/v1/posts",
            {"content": "Never", "account_ids": [account_id], "scheduled_at": iso(at)},
        )

        # When it is canceled just before its time
        time.sleep(0.5)
        response = client.post(f"/v1/posts/{created['id']}/cancel")
        assert response.status_code == 200, response.text

        # I expect it canceled, and nothing sent, well after its time
        time.sleep(2.5)
        assert post_status(client, created["id"])["status"] == "canceled"
        assert sandbox_posts(client, account_id) == []


def test_a_deleted_post_is_never_published(stack: Stack):
    with stack.client() as client:
        # Given a post due in 1.2 s
        account_id = account(client, "deleted")
        at = datetime.now(UTC) + timedelta(seconds=1.2)
        created = post_json(
            client,
            "/v1/posts",
            {"content": "Gone", "account_ids": [account_id], "scheduled_at": iso(at)},
        )

        # When it is deleted
        time.sleep(0.5)
        assert client.delete(f"/v1/posts/{created['id']}").status_code == 204

        # I expect it gone, and nothing sent after its time
        time.sleep(2.5)
        assert client.get(f"/v1/posts/{created['id']}").status_code == 404
        assert sandbox_posts(client, account_id) == []


def test_one_permanent_failure_of_two_targets_is_partially_published(stack: Stack):
    with stack.client() as client:
        # Given a good account and one that rejects every post
        good = account(client, "good")
        bad = account(client, "bad", fail="permanent", fail_message="Duplicate status")

        # When a post goes to both
        created = post_json(
            client,
            "/v1/posts",
            {"content": "Half", "account_ids": [good, bad], "publish_now": True},
        )

        # I expect it partially published: the good one once, the bad one with its reason
        post = wait_for(
            settled(client, created["id"], "partially_published", "published", "failed"),
            timeout=10,
            what="a final status",
        )
        assert post["status"] == "partially_published"
        targets = {t["account_id"]: t for t in post["targets"]}
        assert targets[good]["status"] == "published"
        assert (targets[bad]["status"], targets[bad]["error"]) == ("failed", "Duplicate status")
        assert len(sandbox_posts(client, good)) == 1


def test_a_retryable_failure_succeeds_on_the_second_attempt(stack: Stack):
    with stack.client() as client:
        # Given an account that fails each post's first call with a 503
        account_id = account(client, "flaky", fail="retryable", fail_times=1)

        # When a post is published to it, by a request with an id of its own
        request_id = f"e2e-{uuid.uuid4().hex[:12]}"
        response = client.post(
            "/v1/posts",
            json={"content": "Second time lucky", "account_ids": [account_id], "publish_now": True},
            headers={"X-Request-ID": request_id},
        )
        assert response.status_code == 201, response.text
        assert response.headers["X-Request-ID"] == request_id
        created = response.json()

        # I expect it published after two attempts, once
        post = wait_for(settled(client, created["id"], "published"), timeout=20, what="published")
        # and the request's id on the target, on both attempts, and on the publisher's JSON line
        # about the first failure
        [target] = post["targets"]
        assert target["request_id"] == request_id
        assert [a["request_id"] for a in target["attempts"]] == [request_id, request_id]
        written = (stack.logdir / "publisher.log").read_text()
        lines = [json.loads(line) for line in written.splitlines() if line.startswith("{")]
        assert any(
            line.get("request_id") == request_id and target["id"] in line["message"]
            for line in lines
        ), written[-3000:]
        attempts = post["targets"][0]["attempts"]
        assert [a["outcome"] for a in attempts] == ["retryable", "published"]
        assert len(sandbox_posts(client, account_id)) == 1


def test_a_failed_post_is_retried_on_request(stack: Stack):
    with stack.client() as client:
        # Given a post that failed because its account rejected it
        account_id = account(client, "fixable", fail="permanent")
        created = post_json(
            client,
            "/v1/posts",
            {"content": "Try again", "account_ids": [account_id], "publish_now": True},
        )
        wait_for(settled(client, created["id"], "failed"), timeout=10, what="failed")

        # When the account is fixed and the post retried
        response = client.patch(f"/v1/accounts/{account_id}", json={"settings": {}})
        assert response.status_code == 200, response.text
        response = client.post(f"/v1/posts/{created['id']}/retry")
        assert response.status_code == 200, response.text

        # I expect it published, once
        wait_for(settled(client, created["id"], "published"), timeout=10, what="published")
        assert len(sandbox_posts(client, account_id)) == 1


def test_a_create_retried_after_a_client_timeout_makes_exactly_one_post(stack: Stack):
    with stack.client() as client:
        # Given an account and a create that the client gives up on before the answer comes
        account_id = account(client, "retrier")
        marker = f"retried {uuid.uuid4().hex}"
        body = {"content": marker, "account_ids": [account_id]}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        impatient = httpx.Timeout(10, read=0.000_001)
        with contextlib.suppress(httpx.ReadTimeout):  # the usual case: it saw no answer
            client.post("/v1/posts", json=body, headers=key, timeout=impatient)

        # When it retries with the same key until it gets an answer (409 while the first runs)
        deadline = time.monotonic() + 10
        while True:
            retry = client.post("/v1/posts", json=body, headers=key)
            if retry.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(0.05)

        # I expect the first request's answer, and exactly one post with that content
        assert retry.status_code == 201, retry.text
        listed = client.get("/v1/posts", params={"limit": 100}).json()["data"]
        mine = [post for post in listed if post["content"] == marker]
        assert [post["id"] for post in mine] == [retry.json()["id"]]


def test_a_chunked_body_is_read(stack: Stack):
    with stack.client() as client:
        # Given a body sent with Transfer-Encoding: chunked (no Content-Length)
        chunks = iter([b'{"platform": "sandbox",', b' "handle": "chunky"}'])

        # When it creates an account
        result = client.post(
            "/v1/accounts", content=chunks, headers={"Content-Type": "application/json"}
        )

        # I expect the account made from the whole body
        assert result.request.headers.get("Transfer-Encoding") == "chunked"
        assert result.status_code == 201, result.text
        assert result.json()["handle"] == "chunky"


def test_an_app_receives_signed_outcome_events_for_published_and_failed_posts(stack: Stack):
    # Given the webhooks worker, a new tenant's endpoint on a real HTTP receiver, and two
    # accounts: one that publishes and one that refuses for good
    if "webhooks" not in stack.procs:
        stack.start_worker("webhooks")
    with running(Receiver()) as receiver, stack.client(stack.create_tenant("hooks")) as client:
        hook = post_json(
            client,
            "/v1/webhooks",
            {"url": f"{receiver.url}/events", "events": ["post.published", "post.failed"]},
        )
        key = client.get("/v1/webhooks/signing-key").json()["key"]
        ok, refusing = account(client, "hooked"), account(client, "refusing", fail="permanent")

        # When a post goes out to each
        sent = post_json(
            client, "/v1/posts", {"content": "Out!", "account_ids": [ok], "publish_now": True}
        )
        failed = post_json(
            client, "/v1/posts", {"content": "No", "account_ids": [refusing], "publish_now": True}
        )

        # I expect one signed event per post: post.published and post.failed
        calls = wait_for(
            lambda: (
                receiver.calls("/events", "POST") if len(receiver.calls("/events")) >= 2 else None
            ),
            timeout=20,
            what="two webhook events",
        )
        events = {call.json()["data"]["post_id"]: call for call in calls}
        assert events[sent["id"]].json()["type"] == "post.published"
        assert events[failed["id"]].json()["type"] == "post.failed"
        for call in calls:
            stamp, mac = (p.split("=", 1)[1] for p in call.headers["x-herald-signature"].split(","))
            signed = hmac.new(key.encode(), f"{stamp}.".encode() + call.body, hashlib.sha256)
            assert hmac.compare_digest(mac, signed.hexdigest())
            assert call.headers["idempotency-key"] == call.json()["id"]
        # and each delivery listed as succeeded, with its try
        deliveries = wait_for(
            lambda: [
                d
                for d in client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
                if d["status"] == "succeeded"
            ],
            timeout=10,
        )
        assert len(deliveries) == 2 and all(d["history"] for d in deliveries)
