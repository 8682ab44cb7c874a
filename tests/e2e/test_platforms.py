"""Real adapters through the multi-process stack, against local servers that answer as the
platforms' documentation says: publish with media, Retry-After, an expired token, and a worker
killed (SIGKILL) after the platform accepted a post but before the database heard of it.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from herald_common.crypto import generate_key
from herald_embedded.stack import Stack, wait_for
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json
from tests.e2e.test_publish_flow import post_status, settled
from tests.platforms.fake_linkedin import PERSON, FakeLinkedIn
from tests.platforms.fake_meta import FakeFacebook, FakeInstagram, FakeThreads
from tests.platforms.fake_tiktok import VIDEO_INIT, FakeTikTok
from tests.platforms.fake_x import FakeX
from tests.platforms.servers import FakeMastodon, FakeMediaHost, FakePDS, running

PNG = b"\x89PNG\r\n\x1a\n" + b"\x02" * 64
DONE = ("published", "partially_published", "failed")


@dataclass
class Fakes:
    mastodon: FakeMastodon
    pds: FakePDS
    tiktok: FakeTikTok
    x: FakeX
    linkedin: FakeLinkedIn
    facebook: FakeFacebook
    instagram: FakeInstagram
    threads: FakeThreads
    media: FakeMediaHost


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    with (
        running(FakeMastodon()) as mastodon,
        running(FakePDS()) as pds,
        running(FakeTikTok(verified_prefixes=("http://127.0.0.1",))) as tiktok,
        running(FakeX()) as x,
        running(FakeLinkedIn()) as linkedin,
        running(FakeFacebook()) as facebook,
        running(FakeInstagram()) as instagram,
        running(FakeThreads()) as threads,
        running(FakeMediaHost({"/cat.png": (PNG, "image/png")})) as media,
    ):
        yield Fakes(
            mastodon,
            pds,
            tiktok,
            x,
            linkedin,
            facebook,
            instagram,
            threads,
            media,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def stack(
    pg_url: str,
    redis_server_url: str,
    fakes: Fakes,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The stack, its platform URLs pointed at the fakes, reconciling stuck targets after 2 s."""
    env = {
        "HERALD_SECRET_KEYS": generate_key(),
        "TIKTOK_API_URL": fakes.tiktok.url,
        "X_API_URL": fakes.x.url,
        "LINKEDIN_API_URL": fakes.linkedin.url,
        "FACEBOOK_API_URL": fakes.facebook.url,
        "INSTAGRAM_API_URL": fakes.instagram.url,
        "THREADS_API_URL": fakes.threads.url,
        "PUBLISH_BACKOFF_SECONDS": "1",
        "PLATFORM_POLL_INTERVAL_SECONDS": "0.05",
        "RECONCILE_AFTER_SECONDS": "2",
        "PLATFORM_ALLOW_PRIVATE_ADDRESSES": "true",
    }
    logdir = tmp_path_factory.mktemp("platform-logs")
    with e2e_stack(pg_url, redis_server_url, logdir, env) as stack:
        yield stack.start(services=())


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as http:
        yield http


def mastodon_account(client: httpx.Client, fakes: Fakes, token: str = "good-token") -> str:
    body = {
        "platform": "mastodon",
        "handle": f"alice-{uuid.uuid4().hex[:6]}",
        "settings": {"instance_url": fakes.mastodon.url, "visibility": "unlisted"},
        "credentials": {"access_token": token},
    }
    return str(post_json(client, "/v1/accounts", body)["id"])


def publish_now(client: httpx.Client, account_id: str, content: str, **body: object) -> str:
    post = post_json(
        client,
        "/v1/posts",
        {"content": content, "account_ids": [account_id], "publish_now": True, **body},
    )
    return str(post["id"])


def finished(client: httpx.Client, post_id: str, timeout: float = 20) -> dict:
    return wait_for(settled(client, post_id, *DONE), timeout=timeout, what=f"post {post_id}")


def statuses_with(fakes: Fakes, text: str) -> list[dict]:
    return [s for s in fakes.mastodon.statuses.values() if text in s["content"]]


def test_mastodon_publishes_text_and_an_image_with_the_target_as_idempotency_key(client, fakes):
    # Given a Mastodon account and an image served over HTTP
    account_id = mastodon_account(client, fakes)
    text = f"Hello fediverse {uuid.uuid4().hex[:6]}"

    # When a post with the image is published now
    post_id = publish_now(
        client, account_id, text, media=[{"url": f"{fakes.media.url}/cat.png", "alt": "A cat"}]
    )
    post = finished(client, post_id)

    # Then it is published once, with the image, keyed by its target
    assert post["status"] == "published", post
    [target] = post["targets"]
    [status] = statuses_with(fakes, text)
    assert target["platform_post_id"] == status["id"]
    assert target["platform_url"] == status["url"]
    assert len(status["media_attachments"]) == 1
    assert status["visibility"] == "unlisted"
    [create] = [
        r
        for r in fakes.mastodon.calls("/api/v1/statuses", "POST")
        if text in r.form().get("status", [""])[0]
    ]
    assert create.headers["idempotency-key"] == target["id"]
    assert "good-token" not in client.get(f"/v1/accounts/{account_id}").text


def test_a_429_waits_for_retry_after_then_publishes_once(client, fakes):
    # Given Mastodon answers the next status with 429 and Retry-After: 1
    account_id = mastodon_account(client, fakes)
    text = f"Rate limited {uuid.uuid4().hex[:6]}"
    fakes.mastodon.fail_next(
        1, 429, {"error": "Too many requests"}, {"Retry-After": "1"}, path="/api/v1/statuses"
    )

    # When it is published
    post = finished(client, publish_now(client, account_id, text))

    # Then the first attempt was retryable and the second published, with one status made
    assert post["status"] == "published", post
    outcomes = [a["outcome"] for a in post["targets"][0]["attempts"]]
    assert outcomes == ["retryable", "published"]
    assert post["targets"][0]["attempts"][0]["http_status"] == 429
    assert len(statuses_with(fakes, text)) == 1


def test_a_revoked_token_needs_reauth_and_the_post_waits_until_reconnected(client, fakes):
    # Given a Mastodon account whose token was revoked
    account_id = mastodon_account(client, fakes, token="revoked-token")
    text = f"Waits for re-auth {uuid.uuid4().hex[:6]}"

    # When a post is published now: refused (401), refreshed (the token-refresher checks the
    # token with verify_credentials: 401 again), so the account needs connecting again
    post_id = publish_now(client, account_id, text)

    def waiting() -> dict | None:
        post = client.get(f"/v1/posts/{post_id}").json()
        target = post["targets"][0]
        return post if target["error_kind"] == "needs_reauth" else None

    post = wait_for(waiting, timeout=20, what="the target to wait for re-auth")

    # Then the post waits, saying why in Mastodon's words, with no attempt spent
    [target] = post["targets"]
    assert post["status"] == "scheduled"
    assert target["status"] == "retrying"
    assert target["error"].startswith("waiting for the account to be connected again")
    assert "The access token is invalid" in target["error"]
    assert "revoked-token" not in target["error"]
    account = client.get(f"/v1/accounts/{account_id}").json()
    assert account["status"] == "needs_reauth"
    assert "The access token is invalid" in account["status_reason"]
    assert [a["outcome"] for a in target["attempts"]] == ["needs_auth"]

    # When the account is connected again with a working token
    response = client.patch(
        f"/v1/accounts/{account_id}", json={"credentials": {"access_token": "good-token"}}
    )
    assert response.status_code == 200, response.text

    # Then the post goes out at once, once
    post = finished(client, post_id)
    assert post["status"] == "published", post
    assert len(statuses_with(fakes, text)) == 1


def test_bluesky_publishes_a_record_under_the_targets_key(client, fakes):
    # Given a Bluesky account connected with an app password
    account = post_json(
        client,
        "/v1/accounts",
        {
            "platform": "bluesky",
            "handle": fakes.pds.handle,
            "settings": {"service_url": fakes.pds.url},
            "credentials": {"app_password": fakes.pds.password},
        },
    )
    text = f"Hello atproto {uuid.uuid4().hex[:6]}"

    # When a post is published
    post = finished(client, publish_now(client, account["id"], text))

    # Then one record holds it, at the URI the target shows
    assert post["status"] == "published", post
    [target] = post["targets"]
    records = [r for r in fakes.pds.records.values() if r["value"]["text"] == text]
    assert len(records) == 1
    assert target["platform_post_id"] == records[0]["uri"]


def test_tiktok_publishes_a_video_by_url(client, fakes):
    account = post_json(
        client,
        "/v1/accounts",
        {
            "platform": "tiktok",
            "handle": "alice",
            "settings": {"privacy_level": "PUBLIC_TO_EVERYONE"},
            "credentials": {"access_token": "act.good"},
        },
    )
    before = len(fakes.tiktok.posts)

    post = finished(
        client,
        publish_now(
            client, account["id"], "A #cat video", media=[{"url": f"{fakes.media.url}/cat.mp4"}]
        ),
    )

    assert post["status"] == "published", post
    assert len(fakes.tiktok.posts) == before + 1
    assert post["targets"][0]["platform_post_id"] == str(fakes.tiktok.posts[-1]["post_id"])


def test_tiktok_needs_a_video_at_creation(client):
    account = post_json(
        client,
        "/v1/accounts",
        {
            "platform": "tiktok",
            "handle": "bob",
            "settings": {"privacy_level": "SELF_ONLY"},
            "credentials": {"access_token": "act.good"},
        },
    )

    response = client.post(
        "/v1/posts", json={"content": "No video", "account_ids": [account["id"]]}
    )

    assert response.status_code == 422
    [error] = response.json()["error"]["fields"]
    assert (error["field"], error["account_id"]) == ("media", account["id"])


# -- crashes ----------------------------------------------------------------------------------


def target_is(client: httpx.Client, post_id: str, status: str):  # type: ignore[no-untyped-def]
    def check() -> dict | None:
        post = post_status(client, post_id)
        return post if post["targets"][0]["status"] == status else None

    return check


def kill_publisher_during(stack: Stack, server, path: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until the platform has acted on a request to `path`, then SIGKILL every publisher
    process before the answer reaches it, and start a new publisher."""
    wait_for(server.held.is_set, timeout=20, what=f"a request to {path}")
    stack.stop("publisher", sig=signal.SIGKILL)
    server.hold_path = None
    server.release.set()
    stack.start_publisher()


@pytest.fixture
def holding() -> Iterator[list]:
    """Servers whose replies a test holds; released whatever happens."""
    servers: list = []
    yield servers
    for server in servers:
        server.hold_path = None
        server.release.set()
        server.held.clear()


def _hold(holding: list, server, path: str) -> None:  # type: ignore[no-untyped-def]
    server.held.clear()
    server.release.clear()
    server.hold_path = path
    holding.append(server)


def test_a_worker_killed_after_mastodon_accepted_is_reconciled_to_one_status(
    stack, client, fakes, holding
):
    # Given Mastodon will create the status but hold its answer
    account_id = mastodon_account(client, fakes)
    text = f"Crash test {uuid.uuid4().hex[:6]}"
    _hold(holding, fakes.mastodon, "/api/v1/statuses")

    # When the post goes out and the publisher is killed before it hears back
    post_id = publish_now(client, account_id, text)
    kill_publisher_during(stack, fakes.mastodon, "/api/v1/statuses")

    # Then the scheduler reconciles the stuck target by asking Mastodon: published, once
    post = finished(client, post_id, timeout=30)
    assert post["status"] == "published", post
    [status] = statuses_with(fakes, text)
    assert post["targets"][0]["platform_post_id"] == status["id"]
    assert [a["outcome"] for a in post["targets"][0]["attempts"]] == ["published"]


def test_a_worker_killed_after_bluesky_accepted_is_reconciled_to_one_record(
    stack, client, fakes, holding
):
    account = post_json(
        client,
        "/v1/accounts",
        {
            "platform": "bluesky",
            "handle": fakes.pds.handle,
            "settings": {"service_url": fakes.pds.url},
            "credentials": {"app_password": fakes.pds.password},
        },
    )
    text = f"Crash test {uuid.uuid4().hex[:6]}"
    _hold(holding, fakes.pds, "/xrpc/com.atproto.repo.createRecord")

    post_id = publish_now(client, account["id"], text)
    kill_publisher_during(stack, fakes.pds, "/xrpc/com.atproto.repo.createRecord")

    post = finished(client, post_id, timeout=30)
    assert post["status"] == "published", post
    records = [r for r in fakes.pds.records.values() if r["value"]["text"] == text]
    assert len(records) == 1
    assert post["targets"][0]["platform_post_id"] == records[0]["uri"]


def test_a_worker_killed_during_tiktoks_init_becomes_unknown_and_a_person_resolves_it(
    stack, client, fakes, holding
):
    # Given TikTok will accept the init but hold its answer
    account = post_json(
        client,
        "/v1/accounts",
        {
            "platform": "tiktok",
            "handle": "carol",
            "settings": {"privacy_level": "PUBLIC_TO_EVERYONE"},
            "credentials": {"access_token": "act.good"},
        },
    )
    inits = len(fakes.tiktok.inits)
    _hold(holding, fakes.tiktok, VIDEO_INIT)

    # When the publisher is killed before it hears back
    post_id = publish_now(
        client, account["id"], "Crash #video", media=[{"url": f"{fakes.media.url}/c.mp4"}]
    )
    kill_publisher_during(stack, fakes.tiktok, VIDEO_INIT)

    # Then TikTok cannot be asked (its answer, the publish_id, was lost): the target is unknown
    # with the reason, and it is never sent again on its own
    post = wait_for(target_is(client, post_id, "unknown"), timeout=30, what="unknown")
    target = post["targets"][0]
    assert "gives no way to ask" in target["error"]
    assert len(fakes.tiktok.inits) == inits + 1

    # When a person finds it on the account and says so
    resolved = post_json(
        client,
        f"/v1/posts/{post_id}/targets/{target['id']}/resolve",
        {"outcome": "published", "platform_url": "https://www.tiktok.com/@carol/video/1"},
    )

    # Then the post is published, and TikTok saw one init
    assert resolved["status"] == "published"
    assert len(fakes.tiktok.inits) == inits + 1


def x_account(client: httpx.Client) -> str:
    body = {
        "platform": "x",
        "handle": f"acme{uuid.uuid4().hex[:4]}",
        "credentials": {"access_token": "good-token"},
    }
    return str(post_json(client, "/v1/accounts", body)["id"])


def x_posts_with(fakes: Fakes, text: str) -> list[dict]:
    return [p for p in fakes.x.posts.values() if p["text"] == text]


def test_x_publishes_a_post_with_an_image(client, fakes):
    account_id = x_account(client)
    text = f"Hello X {uuid.uuid4().hex[:6]}"

    post = finished(
        client,
        publish_now(
            client, account_id, text, media=[{"url": f"{fakes.media.url}/cat.png", "alt": "Cat"}]
        ),
    )

    assert post["status"] == "published", post
    [made] = x_posts_with(fakes, text)
    assert post["targets"][0]["platform_post_id"] == made["id"]
    assert len(made["media_ids"]) == 1


def test_x_over_280_weighted_characters_is_refused_at_creation(client):
    account_id = x_account(client)
    # 141 CJK characters weigh 282
    response = client.post("/v1/posts", json={"content": "字" * 141, "account_ids": [account_id]})
    assert response.status_code == 422
    [error] = response.json()["error"]["fields"]
    assert (error["field"], error["account_id"]) == ("content", account_id)


def test_a_worker_killed_after_x_accepted_becomes_unknown_never_two_posts(
    stack, client, fakes, holding
):
    # Given X will make the post but hold its answer
    account_id = x_account(client)
    text = f"Crash test {uuid.uuid4().hex[:6]}"
    _hold(holding, fakes.x, "/2/tweets")

    # When the publisher is killed before it hears back
    post_id = publish_now(client, account_id, text)
    kill_publisher_during(stack, fakes.x, "/2/tweets")

    # Then X cannot be asked by key: the target is unknown, and X has exactly one post
    post = wait_for(target_is(client, post_id, "unknown"), timeout=30, what="unknown")
    assert "gives no way to ask" in post["targets"][0]["error"]
    assert len(x_posts_with(fakes, text)) == 1


def connect(client: httpx.Client, platform: str, settings: dict, token: str = "good-token") -> str:
    body = {
        "platform": platform,
        "handle": f"{platform}-{uuid.uuid4().hex[:6]}",
        "settings": settings,
        "credentials": {"access_token": token},
    }
    return str(post_json(client, "/v1/accounts", body)["id"])


@pytest.mark.parametrize(
    ("platform", "settings", "made"),
    [
        (
            "linkedin",
            lambda f: {"author": PERSON},
            lambda f, text: [p.urn for p in f.linkedin.posts.values() if p.shown == text],
        ),
        (
            "facebook",
            lambda f: {"page_id": f.facebook.page_id},
            lambda f, text: [p["id"] for p in f.facebook.posts.values() if p["message"] == text],
        ),
        (
            "threads",
            lambda f: {"threads_user_id": f.threads.owner_id},
            lambda f, text: [m["id"] for m in f.threads.media.values() if m["text"] == text],
        ),
    ],
)
def test_a_text_post_is_published_once_with_the_platforms_id(
    client, fakes, platform, settings, made
):
    # Given an account on the platform
    account_id = connect(client, platform, settings(fakes))
    text = f"Hello {platform} #herald {uuid.uuid4().hex[:6]}"

    # When a post is published now
    post = finished(client, publish_now(client, account_id, text))

    # Then exactly one post was made, and the target holds its id
    assert post["status"] == "published", post
    assert made(fakes, text) == [post["targets"][0]["platform_post_id"]]


def test_instagram_needs_media_at_creation(client, fakes):
    account_id = connect(client, "instagram", {"ig_user_id": fakes.instagram.owner_id})

    response = client.post("/v1/posts", json={"content": "No photo", "account_ids": [account_id]})

    assert response.status_code == 422
    assert {f["field"] for f in response.json()["error"]["fields"]} == {"media"}


def test_a_worker_killed_after_instagram_published_is_reconciled_from_the_container(
    stack, client, fakes, holding
):
    # Given Instagram will publish the container but hold its answer
    ig = fakes.instagram
    account_id = connect(client, "instagram", {"ig_user_id": ig.owner_id})
    caption = f"Crash test {uuid.uuid4().hex[:6]}"
    publish_path = f"/{ig.version}/{ig.owner_id}/media_publish"
    _hold(holding, ig, publish_path)

    # When the publisher is killed before it hears back
    post_id = publish_now(
        client, account_id, caption, media=[{"url": "https://cdn.example.com/cat.jpg"}]
    )
    kill_publisher_during(stack, ig, publish_path)

    # Then the scheduler reads the saved container's status (PUBLISHED): one post, published
    post = finished(client, post_id, timeout=30)
    assert post["status"] == "published", post
    made = [m for m in ig.media.values() if m["caption"] == caption]
    assert len(made) == 1
    assert len([c for c in ig.containers.values() if c["params"].get("caption") == caption]) == 1


def test_no_secret_reaches_any_process_log(stack, fakes):
    # Given the module's runs above (tokens, app passwords and sessions used by every service)
    secrets = [
        "good-token",
        "revoked-token",
        "act.good",
        fakes.pds.password,
        "access-1",
        "refresh-1",
    ]

    # Then no log of any process holds one
    for name in ("api", "publisher", "token-refresher", "scheduler"):
        text = (stack.logdir / f"{name}.log").read_text(errors="replace")
        assert text, f"{name} logged nothing"
        leaked = [s for s in secrets if s in text]
        assert leaked == [], f"{name} log holds {leaked}"
