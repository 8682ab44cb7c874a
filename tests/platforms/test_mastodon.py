"""The Mastodon adapter against a local server that behaves as docs.joinmastodon.org says."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from herald_common.errors import NeedsAuth, PermanentError, TransientError
from herald_common.platforms.base import AccountRef, LookupUnsupported, PublishRequest
from herald_common.platforms.mastodon import MastodonPlatform, countable_length
from tests.platforms.servers import FakeMastodon, FakeMediaHost, running

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def server() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def platform(client: httpx.Client, sleeps: list[float]) -> MastodonPlatform:
    return MastodonPlatform(
        client, media_poll_interval=0.01, media_timeout=0.5, sleep=sleeps.append
    )


def account(server: FakeMastodon, token: str = "good-token", **settings: object) -> AccountRef:
    return AccountRef(
        id="acc-1",
        tenant_id="t-1",
        platform="mastodon",
        handle="alice",
        settings={"instance_url": server.url, **settings},
        credentials={"access_token": token},
    )


def request(acc: AccountRef, text: str = "Hello, fediverse", key: str = "target-1", media=()):
    return PublishRequest(account=acc, idempotency_key=key, text=text, media=tuple(media))


# -- publish --------------------------------------------------------------------------------


def test_publish_text_posts_a_status_with_the_idempotency_key(server, platform):
    # Given an account with visibility and language defaults
    acc = account(server, visibility="unlisted", language="en", spoiler_text="cw")

    # When a text post is published
    result = platform.publish(request(acc))

    # Then one status exists, and the request carried the token, key and defaults
    assert list(server.statuses) == [result.platform_post_id]
    assert result.url == server.statuses[result.platform_post_id]["url"]
    assert result.http_status == 200
    (call,) = server.calls("/api/v1/statuses", "POST")
    assert call.headers["authorization"] == "Bearer good-token"
    assert call.headers["idempotency-key"] == "target-1"
    assert call.form() == {
        "status": ["Hello, fediverse"],
        "visibility": ["unlisted"],
        "language": ["en"],
        "spoiler_text": ["cw"],
    }


def test_publishing_the_same_request_twice_makes_one_status(server, platform):
    # Given a post already published once
    acc = account(server)
    first = platform.publish(request(acc))

    # When the same request is published again (a retry after a lost answer)
    second = platform.publish(request(acc))

    # Then the server replayed the first status: one status, the same id, two POSTs
    assert second.platform_post_id == first.platform_post_id
    assert len(server.statuses) == 1
    assert len(server.calls("/api/v1/statuses", "POST")) == 2


def test_different_keys_make_different_statuses(server, platform):
    # Given one account; When two targets with different keys publish the same text
    acc = account(server)
    a = platform.publish(request(acc, key="target-a"))
    b = platform.publish(request(acc, key="target-b"))

    # Then they are two statuses (the key, not the text, decides)
    assert a.platform_post_id != b.platform_post_id
    assert len(server.statuses) == 2


def test_publish_with_media_uploads_then_waits_for_processing(server, platform, sleeps):
    # Given media that the server processes asynchronously (202, then 206 twice, then 200)
    server.processing_polls = 2
    with running(FakeMediaHost({"/cat.png": (PNG, "image/png")})) as host:
        media = [
            {"url": f"{host.url}/cat.png", "description": "a cat"},
            {"data": base64.b64encode(PNG).decode(), "mime_type": "image/png"},
        ]

        # When the post is published
        result = platform.publish(request(account(server), media=media))

    # Then both files were uploaded, polled until ready, and attached by id
    uploads = server.calls("/api/v2/media", "POST")
    assert len(uploads) == 2
    assert b'name="description"' in uploads[0].body and b"a cat" in uploads[0].body
    assert PNG in uploads[0].body and PNG in uploads[1].body
    assert len([r for r in server.requests if r.path.startswith("/api/v1/media/")]) == 6
    assert sleeps == [0.01] * 6
    status = server.statuses[result.platform_post_id]
    (call,) = server.calls("/api/v1/statuses", "POST")
    assert call.form()["media_ids[]"] == [m["id"] for m in status["media_attachments"]]
    assert len(status["media_attachments"]) == 2


def test_media_that_never_finishes_processing_is_retryable(server, client):
    # Given media that stays in processing longer than the adapter waits
    server.processing_polls = 1000
    clock = iter(range(100))
    platform = MastodonPlatform(
        client,
        media_poll_interval=0.01,
        media_timeout=3,
        sleep=lambda _: None,
        monotonic=lambda: next(clock),
    )

    # When publishing; Then a TransientError says so, and no status was posted
    with pytest.raises(TransientError, match="still processing"):
        platform.publish(request(account(server), media=[{"data": base64.b64encode(PNG).decode()}]))
    assert server.statuses == {}


# -- errors ---------------------------------------------------------------------------------


def test_429_is_retryable_after_retry_after(server, platform):
    # Given the server is rate-limiting with a Retry-After
    server.fail_next(1, 429, {"error": "Too many requests"}, {"Retry-After": "37"})

    # When publishing
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account(server)))

    # Then the error is retryable after 37 s, and nothing was posted
    assert caught.value.retry_after == 37
    assert caught.value.http_status == 429
    assert server.statuses == {}


def test_429_without_retry_after_uses_x_ratelimit_reset(server, platform):
    # Given a 429 that only carries Mastodon's X-RateLimit-Reset (an ISO time ~2 min ahead)
    reset = (datetime.now(UTC) + timedelta(seconds=120)).isoformat().replace("+00:00", "Z")
    server.fail_next(1, 429, {"error": "Too many requests"}, {"X-RateLimit-Reset": reset})

    # When publishing
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account(server)))

    # Then retry_after is the time until the reset
    assert caught.value.retry_after == pytest.approx(120, abs=5)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable_and_a_later_try_succeeds(server, platform, status):
    # Given the next two calls fail with a server error
    server.fail_next(2, status, {"error": "upstream trouble"})
    acc = account(server)

    # When publishing three times
    for _ in range(2):
        with pytest.raises(TransientError) as caught:
            platform.publish(request(acc))
        assert caught.value.http_status == status
    result = platform.publish(request(acc))

    # Then the third try posted exactly one status
    assert list(server.statuses) == [result.platform_post_id]


def test_network_failure_is_retryable(platform):
    # Given an instance that refuses connections (nothing listens on the port)
    with running(FakeMastodon()) as gone:
        acc = account(gone)

    # When publishing; Then the failure is retryable, without an HTTP status
    with pytest.raises(TransientError) as caught:
        platform.publish(request(acc))
    assert caught.value.http_status is None


def test_invalid_token_needs_auth(server, platform):
    # Given a token the server does not know; When publishing
    with pytest.raises(NeedsAuth) as caught:
        platform.publish(request(account(server, token="revoked")))

    # Then NeedsAuth carries Mastodon's words and the 401
    assert "The access token is invalid" in caught.value.message
    assert caught.value.http_status == 401


def test_missing_scope_403_needs_auth(server, platform):
    # Given a token without the write:statuses scope
    server.fail_next(1, 403, {"error": "This action is outside the authorized scopes"})

    # When publishing; Then the account must be connected again
    with pytest.raises(NeedsAuth, match="authorized scopes"):
        platform.publish(request(account(server)))


def test_missing_token_needs_auth_without_calling(server, platform):
    # Given an account without credentials; When publishing
    acc = AccountRef("a", "t", "mastodon", "alice", settings={"instance_url": server.url})
    with pytest.raises(NeedsAuth):
        platform.publish(request(acc))

    # Then the server was not called
    assert server.requests == []


def test_422_is_permanent_with_mastodons_message(server, platform):
    # Given text the server rejects (empty); When publishing
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account(server), text="   "))

    # Then the error is permanent and quotes Mastodon's validation message
    assert "Validation failed: Text can't be blank" in caught.value.message
    assert caught.value.http_status == 422


# -- validate -------------------------------------------------------------------------------


def test_urls_count_23_and_mentions_count_without_domain():
    # Given a long URL and a remote mention
    url = "https://example.org/" + "a" * 100
    text = f"see {url} @bob@social.example.org!"

    # When counted as Mastodon counts; Then the URL is 23 and the mention is "@bob"
    assert countable_length(text) == len("see ") + 23 + len(" @bob!")


def test_emoji_sequences_count_as_one_character():
    # Given a family emoji (ZWJ sequence), a flag and an accented letter with a combining mark
    text = "👨\u200d👩\u200d👧🇫🇷e\u0301"

    # Then each is one character
    assert countable_length(text) == 3


def test_validate_length_in_mastodon_counting(server, platform):
    acc = account(server, max_characters=30)
    long_url = "https://example.org/" + "x" * 200

    # Given a text under the limit only because URLs count 23; Then it is valid
    assert platform.validate(f"ok {long_url}", [], acc) == []

    # Given a text over the limit (with the content warning counted too); Then it is not
    acc_cw = account(server, max_characters=30, spoiler_text="content warning!")
    (violation,) = platform.validate(f"ok {long_url}", [], acc_cw)
    assert violation.rule == "max_characters"
    assert "at most 30" in violation.reason


def test_validate_media_count_and_visibility(server, platform):
    # Given five attachments and an unknown visibility
    acc = account(server, visibility="friends-only")
    media = [{"url": "https://example.org/a.png"}] * 5

    # When validated; Then both rules are reported
    rules = {v.rule for v in platform.validate("hi", media, acc)}
    assert rules == {"max_media", "visibility"}


def test_validate_accepts_four_media_and_known_visibility(server, platform):
    acc = account(server, visibility="private")
    media = [{"url": "https://example.org/a.png"}] * 4
    assert platform.validate("hi", media, acc) == []


# -- lookup ---------------------------------------------------------------------------------


def test_lookup_finds_the_status_a_publish_made(server, platform):
    # Given a published post with a mention of a remote account, a link and paragraphs
    text = "Hi @bob@other.example & friends\n\nsee https://example.org/x?a=1&b=2"
    acc = account(server)
    published = platform.publish(request(acc, text=text))

    # When looked up
    found = platform.lookup(request(acc, text=text))

    # Then it is that status
    assert found is not None
    assert found.platform_post_id == published.platform_post_id
    assert found.url == published.url


def test_lookup_of_a_post_that_never_went_out_is_none(server, platform):
    # Given another status on the account, but not this one
    acc = account(server)
    platform.publish(request(acc, text="something else", key="other"))

    # When looked up; Then nothing is found, and nothing was posted by asking
    assert platform.lookup(request(acc)) is None
    assert len(server.statuses) == 1
    assert server.calls("/api/v1/statuses", "POST")[-1].headers["idempotency-key"] == "other"


def test_lookup_with_two_identical_statuses_is_left_to_a_person(server, platform):
    # Given two recent statuses with the same text
    acc = account(server)
    platform.publish(request(acc, key="a"))
    platform.publish(request(acc, key="b"))

    # When looked up; Then the adapter does not guess
    with pytest.raises(LookupUnsupported):
        platform.lookup(request(acc, key="c"))
