"""The Bluesky adapter against a local PDS that answers as the reference PDS does."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from herald_common.errors import NeedsAuth, PermanentError, TransientError
from herald_common.platforms.base import AccountRef, PublishRequest
from herald_common.platforms.bluesky import BlueskyPlatform, find_facets, record_key
from tests.platforms.servers import FakeMediaHost, FakePDS, Reply, running

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 64
NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)


@pytest.fixture
def pds() -> Iterator[FakePDS]:
    with running(FakePDS()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def saved() -> list[dict[str, str]]:
    return []


@pytest.fixture
def platform(client: httpx.Client, saved: list[dict[str, str]]) -> BlueskyPlatform:
    return BlueskyPlatform(client, now=lambda: NOW, on_session=lambda _, t: saved.append(dict(t)))


def account(pds: FakePDS, **credentials: str) -> AccountRef:
    return AccountRef(
        id="acc-1",
        tenant_id="t-1",
        platform="bluesky",
        handle=pds.handle,
        external_id=pds.did,
        settings={"service_url": pds.url},
        credentials=credentials or {"app_password": pds.password},
    )


def request(acc: AccountRef, text: str = "Hello, sky", key: str = "target-1", media=()):
    return PublishRequest(account=acc, idempotency_key=key, text=text, media=tuple(media))


# -- record keys ----------------------------------------------------------------------------


def test_record_key_is_a_stable_valid_tid():
    # Given two idempotency keys; When keys are derived
    first, again, other = record_key("target-1"), record_key("target-1"), record_key("target-2")

    # Then the same key gives the same TID, different keys differ, and each is TID syntax
    assert first == again != other
    for key in (first, other):
        assert re.fullmatch(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}", key)
        # ... whose time lies in 2000-2008: never one the PDS would generate now
        value = 0
        for char in key:
            value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
        seconds = (value >> 10) / 1_000_000
        assert datetime(2000, 1, 1, tzinfo=UTC).timestamp() <= seconds
        assert seconds < datetime(2009, 1, 1, tzinfo=UTC).timestamp()


# -- publish --------------------------------------------------------------------------------


def test_publish_text_signs_in_and_creates_the_record_under_the_derived_key(pds, platform, saved):
    # Given an account with only an app password
    acc = account(pds)

    # When a text post is published
    result = platform.publish(request(acc))

    # Then it signed in once, wrote one record under the derived TID, and returns its URL
    rkey = record_key("target-1")
    assert list(pds.records) == [rkey]
    assert result.platform_post_id == f"at://{pds.did}/app.bsky.feed.post/{rkey}"
    assert result.url == f"https://bsky.app/profile/alice.test/post/{rkey}"
    (signin,) = pds.calls("/xrpc/com.atproto.server.createSession")
    assert signin.json() == {"identifier": "alice.test", "password": "app-pw"}
    (create,) = pds.calls("/xrpc/com.atproto.repo.createRecord")
    assert create.headers["authorization"] == f"Bearer {saved[0]['accessJwt']}"
    body = create.json()
    assert body["repo"] == pds.did and body["rkey"] == rkey
    assert body["record"] == {
        "$type": "app.bsky.feed.post",
        "text": "Hello, sky",
        "createdAt": "2026-05-04T12:30:00.000+00:00",
    }


def test_the_session_is_reused_across_publishes(pds, platform):
    # Given one publish done; When another post is published for the same account
    acc = account(pds)
    platform.publish(request(acc, key="a"))
    platform.publish(request(acc, key="b"))

    # Then the adapter signed in only once
    assert len(pds.calls("/xrpc/com.atproto.server.createSession")) == 1
    assert len(pds.records) == 2


def test_publishing_the_same_request_twice_makes_one_post(pds, platform):
    # Given a post published once (its answer lost, say)
    acc = account(pds)
    first = platform.publish(request(acc))

    # When published again: the PDS answers 500 for the existing rkey, as the reference PDS does
    second = platform.publish(request(acc))

    # Then the adapter found the existing record: one post, the same uri
    assert second.platform_post_id == first.platform_post_id
    assert len(pds.records) == 1
    assert len(pds.calls("/xrpc/com.atproto.repo.createRecord")) == 2
    assert len(pds.calls("/xrpc/com.atproto.repo.getRecord")) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(409, {"error": "RecordAlreadyExists", "message": "Record already exists"}),
        Reply(400, {"error": "InvalidRequest", "message": "Record already exists"}),
    ],
)
def test_an_explicit_already_exists_error_is_also_success(pds, platform, reply):
    # Given a PDS that names the duplicate explicitly (bluesky-social/atproto#4728, other PDSes)
    pds.duplicate_reply = reply
    acc = account(pds)
    first = platform.publish(request(acc))

    # When published again; Then it is the same post
    assert platform.publish(request(acc)).platform_post_id == first.platform_post_id
    assert len(pds.records) == 1


def test_publish_with_images_uploads_blobs_and_embeds_them(pds, platform):
    # Given two images, one by URL and one inline, with alt text
    with running(FakeMediaHost({"/a.png": (PNG, "image/png")})) as host:
        media = [
            {"url": f"{host.url}/a.png", "alt": "a cat"},
            {"data": base64.b64encode(PNG).decode(), "mime_type": "image/jpeg", "alt": ""},
        ]

        # When published
        platform.publish(request(pds_account := account(pds), media=media))

    # Then each was uploaded with its type, and the record embeds both blobs with alt text
    uploads = pds.calls("/xrpc/com.atproto.repo.uploadBlob")
    assert [u.headers["content-type"] for u in uploads] == ["image/png", "image/jpeg"]
    assert all(u.body == PNG for u in uploads)
    embed = pds.records[record_key("target-1")]["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [i["alt"] for i in embed["images"]] == ["a cat", ""]
    assert [i["image"]["ref"]["$link"] for i in embed["images"]] == list(pds.blobs)
    assert pds_account.handle == "alice.test"


def test_facets_have_utf8_byte_offsets(pds, platform):
    # Given text with a non-ASCII character before a hashtag, a link and a mention
    text = "café #tag https://x.org @bob.test"

    # When published
    platform.publish(request(account(pds), text=text))

    # Then the facets index UTF-8 bytes ("é" is two bytes) and the mention carries the DID
    facets = pds.records[record_key("target-1")]["value"]["facets"]
    assert facets == [
        {
            "index": {"byteStart": 6, "byteEnd": 10},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "tag"}],
        },
        {
            "index": {"byteStart": 11, "byteEnd": 24},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://x.org"}],
        },
        {
            "index": {"byteStart": 25, "byteEnd": 34},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:bob"}],
        },
    ]
    encoded = text.encode()
    assert encoded[6:10] == b"#tag" and encoded[25:34] == b"@bob.test"
    (resolve,) = pds.calls("/xrpc/com.atproto.identity.resolveHandle")
    assert resolve.query == {"handle": ["bob.test"]}


def test_facets_skip_unresolvable_handles_and_trim_punctuation():
    # Given an unknown handle, a link ending a sentence, emoji before a tag, and a numeric tag
    text = "👋🏽 @nobody.test see https://example.org/a_(b). #日本語! #123"

    # When facets are found
    facets = find_facets(text, lambda handle: None)

    # Then the mention is plain text, the link and tag stop before punctuation, #123 is no tag
    spans = [
        (text.encode()[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(), f["features"][0])
        for f in facets
    ]
    assert spans == [
        (
            "https://example.org/a_(b)",
            {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.org/a_(b)"},
        ),
        ("#日本語", {"$type": "app.bsky.richtext.facet#tag", "tag": "日本語"}),
    ]


# -- sessions and auth ----------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_transparently(pds, platform, saved):
    # Given stored session tokens whose access token has expired
    tokens = pds.issue_tokens(expired=True)
    acc = account(pds, **tokens)

    # When publishing
    result = platform.publish(request(acc))

    # Then the adapter refreshed with the refresh token, retried, and posted once
    assert len(pds.records) == 1
    assert result.http_status == 200
    (refresh,) = pds.calls("/xrpc/com.atproto.server.refreshSession")
    assert refresh.headers["authorization"] == f"Bearer {tokens['refreshJwt']}"
    assert pds.calls("/xrpc/com.atproto.server.createSession") == []
    assert saved and saved[-1]["accessJwt"] != tokens["accessJwt"]  # new tokens handed back


def test_a_failed_refresh_falls_back_to_signing_in(pds, platform):
    # Given an expired access token and a refresh token the PDS no longer accepts
    tokens = pds.issue_tokens(expired=True)
    pds.refresh.clear()
    acc = account(pds, **tokens, app_password=pds.password)

    # When publishing; Then it signed in with the app password and posted
    platform.publish(request(acc))
    assert len(pds.calls("/xrpc/com.atproto.server.createSession")) == 1
    assert len(pds.records) == 1


def test_refresh_failing_without_an_app_password_needs_auth(pds, platform):
    # Given an expired session, a dead refresh token and no app password
    tokens = pds.issue_tokens(expired=True)
    pds.refresh.clear()

    # When publishing; Then the account must be connected again, and nothing was posted
    with pytest.raises(NeedsAuth):
        platform.publish(request(account(pds, **tokens)))
    assert pds.records == {}


def test_a_wrong_app_password_needs_auth(pds, platform):
    # Given a wrong app password; When publishing
    with pytest.raises(NeedsAuth) as caught:
        platform.publish(request(account(pds, app_password="wrong")))

    # Then NeedsAuth quotes the PDS
    assert "Invalid identifier or password" in caught.value.message
    assert caught.value.http_status == 401


def test_tokens_expiring_between_publishes_are_refreshed(pds, platform):
    # Given a cached session from an earlier publish, whose tokens then expire
    acc = account(pds)
    platform.publish(request(acc, key="a"))
    pds.expire_all()

    # When publishing again; Then the adapter refreshed once and posted
    platform.publish(request(acc, key="b"))
    assert len(pds.calls("/xrpc/com.atproto.server.refreshSession")) == 1
    assert len(pds.records) == 2


# -- errors ---------------------------------------------------------------------------------


def test_429_is_retryable_after_the_rate_limit_reset(pds, platform):
    # Given the PDS rate-limits createRecord, with RateLimit-Reset in epoch seconds
    reset = int(time.time()) + 90
    pds.fail_next(
        1,
        429,
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        {"RateLimit-Limit": "5000", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)},
        path="/xrpc/com.atproto.repo.createRecord",
    )

    # When publishing
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account(pds)))

    # Then the error is retryable after about 90 s
    assert caught.value.http_status == 429
    assert caught.value.retry_after == pytest.approx(90, abs=3)
    assert "RateLimitExceeded" in caught.value.message


def test_429_with_retry_after_prefers_it(pds, platform):
    pds.fail_next(1, 429, {"error": "RateLimitExceeded"}, {"Retry-After": "12"})
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account(pds)))
    assert caught.value.retry_after == 12


def test_5xx_without_a_record_is_retryable(pds, platform):
    # Given createRecord fails with 502 and wrote nothing
    pds.fail_next(1, 502, b"Bad Gateway", path="/xrpc/com.atproto.repo.createRecord")

    # When publishing; Then it is retryable (the adapter checked: no record under the key)
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account(pds)))
    assert caught.value.http_status == 502
    assert len(pds.calls("/xrpc/com.atproto.repo.getRecord")) == 1
    assert pds.records == {}


def test_400_invalid_record_is_permanent_with_the_pds_message(pds, platform):
    # Given text the PDS rejects as too long; When publishing
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account(pds), text="x" * 301))

    # Then the error is permanent and quotes the PDS
    assert "must not be longer than 300 graphemes" in caught.value.message
    assert caught.value.http_status == 400


def test_an_oversized_image_is_permanent_before_upload(pds, platform):
    big = base64.b64encode(b"\x00" * 1_000_001).decode()
    with pytest.raises(PermanentError, match="1,000,001 bytes"):
        platform.publish(request(account(pds), media=[{"data": big, "alt": ""}]))
    assert pds.calls("/xrpc/com.atproto.repo.uploadBlob") == []


# -- validate -------------------------------------------------------------------------------


def test_validate_counts_graphemes_not_code_points(pds, platform):
    acc = account(pds)
    # Given 300 flags (600 code points, 300 graphemes); Then it fits
    assert platform.validate("🇫🇷" * 300, [], acc) == []
    # Given 301 letters; Then it does not
    (violation,) = platform.validate("a" * 301, [], acc)
    assert violation.rule == "max_graphemes"


def test_validate_images_count_alt_text_and_size(pds, platform):
    acc = account(pds)
    small = {"url": "https://example.org/a.png", "alt": ""}
    # Given five images, one without alt, one too large
    media = [
        small,
        small,
        small,
        {"url": "https://example.org/b.png"},
        {**small, "size": 1_000_001},
    ]

    # When validated; Then each rule is reported
    rules = sorted(v.rule for v in platform.validate("hi", media, acc))
    assert rules == ["alt_text", "image_size", "max_images"]


def test_validate_accepts_four_images_with_alt(pds, platform):
    media = [{"url": "https://example.org/a.png", "alt": "a"}] * 4
    assert platform.validate("hi", media, account(pds)) == []


# -- lookup ---------------------------------------------------------------------------------


def test_lookup_finds_a_published_post(pds, platform):
    # Given a published post
    acc = account(pds)
    published = platform.publish(request(acc))

    # When looked up by the same key
    found = platform.lookup(request(acc))

    # Then it is that record
    assert found is not None
    assert found.platform_post_id == published.platform_post_id
    assert found.url == published.url


def test_lookup_of_a_post_that_never_went_out_is_none(pds, platform):
    # Given nothing published under this key; When looked up; Then None, and nothing written
    assert platform.lookup(request(account(pds))) is None
    assert pds.records == {}
    assert pds.calls("/xrpc/com.atproto.repo.createRecord") == []


def test_lookup_when_the_pds_is_down_is_retryable(pds, platform):
    pds.fail_next(1, 503, {"error": "Unavailable"})
    with pytest.raises(TransientError):
        platform.lookup(request(account(pds)))
