"""The X adapter against a local X API v2 that answers as docs.x.com says."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from herald_common.errors import NeedsAuth, OutcomeUnknown, PermanentError, TransientError
from herald_common.platforms.base import AccountRef, LookupUnsupported, PublishRequest
from herald_common.platforms.x import XPlatform, XSettings, weighted_length
from tests.platforms.fake_x import UNSUPPORTED_AUTH, FakeX, invalid_request, multipart
from tests.platforms.servers import FakeMediaHost, running

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
GIF = b"GIF89a" + b"\x01" * 40
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4  # 1,036 bytes


@pytest.fixture
def server() -> Iterator[FakeX]:
    with running(FakeX()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def platform(client: httpx.Client, server: FakeX, sleeps: list[float]) -> XPlatform:
    return XPlatform(client, api_url=server.url, sleep=sleeps.append, chunk_size=400)


class Checkpoints:
    """A checkpoint store as the publisher keeps one: each save replaces the last."""

    def __init__(self, initial: Mapping[str, Any] | None = None, fail: bool = False) -> None:
        self.saved: list[dict[str, Any]] = []
        self.current: dict[str, Any] = dict(initial or {})
        self.fail = fail

    def save(self, state: Mapping[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("the target is no longer this try's")
        self.saved.append(dict(state))
        self.current = dict(state)


def account(token: str = "good-token", handle: str = "alice", **settings: Any) -> AccountRef:
    return AccountRef(
        id="acc-x",
        tenant_id="t-1",
        platform="x",
        handle=handle,
        settings=settings,
        credentials={"access_token": token},
    )


def request(
    acc: AccountRef,
    text: str = "Hello, X",
    media: tuple[Mapping[str, Any], ...] = (),
    checkpoints: Checkpoints | None = None,
) -> PublishRequest:
    store = checkpoints or Checkpoints()
    return PublishRequest(
        account=acc,
        idempotency_key="target-1",
        text=text,
        media=media,
        checkpoint=store.current,
        save_checkpoint=store.save,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- publish --------------------------------------------------------------------------------


def test_publish_text_creates_one_post(server, client):
    # Given an account that limits replies to people it follows
    now = 1_900_000_000.0
    platform = XPlatform(client, api_url=server.url, clock=lambda: now)
    checkpoints = Checkpoints()
    acc = account(reply_settings="following")

    # When a text post is published
    result = platform.publish(request(acc, checkpoints=checkpoints))

    # Then one post exists, created with the bearer token and the settings
    assert list(server.posts) == [result.platform_post_id]
    assert result.url == f"https://x.com/alice/status/{result.platform_post_id}"
    assert result.http_status == 201
    (call,) = server.calls("/2/tweets", "POST")
    assert call.headers["authorization"] == "Bearer good-token"
    assert call.json() == {"text": "Hello, X", "reply_settings": "following"}
    # And the try said it was about to create, and when, before it did
    assert checkpoints.saved == [
        {"stage": "creating", "media_ids": [], "media_expires_at": None, "started_at": now}
    ]


def test_a_created_post_whose_answer_names_no_id_is_unknown(server, platform):
    # Given X creates the post but answers 201 without `data.id`
    server.create_body = {"data": {"text": "Hello, X"}}

    # When publishing; Then the outcome is unknown (the post is live), not a retryable error
    with pytest.raises(OutcomeUnknown, match="names no post id"):
        platform.publish(request(account()))
    assert len(server.posts) == 1


def test_a_handle_that_is_no_username_gets_a_web_link(server, platform):
    # Given an account whose handle is not an X username; When publishing
    result = platform.publish(request(account(handle="Alice Example")))

    # Then the link works without the username
    assert result.url == f"https://x.com/i/web/status/{result.platform_post_id}"


def test_publish_with_images_uploads_them_with_alt_text(server, platform):
    # Given two images, one fetched by URL and one given as data
    with running(FakeMediaHost({"/cat.png": (PNG, "image/png")})) as host:
        media = (
            {"url": f"{host.url}/cat.png", "alt": "a cat"},
            {"data": b64(PNG), "mime_type": "image/jpeg", "filename": "dog.jpg"},
        )
        checkpoints = Checkpoints()

        # When the post is published
        result = platform.publish(request(account(), media=media, checkpoints=checkpoints))

    # Then each image went through the simple upload as a tweet_image
    uploads = server.calls("/2/media/upload", "POST")
    assert [multipart(u)["media_category"] for u in uploads] == [b"tweet_image"] * 2
    assert [multipart(u)["media_type"] for u in uploads] == [b"image/png", b"image/jpeg"]
    assert all(multipart(u)["media"] == PNG for u in uploads)
    # And the first got its alt text through the metadata endpoint, the second none
    (meta,) = server.calls("/2/media/metadata", "POST")
    post = server.posts[result.platform_post_id]
    assert meta.json() == {"id": post["media_ids"][0], "metadata": {"alt_text": {"text": "a cat"}}}
    assert server.media[post["media_ids"][0]].alt_text == "a cat"
    # And the post carries both media ids, which were checkpointed before the post
    assert len(post["media_ids"]) == 2
    assert [c["stage"] for c in checkpoints.saved] == ["uploading", "creating"]
    assert checkpoints.saved[-1]["media_ids"] == post["media_ids"]


def test_publish_with_a_video_uses_chunks_and_waits_for_processing(server, platform, sleeps):
    # Given a video that X processes for a while (pending, then in_progress twice)
    server.processing_polls = 2
    media = ({"data": b64(MP4), "mime_type": "video/mp4", "alt": "not sent for videos"},)

    # When it is published
    result = platform.publish(request(account(), text="Watch", media=media))

    # Then it was initialised as a tweet_video, appended in 400-byte segments 0..2, finalised
    (init,) = server.calls("/2/media/upload/initialize", "POST")
    assert init.json() == {
        "media_type": "video/mp4",
        "total_bytes": len(MP4),
        "media_category": "tweet_video",
    }
    media_id = server.posts[result.platform_post_id]["media_ids"][0]
    appends = server.calls(f"/2/media/upload/{media_id}/append", "POST")
    assert [multipart(a)["segment_index"] for a in appends] == [b"0", b"1", b"2"]
    assert bytes(server.media[media_id].content) == MP4
    assert len(server.calls(f"/2/media/upload/{media_id}/finalize", "POST")) == 1
    # And STATUS was polled after X's check_after_secs until it succeeded
    statuses = server.calls("/2/media/upload", "GET")
    assert [s.query for s in statuses] == [{"command": ["STATUS"], "media_id": [media_id]}] * 3
    assert sleeps == [2.0, 2.0, 2.0]
    assert server.media[media_id].alt_text is None
    assert server.calls("/2/media/metadata") == []


def test_a_gif_is_uploaded_in_chunks_as_tweet_gif_with_alt_text(server, platform):
    # Given an animated GIF (known by its extension only)
    media = ({"data": b64(GIF), "filename": "dance.gif", "alt": "dancing"},)

    # When published
    result = platform.publish(request(account(), media=media))

    # Then it took the chunked path as a tweet_gif and got its alt text
    (init,) = server.calls("/2/media/upload/initialize", "POST")
    assert init.json()["media_category"] == "tweet_gif"
    assert init.json()["media_type"] == "image/gif"
    media_id = server.posts[result.platform_post_id]["media_ids"][0]
    assert server.media[media_id].alt_text == "dancing"


def test_video_processing_that_fails_is_permanent(server, platform):
    # Given a video X fails to process
    server.fail_processing = True

    # When publishing; Then the error says why, and nothing was posted
    with pytest.raises(PermanentError, match="Unsupported video"):
        platform.publish(request(account(), media=({"data": b64(MP4), "kind": "video"},)))
    assert server.posts == {}


def test_video_that_never_finishes_processing_is_retryable(server, client):
    # Given a video still processing when the adapter stops waiting
    server.processing_polls = 1000
    clock = iter(range(1000))
    platform = XPlatform(
        client,
        api_url=server.url,
        sleep=lambda _: None,
        monotonic=lambda: next(clock),
        poll_timeout=5,
    )

    # When publishing; Then a TransientError says so, and no post was made
    with pytest.raises(TransientError, match="still processing"):
        platform.publish(request(account(), media=({"data": b64(MP4), "kind": "video"},)))
    assert server.posts == {}


# -- errors ---------------------------------------------------------------------------------


def test_429_with_retry_after_is_retryable_after_it(server, platform):
    # Given X is rate-limiting with a Retry-After
    server.fail_next(
        1,
        429,
        {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        },
        {"Retry-After": "42"},
    )

    # When publishing
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))

    # Then the error is retryable after 42 s, keeps X's words, and nothing was posted
    assert caught.value.retry_after == 42
    assert caught.value.http_status == 429
    assert "Too Many Requests" in caught.value.message
    assert server.posts == {}


def test_429_waits_for_the_15_minute_window_to_reset(server, client):
    # Given the user's 15-minute window is used up, resetting 600 s from "now"
    now = 1_900_000_000.0
    server.window_remaining = 0
    server.reset_at = int(now) + 600
    platform = XPlatform(client, api_url=server.url, clock=lambda: now)

    # When publishing
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))

    # Then retry_after comes from x-rate-limit-reset (epoch seconds)
    assert caught.value.retry_after == pytest.approx(600)


def test_429_of_the_daily_cap_waits_for_the_day_not_the_window(server, client):
    # Given the per-user 24-hour cap is used up, though the 15-minute window is not
    now = 1_900_000_000.0
    server.day_remaining = 0
    server.reset_at = int(now) + 600
    server.day_reset_at = int(now) + 20_000
    platform = XPlatform(client, api_url=server.url, clock=lambda: now)

    # When publishing
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))

    # Then retry_after is the time until the daily cap resets
    assert caught.value.retry_after == pytest.approx(20_000)
    assert server.posts == {}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable_and_the_next_try_posts_once(server, platform, status):
    # Given the next create fails with a server error (before X wrote anything)
    server.fail_next(
        1,
        status,
        {"title": "Server Error", "detail": "upstream", "status": status},
        path="/2/tweets",
    )

    # When publishing twice
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))
    result = platform.publish(request(account()))

    # Then the first was retryable and the second made the only post
    assert caught.value.http_status == status
    assert list(server.posts) == [result.platform_post_id]


def test_network_failure_is_retryable(client):
    # Given an X that refuses connections
    with running(FakeX()) as gone:
        platform = XPlatform(client, api_url=gone.url)

    # When publishing; Then the failure is retryable without an HTTP status
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))
    assert caught.value.http_status is None


def test_expired_token_needs_auth(server, platform):
    # Given a token X considers expired; When publishing
    with pytest.raises(NeedsAuth) as caught:
        platform.publish(request(account(token="expired-token")))

    # Then NeedsAuth carries X's words and the 401
    assert "Unauthorized" in caught.value.message
    assert caught.value.http_status == 401
    assert server.posts == {}


def test_an_app_only_token_needs_auth(server, platform):
    # Given X refuses the kind of token (app-only instead of user context)
    server.fail_next(1, 403, UNSUPPORTED_AUTH, path="/2/tweets")

    # When publishing; Then the account must be connected again
    with pytest.raises(NeedsAuth, match="Application-Only is forbidden"):
        platform.publish(request(account()))


def test_missing_token_needs_auth_without_calling_x(server, platform):
    # Given an account without credentials; When publishing
    acc = AccountRef("a", "t", "x", "alice")
    with pytest.raises(NeedsAuth):
        platform.publish(request(acc))

    # Then X was not called
    assert server.requests == []


def test_invalid_request_is_permanent_with_xs_words(server, platform):
    # Given a text X refuses as too long; When publishing it anyway
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account(), text="a" * 300))

    # Then the error is permanent and keeps X's detail and the parameter's message
    assert "One or more parameters to your request was invalid." in caught.value.message
    assert "Text is too long" in caught.value.message
    assert caught.value.http_status == 400


def test_invalid_media_upload_is_permanent(server, platform):
    # Given X refuses the upload
    server.fail_next(
        1, 400, invalid_request("media", None, "Invalid media file"), path="/2/media/upload"
    )

    # When publishing with an image; Then the error is permanent and nothing was posted
    with pytest.raises(PermanentError, match="Invalid media file"):
        platform.publish(request(account(), media=({"data": b64(PNG), "mime_type": "image/png"},)))
    assert server.posts == {}


def test_invalid_settings_are_permanent(server, platform):
    # Given an account with a reply setting X does not know; When publishing
    with pytest.raises(PermanentError, match="settings"):
        platform.publish(request(account(reply_settings="friends")))
    assert server.requests == []


# -- duplicates and crashes -----------------------------------------------------------------


def test_publishing_the_same_request_twice_makes_one_post(server, platform):
    # Given a post already published once by a try that kept its checkpoint
    checkpoints = Checkpoints()
    first = platform.publish(request(account(), checkpoints=checkpoints))

    # When the same request is published again (a retry after a lost answer)
    second = platform.publish(request(account(), checkpoints=checkpoints))

    # Then X refused the duplicate and the adapter found the first post: one post, same id
    assert second.platform_post_id == first.platform_post_id
    assert second.url == first.url
    assert len(server.posts) == 1
    assert len(server.calls("/2/tweets", "POST")) == 2
    (timeline,) = server.calls(f"/2/users/{server.user['id']}/tweets", "GET")
    assert timeline.query["max_results"] == ["20"]
    assert "created_at" in timeline.query["tweet.fields"][0]


def test_a_duplicate_of_an_older_post_on_a_first_try_is_not_taken_for_it(server, platform):
    # Given a recurring text posted yesterday by hand, and a new target with that text
    older = server.add_post("Good morning!", created_at=server.clock() - 86_400)

    # When the new target's first try is refused as a duplicate
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account(), text="Good morning!"))

    # Then it fails naming the duplicate refusal; the older post is not claimed
    assert "duplicate content" in caught.value.message
    assert "no earlier try of this target sent it" in caught.value.message
    assert older not in caught.value.message
    assert server.calls(f"/2/users/{server.user['id']}/tweets") == []
    assert list(server.posts) == [older]


def test_a_duplicate_of_a_post_older_than_the_first_create_is_not_taken_for_it(server, client):
    # Given a recurring text posted yesterday, and a first try whose create X refused with 503
    now = [server.clock()]
    platform = XPlatform(client, api_url=server.url, clock=lambda: now[0])
    older = server.add_post("Good morning!", created_at=now[0] - 86_400)
    checkpoints = Checkpoints()
    server.fail_next(1, 503, {"title": "Service Unavailable", "status": 503}, path="/2/tweets")
    with pytest.raises(TransientError):
        platform.publish(request(account(), text="Good morning!", checkpoints=checkpoints))
    assert checkpoints.current["started_at"] == now[0]

    # When the retry (stage "creating") is refused as a duplicate a minute later
    now[0] += 60
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account(), text="Good morning!", checkpoints=checkpoints))

    # Then the older post is named but not taken for this one, and the first create time kept
    assert f"https://x.com/alice/status/{older}" in caught.value.message
    assert "older than this target's first try" in caught.value.message
    assert checkpoints.current["started_at"] == now[0] - 60
    assert list(server.posts) == [older]


def test_a_creating_checkpoint_without_a_start_time_claims_no_post(server, platform):
    # Given a "creating" checkpoint saved before start times were kept, and a matching post
    platform.publish(request(account()))
    checkpoints = Checkpoints({"stage": "creating", "media_ids": [], "media_expires_at": None})

    # When the retry is refused as a duplicate; Then no post is claimed for it
    with pytest.raises(PermanentError, match="kept no start time"):
        platform.publish(request(account(), checkpoints=checkpoints))


def test_a_lost_answer_then_a_retry_makes_exactly_one_post(server, platform):
    # Given X writes the post but the answer is lost (503 after the write)
    server.lose_next_create = True
    checkpoints = Checkpoints()
    text = "Links https://example.org/a?b=1&c=2 and <tags> & more"
    with pytest.raises(TransientError):
        platform.publish(request(account(), text=text, checkpoints=checkpoints))
    assert len(server.posts) == 1
    assert checkpoints.current["stage"] == "creating"

    # When the publisher tries again with the saved checkpoint
    result = platform.publish(request(account(), text=text, checkpoints=checkpoints))

    # Then the earlier post is recognised (t.co link and &amp; undone), no second one made
    assert list(server.posts) == [result.platform_post_id]
    assert result.http_status == 403


def test_a_lost_answer_with_media_is_recognised_by_text_and_attachments(server, platform):
    # Given a post with an image whose answer was lost
    server.lose_next_create = True
    checkpoints = Checkpoints()
    media = ({"data": b64(PNG), "mime_type": "image/png"},)
    with pytest.raises(TransientError):
        platform.publish(request(account(), media=media, checkpoints=checkpoints))

    # When tried again
    result = platform.publish(request(account(), media=media, checkpoints=checkpoints))

    # Then the media ids were reused (no second upload) and the first post was found
    assert list(server.posts) == [result.platform_post_id]
    assert len(server.calls("/2/media/upload", "POST")) == 1


def test_a_duplicate_x_refuses_but_cannot_be_found_is_permanent(server, platform):
    # Given a retry after a create, and X refusing the text as a duplicate it does not show
    server.always_duplicate = True
    checkpoints = Checkpoints(
        {"stage": "creating", "media_ids": [], "media_expires_at": None, "started_at": 1.0}
    )

    # When publishing
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account(), checkpoints=checkpoints))

    # Then the error says X refused it as a duplicate and none was found; nothing was posted
    assert "duplicate content" in caught.value.message
    assert "none of the account's 20 newest posts" in caught.value.message
    assert server.posts == {}


def test_a_same_text_post_with_other_media_is_not_taken_for_ours(server, platform):
    # Given a recent post with this text but an image, and X refusing ours as a duplicate
    platform.publish(request(account(), media=({"data": b64(PNG), "mime_type": "image/png"},)))
    server.always_duplicate = True
    checkpoints = Checkpoints(
        {"stage": "creating", "media_ids": [], "media_expires_at": None, "started_at": 1.0}
    )

    # When retrying the text alone; Then the image post is not taken for it
    with pytest.raises(PermanentError, match="none of the account's 20 newest posts"):
        platform.publish(request(account(), checkpoints=checkpoints))


def test_the_user_id_comes_from_settings_or_users_me_once(server, client):
    # Given an account with no user id in settings or external_id, and a post made
    platform = XPlatform(client, api_url=server.url)
    checkpoints = Checkpoints()
    platform.publish(request(account(), checkpoints=checkpoints))

    # When two retries' duplicates are resolved
    platform.publish(request(account(), checkpoints=checkpoints))
    platform.publish(request(account(), checkpoints=checkpoints))

    # Then GET /2/users/me was asked once; with a user_id setting it is not asked at all
    assert len(server.calls("/2/users/me", "GET")) == 1
    XPlatform(client, api_url=server.url).publish(
        request(account(user_id=server.user["id"]), checkpoints=checkpoints)
    )
    assert len(server.calls("/2/users/me", "GET")) == 1


def test_users_me_without_an_id_is_retryable(server, platform):
    # Given a retry refused as a duplicate, and GET /2/users/me answering without an id
    platform.publish(request(account()))
    server.fail_next(1, 200, {"data": {"name": "Alice"}}, path="/2/users/me")
    checkpoints = Checkpoints(
        {"stage": "creating", "media_ids": [], "media_expires_at": None, "started_at": 1.0}
    )

    # When publishing; Then it is worth another try, not a crash
    with pytest.raises(TransientError, match="users/me"):
        platform.publish(request(account(), checkpoints=checkpoints))


def test_an_upload_answered_without_a_media_id_is_retryable(server, platform):
    # Given X answers an image upload without `data.id`
    server.fail_next(1, 200, {"data": {"size": 3}}, path="/2/media/upload")

    # When publishing; Then the try may be repeated (nothing is visible), and nothing was posted
    with pytest.raises(TransientError, match="without a media id"):
        platform.publish(request(account(), media=({"data": b64(PNG), "mime_type": "image/png"},)))
    assert server.posts == {}


def test_a_failed_create_retried_reuses_the_uploaded_media(server, client):
    # Given a post with media whose create failed before X wrote it
    now = [1_900_000_000.0]
    platform = XPlatform(client, api_url=server.url, clock=lambda: now[0])
    checkpoints = Checkpoints()
    media = ({"data": b64(PNG), "mime_type": "image/png"},)
    server.fail_next(1, 503, {"title": "Service Unavailable", "status": 503}, path="/2/tweets")
    with pytest.raises(TransientError):
        platform.publish(request(account(), media=media, checkpoints=checkpoints))
    assert checkpoints.current["media_expires_at"] == now[0] + 86400

    # When tried again an hour later
    now[0] += 3600
    result = platform.publish(request(account(), media=media, checkpoints=checkpoints))

    # Then the image was not uploaded again, and the post has the first upload's id
    assert len(server.calls("/2/media/upload", "POST")) == 1
    assert server.posts[result.platform_post_id]["media_ids"] == checkpoints.current["media_ids"]


def test_expired_media_in_the_checkpoint_is_uploaded_again(server, client):
    # Given a checkpoint whose media ids X no longer keeps
    now = 1_900_000_000.0
    platform = XPlatform(client, api_url=server.url, clock=lambda: now)
    checkpoints = Checkpoints(
        {"stage": "uploading", "media_ids": ["123"], "media_expires_at": now + 60}
    )

    # When publishing
    result = platform.publish(
        request(
            account(),
            media=({"data": b64(PNG), "mime_type": "image/png"},),
            checkpoints=checkpoints,
        )
    )

    # Then the image was uploaded anew and the post uses the new id
    assert len(server.calls("/2/media/upload", "POST")) == 1
    assert server.posts[result.platform_post_id]["media_ids"] != ["123"]


def test_a_re_upload_after_a_create_keeps_the_creating_stage(server, client):
    # Given a try that sent the create at `start`, whose media X no longer keeps
    start = 1_900_000_000.0
    platform = XPlatform(client, api_url=server.url, clock=lambda: start + 7200)
    checkpoints = Checkpoints(
        {"stage": "creating", "media_ids": ["123"], "media_expires_at": start, "started_at": start}
    )

    # When tried again
    platform.publish(
        request(
            account(),
            media=({"data": b64(PNG), "mime_type": "image/png"},),
            checkpoints=checkpoints,
        )
    )

    # Then no save ever said the create was not sent, and the first create time was kept
    assert [c["stage"] for c in checkpoints.saved] == ["creating", "creating"]
    assert {c["started_at"] for c in checkpoints.saved} == {start}


def test_a_try_that_may_not_change_the_target_does_not_post(server, platform):
    # Given a checkpoint store that refuses (the target belongs to another try now)
    checkpoints = Checkpoints(fail=True)

    # When publishing; Then the refusal stops the try before POST /2/tweets
    with pytest.raises(RuntimeError):
        platform.publish(request(account(), checkpoints=checkpoints))
    assert server.calls("/2/tweets") == []
    assert server.posts == {}


# -- lookup ---------------------------------------------------------------------------------


def test_lookup_cannot_tell_after_a_create_may_have_gone_out(server, platform):
    # Given a crash after the try said it was creating (the post exists or not)
    checkpoints = Checkpoints({"stage": "creating", "media_ids": [], "media_expires_at": None})

    # When looked up; Then the adapter leaves it to a person, and asked X nothing
    with pytest.raises(LookupUnsupported, match="person"):
        platform.lookup(request(account(), checkpoints=checkpoints))
    assert server.requests == []
    # And such a checkpoint may have made the post public
    assert platform.may_be_public(checkpoints.current) is True


def test_lookup_after_a_crash_before_the_create_is_none(server, platform):
    # Given a crash after the media upload, before POST /2/tweets
    checkpoints = Checkpoints({"stage": "uploading", "media_ids": ["1"], "media_expires_at": 9e9})

    # When looked up; Then the post certainly did not go out
    assert platform.lookup(request(account(), checkpoints=checkpoints)) is None
    assert server.requests == []
    assert platform.may_be_public(checkpoints.current) is False


def test_lookup_without_a_checkpoint_is_none_without_asking(server, platform):
    # Given a target whose try stopped before it saved anything (the stage precedes the create)
    # When looked up; Then nothing was sent, and X was not asked
    assert platform.lookup(request(account())) is None
    assert server.requests == []
    assert platform.may_be_public({}) is False


# -- validate -------------------------------------------------------------------------------


def test_weighted_length_counts_as_twitter_text():
    # Latin letters 1; CJK 2; emoji (also ZWJ sequences, flags, keycaps, skin tones) 2
    assert weighted_length("hello") == 5
    assert weighted_length("日本語") == 6
    assert weighted_length("é") == 1 and weighted_length("e\u0301") == 1  # NFC first
    assert weighted_length("😀") == 2
    assert weighted_length("👨\u200d👩\u200d👧") == 2
    assert weighted_length("🇫🇷") == 2
    assert weighted_length("1\ufe0f\u20e3") == 2
    assert weighted_length("👍🏽") == 2
    assert weighted_length("“quotes” — dash") == 15  # U+2010-201F weigh 1
    assert weighted_length("dash…") == 6  # U+2026 is outside the light ranges


def test_weighted_length_counts_every_url_as_23():
    long_url = "https://example.org/" + "x" * 100
    assert weighted_length(f"see {long_url}") == 4 + 23
    assert weighted_length("see https://t.co/a.") == 4 + 23 + 1  # trailing dot is not URL
    # Without a scheme: a generic TLD, a path, or a subdomain makes a URL
    assert weighted_length("example.com") == 23
    assert weighted_length("go to example.de/page now") == 6 + 23 + 4
    assert weighted_length("bbc.co.uk") == 23
    assert weighted_length("t.co") == 23 and weighted_length("news.tv") == 23
    # Not URLs: a country TLD alone after one label, an e-mail address, a file name
    assert weighted_length("example.de") == 10
    assert weighted_length("example.io") == 10
    assert weighted_length("bob@example.com") == 15
    assert weighted_length("notes.txt") == 9


def test_validate_length_in_xs_counting(platform):
    # Given 140 CJK characters (weight 280) and one more
    assert platform.validate("字" * 140, [], account()) == []
    (violation,) = platform.validate("字" * 141, [], account())

    # Then the rule and X's counting are named
    assert violation.rule == "max_weighted_length"
    assert "282" in violation.reason and "at most 280" in violation.reason

    # And an account allowed longer posts takes them
    assert platform.validate("a" * 1000, [], account(max_weighted_length=4000)) == []


def test_validate_empty_and_settings(platform):
    rules = {v.rule for v in platform.validate("  ", [], account(reply_settings="friends"))}
    assert rules == {"empty", "settings"}


def test_validate_media_counts_and_mixes(platform):
    image = {"url": "https://example.org/a.png"}
    video = {"url": "https://example.org/a.mp4"}
    gif = {"url": "https://example.org/a.gif"}
    acc = account()
    assert platform.validate("hi", [image] * 4, acc) == []
    assert platform.validate("hi", [video], acc) == []
    assert platform.validate("hi", [gif], acc) == []
    assert [v.rule for v in platform.validate("hi", [image] * 5, acc)] == ["max_media"]
    assert [v.rule for v in platform.validate("hi", [video, video], acc)] == ["max_media"]
    assert [v.rule for v in platform.validate("hi", [gif, image], acc)] == ["media_mix"]
    assert [v.rule for v in platform.validate("hi", [video, image], acc)] == ["media_mix"]


def test_validate_media_types_sizes_alt_text_and_sources(platform):
    acc = account()
    cases = [
        ({"url": "https://example.org/a.pdf"}, "media_type"),
        (
            {"url": "https://example.org/a.svg", "kind": "image", "mime_type": "image/svg+xml"},
            "media_type",
        ),
        ({"url": "https://example.org/a.avi", "mime_type": "video/x-msvideo"}, "media_type"),
        ({"url": "https://example.org/a.png", "size": 5 * 1024 * 1024 + 1}, "media_size"),
        ({"url": "https://example.org/a.gif", "size": 16 * 1024 * 1024}, "media_size"),
        ({"url": "https://example.org/a.mp4", "size": 600 * 1024 * 1024}, "media_size"),
        ({"url": "https://example.org/a.png", "alt": "x" * 1001}, "alt_text"),
        ({"kind": "image"}, "media"),
    ]
    for item, rule in cases:
        assert [v.rule for v in platform.validate("hi", [item], acc)] == [rule], item


def test_settings_schema_is_strict():
    assert XSettings.model_validate({}).max_weighted_length == 280
    with pytest.raises(ValueError):
        XSettings.model_validate({"max_weighted_length": "280"})
    with pytest.raises(ValueError):
        XSettings.model_validate({"unknown": 1})
