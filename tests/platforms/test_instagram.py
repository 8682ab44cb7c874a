"""The Instagram adapter against a local Graph host that behaves as Meta's docs say."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from herald_common.errors import (
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    StillProcessing,
    TransientError,
)
from herald_common.platforms.base import AccountRef, Pace, PublishRequest
from herald_common.platforms.instagram import (
    InstagramCredentials,
    InstagramPlatform,
    InstagramSettings,
    hashtag_count,
    mention_count,
)
from tests.platforms.fake_meta import (
    FINISHED,
    CheckpointStore,
    FakeInstagram,
    SimulatedCrash,
    graph_error,
)
from tests.platforms.servers import running

IG = "17841400000000001"
JPEG = "https://cdn.example.org/photos/cat.jpg"
JPEG2 = "https://cdn.example.org/photos/dog.jpeg"
MP4 = "https://cdn.example.org/videos/run.mp4"


@pytest.fixture
def server() -> Iterator[FakeInstagram]:
    with running(FakeInstagram()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def platform(client: httpx.Client, server: FakeInstagram, sleeps: list[float]) -> InstagramPlatform:
    return InstagramPlatform(
        client, api_url=server.url, poll_interval=0.01, poll_timeout=5, sleep=sleeps.append
    )


@pytest.fixture
def store() -> CheckpointStore:
    return CheckpointStore()


def account(token: str = "good-token", **settings: object) -> AccountRef:
    return AccountRef(
        id="acc-ig",
        tenant_id="t-1",
        platform="instagram",
        handle="alice",
        settings={"ig_user_id": IG, **settings},
        credentials={"access_token": token},
    )


def edge(name: str) -> str:
    return f"/v25.0/{IG}/{name}"


# -- publish --------------------------------------------------------------------------------


def test_publish_one_image_creates_a_container_then_publishes_it(server, platform, store):
    # Given one public JPEG with alt text
    media = [{"url": JPEG, "kind": "image", "alt": "a cat on a mat"}]

    # When it is published with a caption
    result = platform.publish(store.request(account(), "Caturday #cats", media))

    # Then one container was made with the image, caption and alt text, and published once
    (create,) = server.calls(edge("media"), "POST")
    assert create.form() == {
        "image_url": [JPEG],
        "alt_text": ["a cat on a mat"],
        "caption": ["Caturday #cats"],
    }
    assert create.headers["authorization"] == "Bearer good-token"
    (publish,) = server.calls(edge("media_publish"), "POST")
    (container,) = server.containers
    assert publish.form() == {"creation_id": [container]}
    # And the post exists with its permalink, and the token never appeared in a URL
    assert list(server.media) == [result.platform_post_id]
    assert result.url == server.media[result.platform_post_id]["permalink"]
    assert all(
        "good-token" not in r.path and not r.query.get("access_token") for r in server.requests
    )
    # And the quota was read before publishing
    assert len(server.calls(edge("content_publishing_limit"), "GET")) == 1


def test_the_container_id_is_saved_before_the_publish_call(server, platform, store):
    # Given a store that records every checkpoint; When a post is published
    result = platform.publish(store.request(account(), "hi", [{"url": JPEG}]))

    # Then the container id was saved first, the media id as soon as Graph answered, then the URL
    (container,) = server.containers
    assert store.saves[0]["container_id"] == container
    assert "media_id" not in store.saves[0]
    assert store.saves[1] == {**store.saves[0], "media_id": result.platform_post_id}
    assert store.saves[2] == {**store.saves[1], "permalink": result.url}


def test_publish_a_reel_waits_while_the_video_is_in_progress(server, platform, store, sleeps):
    # Given a video that Instagram processes for three status reads
    server.processing_polls = 3

    # When it is published
    result = platform.publish(store.request(account(), "run!", [{"url": MP4}]))

    # Then the container was a REELS container, polled until FINISHED, then published
    (create,) = server.calls(edge("media"), "POST")
    assert create.form() == {"media_type": ["REELS"], "video_url": [MP4], "caption": ["run!"]}
    (container,) = server.containers
    assert len(server.calls(f"/v25.0/{container}", "GET")) == 4
    assert sleeps == [0.01] * 3
    assert server.media[result.platform_post_id]["media_type"] == "REELS"


def test_publish_a_carousel_makes_item_containers_then_the_carousel(server, platform, store):
    # Given two images and a video
    media = [{"url": JPEG}, {"url": MP4, "kind": "video"}, {"url": JPEG2}]

    # When they are published as one post
    result = platform.publish(store.request(account(), "three things", media))

    # Then three item containers were made, then one CAROUSEL container with them as children
    creates = server.calls(edge("media"), "POST")
    assert [c.form() for c in creates[:3]] == [
        {"is_carousel_item": ["true"], "image_url": [JPEG]},
        {"is_carousel_item": ["true"], "media_type": ["VIDEO"], "video_url": [MP4]},
        {"is_carousel_item": ["true"], "image_url": [JPEG2]},
    ]
    children = [c for c, v in server.containers.items() if v["params"].get("is_carousel_item")]
    assert creates[3].form() == {
        "media_type": ["CAROUSEL"],
        "caption": ["three things"],
        "children": [",".join(children)],
    }
    # And exactly one post was published, the carousel
    assert list(server.media) == [result.platform_post_id]
    assert server.media[result.platform_post_id]["children"] == children


def test_media_that_fails_processing_is_a_permanent_error(server, platform, store):
    # Given a video Instagram cannot process
    server.processing_error = "Media upload has failed with error code 2207026"

    # When it is published; Then the error is permanent, quotes Instagram, and nothing went out
    with pytest.raises(PermanentError, match="2207026"):
        platform.publish(store.request(account(), "x", [{"url": MP4}]))
    assert server.media == {}
    assert server.calls(edge("media_publish")) == []


def test_processing_longer_than_the_timeout_is_retryable_and_resumes(server, client, store):
    # Given a video still processing after the adapter's deadline (a fake clock runs out)
    server.processing_polls = 5
    clock = iter(range(1000))
    platform = InstagramPlatform(
        client,
        api_url=server.url,
        poll_interval=1,
        poll_timeout=2,
        sleep=lambda _: None,
        monotonic=lambda: next(clock),
    )

    # When it is published; Then the try waits (spending no attempt), with the container saved
    with pytest.raises(StillProcessing, match="still IN_PROGRESS") as caught:
        platform.publish(store.request(account(), "slow", [{"url": MP4}]))
    (container,) = server.containers
    assert store.state["container_id"] == container
    assert caught.value.retry_after == 30

    # When the next try comes (and processing has finished)
    server.containers[container]["state"] = FINISHED
    result = platform.publish(store.request(account(), "slow", [{"url": MP4}]))

    # Then it published the same container: one container, one post
    assert len(server.containers) == 1
    assert list(server.media) == [result.platform_post_id]


# -- repeats and crashes --------------------------------------------------------------------


def test_publishing_twice_with_the_checkpoint_makes_one_post(server, platform, store):
    # Given a post published once
    first = platform.publish(store.request(account(), "once", [{"url": JPEG}]))

    # When the same target is published again (a repeated message)
    second = platform.publish(store.request(account(), "once", [{"url": JPEG}]))

    # Then the saved media id is answered, without another call
    assert second.platform_post_id == first.platform_post_id
    assert len(server.media) == 1
    assert len(server.calls(edge("media"), "POST")) == 1
    assert len(server.calls(edge("media_publish"), "POST")) == 1


def test_a_publish_whose_answer_is_lost_is_not_repeated(server, platform, store):
    # Given Instagram accepts media_publish but the connection drops before it answers
    server.drop_after.add("publish")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "lost answer", [{"url": JPEG}]))
    assert len(server.media) == 1
    assert "media_id" not in store.state

    # When the target is published again with the saved checkpoint
    result = platform.publish(store.request(account(), "lost answer", [{"url": JPEG}]))

    # Then the container read PUBLISHED: no new container, no second publish, one post
    (media_id,) = server.media
    assert result.platform_post_id == media_id
    assert result.url == server.media[media_id]["permalink"]
    assert len(server.containers) == 1
    assert len(server.calls(edge("media_publish"), "POST")) == 1
    # And the media id found is kept, so a further repeat asks nothing
    assert store.state["media_id"] == media_id


def test_lookup_after_a_lost_publish_answer_finds_the_post(server, platform, store):
    # Given a publish that went out but whose answer was lost
    server.drop_after.add("publish")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "find me", [{"url": JPEG}]))
    posts_before = len(server.requests)

    # When the publisher asks whether it went out
    found = platform.lookup(store.request(account(), "find me", [{"url": JPEG}]))

    # Then the post is found, and asking only read
    (media_id,) = server.media
    assert found is not None and found.platform_post_id == media_id
    assert all(r.method == "GET" for r in server.requests[posts_before:])
    assert len(server.media) == 1


def test_a_crash_after_the_container_is_saved_resumes_with_it(server, platform, store):
    # Given a worker killed right after it saved the container id
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "resume", [{"url": JPEG}]))
    assert server.media == {}

    # When lookup is asked, then the target is published again
    assert platform.lookup(store.request(account(), "resume", [{"url": JPEG}])) is None
    result = platform.publish(store.request(account(), "resume", [{"url": JPEG}]))

    # Then the saved container was published: one container, one post
    assert len(server.containers) == 1
    assert list(server.media) == [result.platform_post_id]


def test_a_crash_after_publishing_is_answered_from_the_checkpoint(server, platform, store):
    # Given a worker killed right after it saved the media id
    store.crash_when = lambda state: "media_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "done", [{"url": JPEG}]))
    (media_id,) = server.media
    requests_before = len(server.requests)

    # When lookup and publish run again
    found = platform.lookup(store.request(account(), "done", [{"url": JPEG}]))
    again = platform.publish(store.request(account(), "done", [{"url": JPEG}]))

    # Then both answer that post without calling Instagram
    assert found is not None and found.platform_post_id == media_id
    assert again.platform_post_id == media_id
    assert len(server.requests) == requests_before


def test_a_stale_finished_status_does_not_publish_twice(server, platform, store):
    # Given a lost publish answer, and a status read that still says FINISHED afterwards
    server.drop_after.add("publish")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "lagging", [{"url": JPEG}]))
    server.status_lag = 1

    # When published again: media_publish is refused (already published)
    result = platform.publish(store.request(account(), "lagging", [{"url": JPEG}]))

    # Then the refusal led to reading the status again, which says PUBLISHED: one post
    (media_id,) = server.media
    assert result.platform_post_id == media_id
    assert len(server.calls(edge("media_publish"), "POST")) == 2


def test_an_expired_container_is_replaced(server, platform, store):
    # Given a container saved by a try that crashed, which then expired (24 h unpublished)
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "late", [{"url": JPEG}]))
    (old,) = server.containers
    server.expire(old)

    # When lookup asks; Then it certainly did not go out
    assert platform.lookup(store.request(account(), "late", [{"url": JPEG}])) is None

    # When published again; Then a new container is made and published once
    result = platform.publish(store.request(account(), "late", [{"url": JPEG}]))
    assert len(server.containers) == 2
    assert store.state["container_id"] != old
    assert list(server.media) == [result.platform_post_id]


@pytest.mark.parametrize("status", ["", "SCHEDULED"])
def test_a_saved_container_in_an_unknown_state_is_not_replaced(server, platform, store, status):
    # Given a container saved by a try that crashed, which now reads an unexpected status
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "odd", [{"url": JPEG}]))
    (container,) = server.containers
    server.containers[container]["state"] = status

    # When published again; Then whether it went out is unknown: no new container, no publish
    with pytest.raises(OutcomeUnknown, match=f"container {container}"):
        platform.publish(store.request(account(), "odd", [{"url": JPEG}]))
    assert list(server.containers) == [container]
    assert server.calls(edge("media_publish")) == []


def test_a_saved_container_that_cannot_be_read_is_unknown(server, platform, store):
    # Given a container saved by a try that crashed, which Graph now refuses to show
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "gone", [{"url": JPEG}]))
    (container,) = server.containers
    refusal = graph_error(100, "Unsupported get request", type="GraphMethodException")
    server.fail_next(1, refusal.status, refusal.body, path=f"/v25.0/{container}")

    # When published again; Then the outcome is unknown (a person checks), nothing is sent
    with pytest.raises(OutcomeUnknown, match="cannot be read"):
        platform.publish(store.request(account(), "gone", [{"url": JPEG}]))
    assert len(server.containers) == 1
    assert server.calls(edge("media_publish")) == []


def test_a_publish_answered_without_a_media_id_is_unknown(server, platform, store):
    # Given media_publish takes effect but answers 200 without an id
    server.fail_next(1, 200, {"success": True}, path=edge("media_publish"))

    # When published; Then the post may be live: the outcome is unknown, the container kept
    with pytest.raises(OutcomeUnknown, match="without the media id"):
        platform.publish(store.request(account(), "no id", [{"url": JPEG}]))
    assert "container_id" in store.state


def test_a_container_created_without_an_id_is_retryable(server, platform, store):
    # Given Graph answers the container creation without an id
    server.fail_next(1, 200, {"success": True}, path=edge("media"))

    # When published; Then the try may be repeated (a container is not a post), nothing saved
    with pytest.raises(TransientError, match="without its id"):
        platform.publish(store.request(account(), "no container", [{"url": JPEG}]))
    assert store.state == {}
    assert server.calls(edge("media_publish")) == []


def test_only_a_saved_container_may_have_made_the_post_public(platform):
    # Given the checkpoints a target goes through; When asked; Then only a saved container
    # (whose publish may have been sent) or media id counts
    assert platform.may_be_public({}) is False
    assert platform.may_be_public({"container_id": "1", "created_at": 1.0}) is True
    assert platform.may_be_public({"container_id": "1", "media_id": "2"}) is True


def test_lookup_without_a_checkpoint_is_none_and_asks_nothing(server, platform):
    # Given a request whose try never saved a container; When looked up
    found = platform.lookup(
        PublishRequest(account=account(), idempotency_key="t", text="x", media=({"url": JPEG},))
    )

    # Then nothing went out (the container id is saved before any publish), and nothing was asked
    assert found is None
    assert server.requests == []


def test_lookup_of_a_finished_unpublished_container_is_none(server, platform, store):
    # Given a container that finished processing but was never published
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "waiting", [{"url": JPEG}]))

    # When looked up; Then it did not go out
    assert platform.lookup(store.request(account(), "waiting", [{"url": JPEG}])) is None


def test_a_published_container_with_an_ambiguous_caption_answers_the_container_id(
    server, platform, store
):
    # Given an older post with the same caption, and a lost answer for the new one
    platform.publish(CheckpointStore().request(account(), "same words", [{"url": JPEG}]))
    server.drop_after.add("publish")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "same words", [{"url": JPEG}]))
    container = store.state["container_id"]

    # When looked up (both posts are newer than the container's saved time, within the slack)
    found = platform.lookup(store.request(account(), "same words", [{"url": JPEG}]))

    # Then it went out, but which media is ours cannot be told: the container id stands for it
    assert found is not None
    assert found.platform_post_id == container
    assert found.url is None
    assert len(server.media) == 2


# -- quota ----------------------------------------------------------------------------------


def test_a_used_up_publishing_quota_is_retryable_and_keeps_the_container(server, platform, store):
    # Given the account has published 100 posts in the last 24 hours
    server.quota_used_elsewhere = 100

    # When publishing; Then the try waits an hour, and media_publish was never called
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "later", [{"url": JPEG}]))
    assert caught.value.retry_after == 3600
    assert "100 of the 100" in caught.value.message
    assert server.calls(edge("media_publish")) == []

    # When the window has moved on; Then the same container is published
    server.quota_used_elsewhere = 0
    result = platform.publish(store.request(account(), "later", [{"url": JPEG}]))
    assert len(server.containers) == 1
    assert list(server.media) == [result.platform_post_id]


def test_the_publish_calls_own_quota_refusal_is_retryable(server, client, store):
    # Given a quota read that says there is room, but media_publish refuses (code 9/2207042)
    platform = InstagramPlatform(client, api_url=server.url, quota_retry_after=1800)
    server.fail_next(1, 400, server.over_quota().body, path=edge("media_publish"))

    # When publishing; Then it is retryable after the quota wait, with Instagram's words
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert caught.value.retry_after == 1800
    assert "maximum number of posts" in caught.value.message
    assert server.media == {}


def test_pacing_follows_the_documented_quota():
    # Then the adapter asks the publisher for at most 100 posts per account per 24 hours
    assert InstagramPlatform.pacing == (Pace("account", 100, 86400),)


# -- errors ---------------------------------------------------------------------------------


def test_429_with_retry_after_is_retryable(server, platform, store):
    # Given a 429 with Retry-After (no Graph body)
    server.fail_next(1, 429, b"Too Many Requests", {"Retry-After": "42"})

    # When publishing; Then the error is retryable after 42 s and nothing was made
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert caught.value.retry_after == 42
    assert server.containers == {}


def test_business_use_case_throttling_waits_as_the_header_says(server, platform, store):
    # Given Instagram's BUC limit is reached, to be regained in 7 minutes
    server.throttle(1, code=80002, minutes=7, business_id=IG)

    # When publishing; Then retry_after is 7 minutes
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert caught.value.retry_after == 420
    assert caught.value.http_status == 400


def test_app_throttling_waits_a_fixed_time(server, platform, store):
    # Given code 4 with X-App-Usage at 100 % (which gives no time)
    server.throttle(1, code=4)

    # When publishing; Then the adapter's fixed wait applies
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert caught.value.retry_after == 300


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable_and_a_later_try_succeeds(server, platform, store, status):
    # Given one temporary Graph failure
    body = graph_error(2, "Service temporarily unavailable", is_transient=True).body
    server.fail_next(1, status, body)

    # When publishing twice
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert caught.value.http_status == status
    result = platform.publish(store.request(account(), "x", [{"url": JPEG}]))

    # Then the second try posted once
    assert list(server.media) == [result.platform_post_id]


def test_a_not_ready_refusal_is_retryable(server, platform, store):
    # Given media_publish says the media is not ready (9007/2207027)
    server.fail_next(1, 400, server.not_ready("x").body, path=edge("media_publish"))

    # When publishing; Then it is retryable and the container is kept for the next try
    with pytest.raises(TransientError, match="not ready"):
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert "container_id" in store.state


def test_an_expired_token_needs_auth(server, platform, store):
    # When publishing with a token Graph says has expired (190/463)
    with pytest.raises(NeedsAuth) as caught:
        platform.publish(store.request(account("expired-token"), "x", [{"url": JPEG}]))

    # Then the account must be connected again; Graph's words are kept, the token is not
    assert "Session has expired" in caught.value.message
    assert "code 190/463" in caught.value.message
    assert "expired-token" not in caught.value.message
    assert server.containers == {}


def test_an_unknown_token_needs_auth(server, platform, store):
    with pytest.raises(NeedsAuth, match="Cannot parse access token"):
        platform.publish(store.request(account("nonsense"), "x", [{"url": JPEG}]))


def test_a_bare_401_needs_auth(server, platform, store):
    # Given a 401 without a Graph body
    server.fail_next(1, 401, b"Unauthorized")

    with pytest.raises(NeedsAuth):
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))


def test_a_missing_permission_needs_auth(server, platform, store):
    # Given the token lacks instagram_content_publish (code 10)
    server.fail_next(
        1, 400, graph_error(10, "Application does not have permission for this action").body
    )

    with pytest.raises(NeedsAuth, match="permission"):
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))


def test_no_token_needs_auth_without_a_call(server, platform):
    acc = AccountRef("a", "t", "instagram", "alice", settings={"ig_user_id": IG})
    with pytest.raises(NeedsAuth):
        platform.publish(PublishRequest(acc, "k", "x", ({"url": JPEG},)))
    assert server.requests == []


def test_other_refusals_are_permanent_with_instagrams_words(server, platform, store):
    # Given an image Instagram cannot accept (not a JPEG; validate was skipped)
    media = [{"url": "https://cdn.example.org/photos/cat.png"}]

    # When publishing; Then the error is permanent and carries message and user message
    with pytest.raises(PermanentError) as caught:
        platform.publish(store.request(account(), "x", media))
    assert "Only photo or video can be accepted" in caught.value.message
    assert "could not be fetched" in caught.value.message
    assert "code 9004/2207052" in caught.value.message
    assert caught.value.http_status == 400


def test_network_failure_is_retryable(client, store):
    # Given a host that refuses connections
    with running(FakeInstagram()) as gone:
        url = gone.url
    platform = InstagramPlatform(client, api_url=url)

    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert caught.value.http_status is None


def test_invalid_settings_are_a_permanent_error_without_a_call(server, platform):
    acc = AccountRef("a", "t", "instagram", "alice", credentials={"access_token": "good-token"})
    with pytest.raises(PermanentError, match="ig_user_id"):
        platform.publish(PublishRequest(acc, "k", "x", ({"url": JPEG},)))
    assert server.requests == []


# -- validate -------------------------------------------------------------------------------


def rules(platform: InstagramPlatform, text: str, media: list, acc: AccountRef | None = None):
    return {v.rule for v in platform.validate(text, media, acc or account())}


def test_a_valid_post_has_no_violations(platform):
    media = [{"url": JPEG, "alt": "cat"}, {"url": MP4}, {"url": JPEG2, "mime_type": "image/jpeg"}]
    assert platform.validate("#a #b @c hello", media, account()) == []


def test_validate_caption_length(platform):
    assert rules(platform, "x" * 2200, [{"url": JPEG}]) == set()
    assert rules(platform, "x" * 2201, [{"url": JPEG}]) == {"max_characters"}


def test_validate_hashtags_and_mentions(platform):
    # Given 30 hashtags and 20 mentions; Then they fit
    ok = " ".join(f"#t{i}" for i in range(30)) + " " + " ".join(f"@u{i}" for i in range(20))
    assert rules(platform, ok, [{"url": JPEG}]) == set()

    # Given one more of each; Then both rules are broken
    too_many = ok + " #extra @extra"
    assert rules(platform, too_many, [{"url": JPEG}]) == {"max_hashtags", "max_mentions"}


def test_hashtags_and_mentions_are_counted_as_instagram_does():
    # Then an e-mail address and an HTML entity are neither
    assert hashtag_count("#one #two&#three x#four") == 2
    assert mention_count("@alice and bob@example.org and @bob.smith") == 2


def test_validate_requires_one_to_ten_media(platform):
    assert rules(platform, "text only", []) == {"media_required"}
    assert rules(platform, "x", [{"url": JPEG}] * 10) == set()
    assert rules(platform, "x", [{"url": JPEG}] * 11) == {"max_media"}


def test_validate_media_must_be_public_known_jpeg_images_or_videos(platform):
    assert rules(platform, "x", [{"data": "aGk="}]) == {"media_url"}
    assert rules(platform, "x", [{"url": "https://cdn.example.org/blob"}]) == {"media_kind"}
    assert rules(platform, "x", [{"url": "https://cdn.example.org/a.png"}]) == {"image_format"}
    assert rules(platform, "x", [{"url": JPEG, "size": 9 * 1024 * 1024}]) == {"media_size"}
    assert rules(platform, "x", [{"url": "https://cdn.example.org/blob", "kind": "video"}]) == set()


def test_validate_checks_the_account_settings(platform):
    acc = AccountRef("a", "t", "instagram", "alice", settings={"ig_user_id": "alice"})
    assert rules(platform, "x", [{"url": JPEG}], acc) == {"settings"}


def test_settings_and_credentials_schemas():
    # Then ig_user_id is required and numeric, unknown keys are refused, JSON types are strict
    assert InstagramSettings.model_validate({"ig_user_id": IG}).ig_user_id == IG
    for bad in ({}, {"ig_user_id": 178}, {"ig_user_id": IG, "x": 1}):
        with pytest.raises(ValueError):
            InstagramSettings.model_validate(bad)
    assert InstagramCredentials.model_validate({"access_token": "t"}).expires_at is None
    with pytest.raises(ValueError):
        InstagramCredentials.model_validate({"access_token": ""})


def test_usage_headers_on_a_success_do_not_stop_a_publish(server, platform, store):
    # Given BUC usage well below the limit on every answer
    server.buc_usage = {
        IG: [
            {
                "type": "instagram",
                "call_count": 12,
                "total_cputime": 3,
                "total_time": 4,
                "estimated_time_to_regain_access": 0,
            }
        ]
    }

    # When publishing; Then the post goes out
    result = platform.publish(store.request(account(), "x", [{"url": JPEG}]))
    assert list(server.media) == [result.platform_post_id]
