"""The Threads adapter against a local graph.threads.net that behaves as Meta's docs say."""

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
from herald_common.platforms.threads import (
    ThreadsCredentials,
    ThreadsPlatform,
    ThreadsSettings,
    links,
    threads_length,
)
from tests.platforms.fake_meta import CheckpointStore, FakeThreads, SimulatedCrash, graph_error
from tests.platforms.servers import running

USER = "8800000000000001"
JPEG = "https://cdn.example.org/photos/cat.jpg"
PNG = "https://cdn.example.org/photos/dog.png"
MP4 = "https://cdn.example.org/videos/run.mp4"


@pytest.fixture
def server() -> Iterator[FakeThreads]:
    with running(FakeThreads()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def platform(client: httpx.Client, server: FakeThreads, sleeps: list[float]) -> ThreadsPlatform:
    return ThreadsPlatform(
        client, api_url=server.url, poll_interval=0.01, poll_timeout=5, sleep=sleeps.append
    )


@pytest.fixture
def store() -> CheckpointStore:
    return CheckpointStore()


def account(token: str = "good-token", **settings: object) -> AccountRef:
    return AccountRef(
        id="acc-th",
        tenant_id="t-1",
        platform="threads",
        handle="alice",
        settings=dict(settings),
        credentials={"access_token": token},
    )


def edge(name: str, user: str = "me") -> str:
    return f"/v1.0/{user}/{name}"


# -- publish --------------------------------------------------------------------------------


def test_publish_text_creates_a_text_container_then_publishes_it(server, platform, store):
    # Given an account that limits replies to people it follows
    acc = account(reply_control="accounts_you_follow")

    # When a text post is published
    result = platform.publish(store.request(acc, "Hello, Threads"))

    # Then a TEXT container was made on "me" and published once
    (create,) = server.calls(edge("threads"), "POST")
    assert create.form() == {
        "media_type": ["TEXT"],
        "text": ["Hello, Threads"],
        "reply_control": ["accounts_you_follow"],
    }
    assert create.headers["authorization"] == "Bearer good-token"
    (container,) = server.containers
    (publish,) = server.calls(edge("threads_publish"), "POST")
    assert publish.form() == {"creation_id": [container]}
    assert list(server.media) == [result.platform_post_id]
    assert result.url == server.media[result.platform_post_id]["permalink"]
    assert store.state == {
        "container_id": container,
        "created_at": store.saves[0]["created_at"],
        "media_id": result.platform_post_id,
        "permalink": result.url,
    }


def test_publish_to_a_numeric_profile_id(server, platform, store):
    result = platform.publish(store.request(account(threads_user_id=USER), "by id"))
    assert len(server.calls(edge("threads", USER), "POST")) == 1
    assert list(server.media) == [result.platform_post_id]


def test_publish_a_video_waits_for_processing(server, platform, store, sleeps):
    # Given a video Threads processes for two status reads
    server.processing_polls = 2

    # When it is published with alt text
    result = platform.publish(store.request(account(), "watch", [{"url": MP4, "alt": "a run"}]))

    # Then the VIDEO container was polled until FINISHED and then published
    (create,) = server.calls(edge("threads"), "POST")
    assert create.form() == {
        "media_type": ["VIDEO"],
        "video_url": [MP4],
        "alt_text": ["a run"],
        "text": ["watch"],
    }
    assert sleeps == [0.01, 0.01]
    assert list(server.media) == [result.platform_post_id]


def test_publish_a_carousel(server, platform, store):
    # Given an image and a video
    media = [{"url": PNG}, {"url": MP4}]

    # When published
    result = platform.publish(store.request(account(), "two", media))

    # Then two item containers, then the CAROUSEL container, one post
    creates = [c.form() for c in server.calls(edge("threads"), "POST")]
    assert creates[0] == {"media_type": ["IMAGE"], "image_url": [PNG], "is_carousel_item": ["true"]}
    assert creates[1] == {"media_type": ["VIDEO"], "video_url": [MP4], "is_carousel_item": ["true"]}
    assert creates[2]["media_type"] == ["CAROUSEL"]
    assert creates[2]["text"] == ["two"]
    assert len(creates[2]["children"][0].split(",")) == 2
    assert list(server.media) == [result.platform_post_id]


def test_a_container_that_ends_in_error_is_permanent(server, platform, store):
    server.processing_error = "FAILED_DOWNLOADING_VIDEO"
    with pytest.raises(PermanentError, match="FAILED_DOWNLOADING_VIDEO"):
        platform.publish(store.request(account(), "x", [{"url": MP4}]))
    assert server.media == {}


# -- repeats and crashes --------------------------------------------------------------------


def test_a_publish_whose_answer_is_lost_is_not_repeated(server, platform, store):
    # Given Threads publishes but the connection drops before the answer
    server.drop_after.add("publish")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "once only"))

    # When lookup asks, and then publish runs again with the checkpoint
    found = platform.lookup(store.request(account(), "once only"))
    again = platform.publish(store.request(account(), "once only"))

    # Then both find the one post; it was published once
    (media_id,) = server.media
    assert found is not None and found.platform_post_id == media_id
    assert again.platform_post_id == media_id
    assert len(server.calls(edge("threads_publish"), "POST")) == 1
    assert len(server.top_containers()) == 1


def test_a_crash_before_publishing_resumes_with_the_saved_container(server, platform, store):
    # Given a worker killed right after saving the container id
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "resume"))

    # When lookup asks; Then nothing went out
    assert platform.lookup(store.request(account(), "resume")) is None

    # When publish runs again; Then that container is published: one container, one post
    result = platform.publish(store.request(account(), "resume"))
    assert len(server.containers) == 1
    assert list(server.media) == [result.platform_post_id]


def test_publishing_twice_with_the_checkpoint_makes_one_post(server, platform, store):
    first = platform.publish(store.request(account(), "twice"))
    second = platform.publish(store.request(account(), "twice"))
    assert second.platform_post_id == first.platform_post_id
    assert len(server.media) == 1
    assert len(server.calls(edge("threads"), "POST")) == 1


def test_an_expired_container_is_replaced(server, platform, store):
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "late"))
    (old,) = server.containers
    server.expire(old)

    assert platform.lookup(store.request(account(), "late")) is None
    result = platform.publish(store.request(account(), "late"))
    assert len(server.containers) == 2
    assert list(server.media) == [result.platform_post_id]


def test_lookup_without_a_checkpoint_asks_nothing(server, platform):
    assert platform.lookup(PublishRequest(account(), "k", "x")) is None
    assert server.requests == []
    assert platform.may_be_public({}) is False


def test_a_video_still_processing_at_the_timeout_waits_and_the_next_try_carries_on(
    server, client, store
):
    # Given a video still processing when the adapter's deadline passes (a fake clock)
    server.processing_polls = 5
    clock = iter(range(1000))
    platform = ThreadsPlatform(
        client,
        api_url=server.url,
        poll_interval=1,
        poll_timeout=2,
        sleep=lambda _: None,
        monotonic=lambda: next(clock),
    )

    # When published; Then the try waits without spending an attempt, the container saved
    with pytest.raises(StillProcessing, match="still IN_PROGRESS"):
        platform.publish(store.request(account(), "slow", [{"url": MP4}]))
    (container,) = server.containers
    assert store.state["container_id"] == container
    assert platform.may_be_public(store.state) is True


def test_a_carousel_item_still_processing_at_the_timeout_is_an_ordinary_retry(
    server, client, store
):
    # Given carousel items still processing when the deadline passes (items are not saved)
    server.processing_polls = 5
    clock = iter(range(1000))
    platform = ThreadsPlatform(
        client,
        api_url=server.url,
        poll_interval=1,
        poll_timeout=2,
        sleep=lambda _: None,
        monotonic=lambda: next(clock),
    )

    # When published; Then it is a TransientError (an attempt), not a wait
    with pytest.raises(TransientError, match="carousel item") as caught:
        platform.publish(store.request(account(), "two", [{"url": JPEG}, {"url": MP4}]))
    assert not isinstance(caught.value, StillProcessing)
    assert store.state == {}


def test_a_saved_container_in_an_unknown_state_is_not_replaced(server, platform, store):
    # Given a container saved by a try that crashed, which now reads no status at all
    store.crash_when = lambda state: "container_id" in state
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "odd"))
    (container,) = server.containers
    server.containers[container]["state"] = ""

    # When published again; Then the outcome is unknown: no new container, no publish
    with pytest.raises(OutcomeUnknown, match="without a status"):
        platform.publish(store.request(account(), "odd"))
    assert list(server.containers) == [container]
    assert server.calls(edge("threads_publish")) == []


def test_a_container_not_found_right_after_creation_is_retryable(server, platform, store):
    # Given threads_publish answers 24/4279009 (the container is not registered yet)
    server.fail_next(1, 400, server.not_found("x").body, path=edge("threads_publish"))

    # When publishing; Then it is retryable and the next try publishes the same container
    with pytest.raises(TransientError, match="4279009"):
        platform.publish(store.request(account(), "race"))
    result = platform.publish(store.request(account(), "race"))
    assert len(server.containers) == 1
    assert list(server.media) == [result.platform_post_id]


# -- quota and throttling -------------------------------------------------------------------


def test_a_used_up_quota_is_retryable(server, client, store):
    # Given 250 posts in the last 24 hours
    server.quota_used_elsewhere = 250
    platform = ThreadsPlatform(client, api_url=server.url, quota_retry_after=900)

    # When publishing; Then the try waits, and threads_publish was not called
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "later"))
    assert caught.value.retry_after == 900
    assert "250 of the 250" in caught.value.message
    assert server.calls(edge("threads_publish")) == []
    (limit,) = server.calls(edge("threads_publishing_limit"), "GET")
    assert limit.query == {"fields": ["quota_usage,config"]}


def test_pacing_follows_the_documented_quota():
    assert ThreadsPlatform.pacing == (Pace("account", 250, 86400),)


def test_throttling_with_buc_header_waits_as_it_says(server, platform, store):
    server.throttle(1, code=80002, minutes=3, business_id=USER, buc_type="threads")
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x"))
    assert caught.value.retry_after == 180


def test_429_with_retry_after_is_retryable(server, platform, store):
    server.fail_next(1, 429, b"", {"Retry-After": "11"})
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x"))
    assert caught.value.retry_after == 11


def test_a_server_error_is_retryable_then_a_try_succeeds(server, platform, store):
    server.fail_next(1, 500, graph_error(1, "An unknown error occurred", is_transient=True).body)
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "x"))
    result = platform.publish(store.request(account(), "x"))
    assert list(server.media) == [result.platform_post_id]


# -- auth and refusals ----------------------------------------------------------------------


def test_an_expired_token_needs_auth(server, platform, store):
    with pytest.raises(NeedsAuth) as caught:
        platform.publish(store.request(account("expired-token"), "x"))
    assert "Session has expired" in caught.value.message
    assert server.containers == {}


def test_no_token_needs_auth_without_a_call(server, platform):
    acc = AccountRef("a", "t", "threads", "alice")
    with pytest.raises(NeedsAuth):
        platform.publish(PublishRequest(acc, "k", "x"))
    assert server.requests == []


def test_too_many_links_refused_by_threads_is_permanent(server, platform, store):
    # Given six links (validate was skipped); When publishing
    text = " ".join(f"https://site{i}.example" for i in range(6))
    with pytest.raises(PermanentError) as caught:
        platform.publish(store.request(account(), text))

    # Then Threads' error code is kept and nothing was published
    assert "THREADS_API__LINK_LIMIT_EXCEEDED" in caught.value.message
    assert server.media == {}


# -- validate -------------------------------------------------------------------------------


def rules(platform: ThreadsPlatform, text: str, media: list, acc: AccountRef | None = None):
    return {v.rule for v in platform.validate(text, media, acc or account())}


def test_a_valid_post_has_no_violations(platform):
    assert platform.validate("hi https://example.org", [{"url": JPEG}], account()) == []
    assert platform.validate("", [{"url": JPEG}, {"url": MP4}], account()) == []


def test_emoji_count_their_utf8_bytes():
    # Then a plain letter is one, 😀 is four bytes, a family ZWJ sequence is all its bytes
    assert threads_length("a") == 1
    assert threads_length("😀") == 4
    family = "👨\u200d👩\u200d👧"
    assert threads_length(family) == len(family.encode())
    assert threads_length("e\u0301") == 1


def test_validate_text_length(platform):
    assert rules(platform, "x" * 500, []) == set()
    assert rules(platform, "x" * 501, []) == {"max_characters"}
    # 125 emoji of 4 bytes fit exactly; one more letter does not
    assert rules(platform, "😀" * 125, []) == set()
    assert rules(platform, "😀" * 125 + "x", []) == {"max_characters"}


def test_validate_counts_unique_links(platform):
    five = " ".join(f"https://site{i}.example/" for i in range(5))
    assert links(five + " https://SITE0.example") == {f"site{i}.example" for i in range(5)}
    assert rules(platform, five + " https://site0.example.", []) == set()
    assert rules(platform, five + " www.sixth.example", []) == {"max_links"}


def test_validate_empty_and_media_rules(platform):
    assert rules(platform, "  ", []) == {"empty"}
    assert rules(platform, "x", [{"url": JPEG}] * 20) == set()
    assert rules(platform, "x", [{"url": JPEG}] * 21) == {"max_media"}
    assert rules(platform, "x", [{"data": "aGk="}]) == {"media_url"}
    assert rules(platform, "x", [{"url": "https://cdn.example.org/blob"}]) == {"media_kind"}
    assert rules(platform, "x", [{"url": "https://cdn.example.org/a.gif"}]) == {"image_format"}
    assert rules(platform, "x", [{"url": JPEG, "size": 9_000_000}]) == {"media_size"}
    assert rules(
        platform,
        "x",
        [{"url": "https://cdn.example.org/a.webm", "kind": "video", "mime_type": "video/webm"}],
    ) == {"video_format"}


def test_validate_checks_settings(platform):
    assert rules(platform, "x", [], account(reply_control="nobody")) == {"settings"}
    assert rules(platform, "x", [], account(threads_user_id="alice")) == {"settings"}


def test_settings_and_credentials_schemas():
    assert ThreadsSettings.model_validate({}).threads_user_id == "me"
    assert ThreadsSettings.model_validate({"reply_control": "mentioned_only"}).reply_control == (
        "mentioned_only"
    )
    for bad in ({"threads_user_id": 88}, {"x": 1}, {"reply_control": "nobody"}):
        with pytest.raises(ValueError):
            ThreadsSettings.model_validate(bad)
    with pytest.raises(ValueError):
        ThreadsCredentials.model_validate({})
