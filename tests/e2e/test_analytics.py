"""Analytics through the multi-process stack on PostgreSQL and Redis: a client's pull through the
`herald-analytics` worker, and the scheduler's own pulls of a post just published.

Mastodon is a local server that answers as its documentation says; pull ages are 1 and 2
seconds, so the scheduler's first pulls come within its analytics sweep (every 5 s).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from herald_common.crypto import generate_key
from herald_embedded.stack import Stack, wait_for
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json
from tests.e2e.test_publish_flow import settled
from tests.platforms.servers import FakeMastodon, running


@pytest.fixture(scope="module")
def mastodon() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {
        "HERALD_SECRET_KEYS": generate_key(),
        "PLATFORM_ALLOW_PRIVATE_ADDRESSES": "true",
        "ANALYTICS_PULL_AGES": "1,2",
    }
    logdir = tmp_path_factory.mktemp("analytics-logs")
    with e2e_stack(pg_url, redis_server_url, logdir, env) as stack:
        yield stack.start(services=("analytics",))


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as http:
        yield http


def sandbox_account(client: httpx.Client) -> str:
    body = {"platform": "sandbox", "handle": f"s-{uuid.uuid4().hex[:6]}"}
    return str(post_json(client, "/v1/accounts", body)["id"])


def mastodon_account(client: httpx.Client, server: FakeMastodon) -> str:
    body = {
        "platform": "mastodon",
        "handle": f"alice-{uuid.uuid4().hex[:6]}",
        "settings": {"instance_url": server.url},
        "credentials": {"access_token": server.token},
    }
    return str(post_json(client, "/v1/accounts", body)["id"])


def publish(client: httpx.Client, account_ids: list[str], content: str) -> dict:
    body = {"content": content, "account_ids": account_ids, "publish_now": True}
    post = post_json(client, "/v1/posts", body)
    done = settled(client, post["id"], "published", "partially_published", "failed")
    post = wait_for(done, timeout=20, what=f"post {post['id']} to be published")
    assert post["status"] == "published", post
    return post


def analytics(client: httpx.Client, post_id: str) -> dict:
    response = client.get(f"/v1/posts/{post_id}/analytics")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_client_pull_writes_the_platforms_numbers(client, mastodon):
    # Given a post published to a Mastodon account and a sandbox account, which people liked
    toots, sandbox = mastodon_account(client, mastodon), sandbox_account(client)
    post = publish(client, [toots, sandbox], f"Counting {uuid.uuid4().hex[:6]}")
    on_mastodon = next(t for t in post["targets"] if t["account_id"] == toots)
    mastodon.engage(on_mastodon["platform_post_id"], favourites=7, reblogs=3, replies=2)

    # When the client asks for a pull of that post's likes and views
    job = post_json(
        client, "/v1/analytics/pull", {"post_ids": [post["id"]], "metrics": ["likes", "views"]}
    )

    # Then the job succeeds with a snapshot of each target
    def finished() -> dict | None:
        found = client.get(f"/v1/jobs/{job['id']}").json()
        return found if found["status"] in ("succeeded", "failed") else None

    done = wait_for(finished, timeout=30, what=f"job {job['id']}")
    assert done["status"] == "succeeded", done
    assert done["result"] == {"targets": 2, "snapshots": 2, "failed": []}
    # And the post's analytics show the Mastodon server's numbers, only the metrics asked for
    by_account = {t["account_id"]: t for t in analytics(client, post["id"])["targets"]}
    pulled = [s for s in by_account[toots]["history"] if s["reposts"] is None]
    assert pulled and (pulled[-1]["likes"], pulled[-1]["views"]) == (7, None)
    from_sandbox = [s for s in by_account[sandbox]["history"] if s["reposts"] is None]
    assert from_sandbox and from_sandbox[-1]["views"] is not None
    assert [r for r in mastodon.requests if r.path.startswith("/api/v1/statuses/")]


def test_the_scheduler_pulls_a_published_post_on_its_own(client):
    # Given a post just published to a sandbox account
    post = publish(client, [sandbox_account(client)], f"On its own {uuid.uuid4().hex[:6]}")
    [target] = post["targets"]

    # When nobody asks, a snapshot still comes: the scheduler's pull at its first slot
    def pulled() -> list[dict] | None:
        [found] = analytics(client, post["id"])["targets"]
        return found["history"] or None

    history = wait_for(pulled, timeout=30, interval=0.5, what="the scheduler's pull")

    # Then it holds every metric the sandbox counts, taken after the post went out
    first = history[0]
    assert all(first[name] is not None for name in ("likes", "reposts", "views", "impressions"))
    assert first["taken_at"] >= target["published_at"]
    totals = analytics(client, post["id"])["totals"]
    assert totals["views"] == history[-1]["views"]
