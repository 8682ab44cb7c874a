"""The TikTok adapter against a local Content Posting API that behaves as TikTok documents."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from herald_common.errors import (
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    StillProcessing,
    TransientError,
)
from herald_common.platforms.base import AccountRef, LookupUnsupported, Pace, PublishRequest
from herald_common.platforms.tiktok import (
    TikTokCredentials,
    TikTokPlatform,
    TikTokSettings,
    utf16_length,
)
from tests.platforms.fake_tiktok import (
    CONTENT_INIT,
    CREATOR_INFO,
    STATUS,
    VIDEO_INIT,
    FakeTikTok,
    envelope,
    rate_limited,
)
from tests.platforms.servers import running

VIDEO = {"url": "https://media.example.com/clip.mp4", "kind": "video", "mime_type": "video/mp4"}


def image(n: int) -> dict[str, Any]:
    return {"url": f"https://media.example.com/p{n}.jpg", "mime_type": "image/jpeg"}


class Clock:
    """monotonic() and sleep() for the adapter: sleeping moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Crash(Exception):
    """The worker dies."""


class Checkpoints:
    """A durable checkpoint store for one target; can crash right after saving a publish_id."""

    def __init__(self, *, crash_after_publish_id: bool = False) -> None:
        self.saved: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.crash_after_publish_id = crash_after_publish_id

    def save(self, state: Mapping[str, Any]) -> None:
        self.saved = dict(state)
        self.history.append(dict(state))
        if self.crash_after_publish_id and "publish_id" in state:
            self.crash_after_publish_id = False
            raise Crash


@pytest.fixture
def server() -> Iterator[FakeTikTok]:
    with running(FakeTikTok()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def platform(client: httpx.Client, server: FakeTikTok, clock: Clock) -> TikTokPlatform:
    return TikTokPlatform(
        client,
        api_url=server.url,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        poll_interval=5.0,
        poll_timeout=30.0,
    )


def account(token: str = "act.good", **settings: Any) -> AccountRef:
    return AccountRef(
        id="acc-1",
        tenant_id="t-1",
        platform="tiktok",
        handle="alice",
        settings={"privacy_level": "PUBLIC_TO_EVERYONE", **settings},
        credentials={"access_token": token},
    )


def request(
    acc: AccountRef | None = None,
    *,
    text: str = "A #cat video",
    media: tuple[Mapping[str, Any], ...] = (VIDEO,),
    store: Checkpoints | None = None,
    key: str = "target-1",
) -> PublishRequest:
    store = store if store is not None else Checkpoints()
    return PublishRequest(
        account=acc or account(),
        idempotency_key=key,
        text=text,
        media=media,
        checkpoint=dict(store.saved),
        save_checkpoint=store.save,
    )


# -- publish --------------------------------------------------------------------------------


def test_publish_video_queries_the_creator_inits_by_url_and_polls_until_complete(
    server, platform, clock
):
    # Given an account with its own privacy level and flags, and a video TikTok needs 2 polls for
    server.processing_polls = 2
    store = Checkpoints()
    acc = account(
        privacy_level="MUTUAL_FOLLOW_FRIENDS",
        disable_duet=True,
        is_aigc=True,
        video_cover_timestamp_ms=1500,
    )

    # When the post is published
    result = platform.publish(request(acc, store=store))

    # Then creator_info came first, then one init with the text as title and the video URL
    paths = [r.path for r in server.requests]
    assert paths == [CREATOR_INFO, VIDEO_INIT, STATUS, STATUS, STATUS]
    (init,) = server.inits
    assert init["body"] == {
        "post_info": {
            "title": "A #cat video",
            "privacy_level": "MUTUAL_FOLLOW_FRIENDS",
            "disable_comment": False,
            "disable_duet": True,
            "disable_stitch": False,
            "brand_content_toggle": False,
            "brand_organic_toggle": False,
            "is_aigc": True,
            "video_cover_timestamp_ms": 1500,
        },
        "source_info": {"source": "PULL_FROM_URL", "video_url": VIDEO["url"]},
    }
    call = server.calls(VIDEO_INIT)[0]
    assert call.headers["authorization"] == "Bearer act.good"
    assert call.headers["content-type"].startswith("application/json")
    # And the publish_id was checkpointed, status polled with the injected sleep
    assert store.history == [
        {"init": "sent", "media_type": "video"},
        {"publish_id": init["publish_id"], "media_type": "video"},
    ]
    assert server.calls(STATUS)[0].json() == {"publish_id": init["publish_id"]}
    assert clock.sleeps == [5.0, 5.0]
    # And the result is TikTok's public post id (spelled publicaly_available_post_id)
    post_id = str(server.publishes[init["publish_id"]]["post_id"])
    assert result.platform_post_id == post_id
    assert result.url == f"https://www.tiktok.com/@alice/video/{post_id}"
    assert len(server.posts) == 1


def test_publish_photos_uses_content_init_with_the_text_as_description(server, platform):
    # Given three JPEG/WebP images
    media = (image(1), image(2), {"url": "https://media.example.com/p3.webp"})
    acc = account(auto_add_music=True, disable_comment=True)

    # When the post is published
    result = platform.publish(request(acc, text="Three photos #trip", media=media))

    # Then a DIRECT_POST PHOTO init carried every URL, and the post went out
    (init,) = server.inits
    assert init["path"] == CONTENT_INIT
    assert init["body"] == {
        "post_info": {
            "description": "Three photos #trip",
            "privacy_level": "PUBLIC_TO_EVERYONE",
            "disable_comment": True,
            "auto_add_music": True,
            "brand_content_toggle": False,
            "brand_organic_toggle": False,
        },
        "source_info": {
            "source": "PULL_FROM_URL",
            "photo_cover_index": 0,
            "photo_images": [m["url"] for m in media],
        },
        "post_mode": "DIRECT_POST",
        "media_type": "PHOTO",
    }
    assert result.url and "/photo/" in result.url
    assert len(server.posts) == 1


def test_interactions_the_creator_turned_off_are_sent_disabled(server, platform):
    # Given a creator who turned off comments and stitches in TikTok
    server.creator.update(comment_disabled=True, stitch_disabled=True)

    # When a post whose settings allow everything is published
    platform.publish(request())

    # Then TikTok is told they are disabled, as its UX guidelines ask
    info = server.inits[0]["body"]["post_info"]
    assert (info["disable_comment"], info["disable_duet"], info["disable_stitch"]) == (
        True,
        False,
        True,
    )


def test_a_privacy_level_the_creator_cannot_use_fails_before_anything_is_created(server, platform):
    # Given a (now private) creator whose options no longer include PUBLIC_TO_EVERYONE
    server.creator["privacy_level_options"] = ["FOLLOWER_OF_CREATOR", "SELF_ONLY"]

    # When a public post is published
    with pytest.raises(PermanentError) as raised:
        platform.publish(request())

    # Then nothing was initialised and the error names the choices
    assert "FOLLOWER_OF_CREATOR, SELF_ONLY" in raised.value.message
    assert server.inits == []


def test_a_video_longer_than_the_creator_may_post_fails_before_init(server, platform):
    # Given a creator allowed 60-second videos and a 61-second video
    server.creator["max_video_post_duration_sec"] = 60
    media = ({**VIDEO, "duration": 61},)

    # When it is published
    with pytest.raises(PermanentError, match="at most 60 s"):
        platform.publish(request(media=media))

    # Then no init was made
    assert server.inits == []


def test_a_private_post_completes_without_a_public_id(server, platform):
    # Given a SELF_ONLY post (TikTok gives public ids only to posts others can see)
    acc = account(privacy_level="SELF_ONLY")

    # When it is published
    result = platform.publish(request(acc))

    # Then the result is the publish_id, without a URL
    assert result.platform_post_id == server.inits[0]["publish_id"]
    assert result.url is None


# -- failures -------------------------------------------------------------------------------


def test_429_with_retry_after_is_transient_and_the_next_try_posts_once(server, platform):
    # Given TikTok rate-limits the next init with Retry-After: 17
    server.fail_next(1, 429, rate_limited(), {"Retry-After": "17"}, path=VIDEO_INIT)
    store = Checkpoints()

    # When the post is published
    with pytest.raises(TransientError) as raised:
        platform.publish(request(store=store))

    # Then it is retryable after 17 s, nothing was created and the marker was cleared
    assert raised.value.retry_after == 17
    assert raised.value.http_status == 429
    assert "rate_limit_exceeded" in raised.value.message
    assert server.inits == [] and store.saved == {}

    # When it is tried again
    platform.publish(request(store=store))

    # Then there is exactly one post
    assert len(server.inits) == 1 and len(server.posts) == 1


def test_429_without_retry_after_waits_for_the_one_minute_window(server, platform):
    # Given a rate-limited creator_info without a Retry-After header
    server.fail_next(1, 429, rate_limited(), path=CREATOR_INFO)

    # When the post is published
    with pytest.raises(TransientError) as raised:
        platform.publish(request())

    # Then the wait is the documented sliding window
    assert raised.value.retry_after == 60


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"<html>Bad Gateway</html>"),
        (504, b""),
        (500, envelope("internal_error", "Something went wrong")),
        (408, b"Request Timeout"),
        (404, b"<html>Not Found</html>"),
    ],
)
def test_an_init_answered_by_a_server_or_gateway_error_is_unknown(server, platform, status, body):
    # Given an init answered by a server or gateway error, or a 4xx without TikTok's envelope
    # (a gateway may answer so after TikTok accepted the request)
    server.fail_next(1, status, body, path=VIDEO_INIT)
    store = Checkpoints()

    # When the post is published
    with pytest.raises(OutcomeUnknown, match=f"HTTP {status}") as raised:
        platform.publish(request(store=store))

    # Then it is not retried on its own: the init marker stays for a person to resolve
    assert not isinstance(raised.value, TransientError)
    assert store.saved == {"init": "sent", "media_type": "video"}
    assert platform.may_be_public(store.saved) is True
    with pytest.raises(LookupUnsupported):
        platform.lookup(request(store=store))


def test_a_server_error_on_a_read_call_is_transient_then_the_next_try_posts_once(server, platform):
    # Given creator_info meets a gateway error (nothing is created by reading)
    server.fail_next(1, 502, b"<html>Bad Gateway</html>", path=CREATOR_INFO)
    store = Checkpoints()

    # When the post is published twice
    with pytest.raises(TransientError) as raised:
        platform.publish(request(store=store))
    result = platform.publish(request(store=store))

    # Then the first try was retryable and the second made the only post
    assert raised.value.http_status == 502
    assert len(server.inits) == 1 and result.platform_post_id


def test_internal_error_envelope_is_transient(server, platform):
    # Given TikTok's generic internal error on creator_info
    server.fail_next(1, 500, envelope("internal_error", "Something went wrong"), path=CREATOR_INFO)

    # When / Then the publish is retryable, keeping TikTok's words
    with pytest.raises(TransientError, match="internal_error: Something went wrong"):
        platform.publish(request())


@pytest.mark.parametrize("state", ["expired", "no_scope", "unknown"])
def test_expired_invalid_or_unscoped_tokens_need_auth(server, platform, state):
    # Given a token TikTok considers expired, unknown, or without video.publish
    if state != "unknown":
        server.tokens["act.bad"] = state

    # When the post is published
    with pytest.raises(NeedsAuth) as raised:
        platform.publish(request(account(token="act.bad")))

    # Then the account must be connected again; the token is not in the message
    assert raised.value.http_status == 401
    assert "access_token_invalid" in raised.value.message or "scope_not_authorized" in (
        raised.value.message
    )
    assert "act.bad" not in raised.value.message
    assert server.inits == []


def test_an_account_without_a_token_needs_auth(server, platform):
    acc = AccountRef(
        id="a",
        tenant_id="t",
        platform="tiktok",
        handle="alice",
        settings={"privacy_level": "SELF_ONLY"},
    )
    with pytest.raises(NeedsAuth):
        platform.publish(request(acc))
    assert server.requests == []


def test_unverified_url_is_permanent_with_tiktoks_message(server, platform):
    # Given a video on a domain the app has not verified
    media = ({"url": "https://elsewhere.example.org/clip.mp4"},)

    # When it is published
    with pytest.raises(PermanentError) as raised:
        platform.publish(request(media=media))

    # Then TikTok's code, words and log id are kept
    assert raised.value.http_status == 403
    assert "url_ownership_unverified" in raised.value.message
    assert "must verify the ownership" in raised.value.message
    assert "log_id LOG" in raised.value.message


def test_invalid_param_is_permanent_with_the_message(server, platform):
    # Given a caption over TikTok's limit that reached publish anyway
    text = "x" * 2201

    # When it is published
    with pytest.raises(PermanentError, match=r"invalid_param: post_info\.title is too long"):
        platform.publish(request(text=text))
    assert server.inits == []


def test_unaudited_client_posting_publicly_is_permanent(server, platform):
    server.audited = False
    with pytest.raises(PermanentError, match="unaudited_client_can_only_post_to_private"):
        platform.publish(request())
    assert server.inits == []


def test_the_daily_post_cap_is_retryable_an_hour_later(server, platform):
    # Given a creator who reached the API's daily post cap
    server.daily_cap = 0

    # When the post is published
    with pytest.raises(TransientError) as raised:
        platform.publish(request())

    # Then it waits an hour (nothing was created, so trying later cannot post twice)
    assert isinstance(raised.value, RateLimited)
    assert raised.value.retry_after == 3600
    assert "spam_risk_too_many_posts" in raised.value.message


def test_a_post_failed_for_the_daily_cap_waits_without_spending_an_attempt(server, platform):
    # Given TikTok accepts the init, then fails the post for the creator's daily cap
    server.fail_reason = "spam_risk_too_many_posts"

    # When it is published; Then it is a rate-limit wait of an hour, not a failed attempt
    with pytest.raises(RateLimited, match="spam_risk_too_many_posts") as raised:
        platform.publish(request())
    assert raised.value.retry_after == 3600


def test_error_envelope_on_http_200_is_an_error(server, platform):
    # Given creator_info answering 200 with a spam-risk error code
    server.fail_next(
        1,
        200,
        envelope("spam_risk_user_banned_from_posting", "The user is banned from making new posts."),
        path=CREATOR_INFO,
    )

    # When / Then it is a permanent failure with TikTok's words
    with pytest.raises(PermanentError, match="banned from making new posts"):
        platform.publish(request())


def test_a_failed_post_is_permanent_with_its_fail_reason(server, platform):
    # Given TikTok fails the video's format check
    server.fail_reason = "file_format_check_failed"

    # When it is published
    with pytest.raises(PermanentError, match="file_format_check_failed"):
        platform.publish(request())

    # Then nothing went out
    assert server.posts == []


@pytest.mark.parametrize("reason", ["internal", "video_pull_failed"])
def test_temporary_fail_reasons_are_transient(server, platform, reason):
    server.fail_reason = reason
    with pytest.raises(TransientError, match=reason):
        platform.publish(request())


def test_auth_removed_while_publishing_needs_auth(server, platform):
    server.fail_reason = "auth_removed"
    with pytest.raises(NeedsAuth):
        platform.publish(request())


# -- never two posts ------------------------------------------------------------------------


def test_publishing_twice_with_the_saved_checkpoint_makes_one_post(server, platform):
    # Given a post published once, its checkpoint kept
    store = Checkpoints()
    first = platform.publish(request(store=store))

    # When the same target is published again (a lost answer)
    second = platform.publish(request(store=store))

    # Then its status was fetched, no second init: one post, the same id
    assert second == first
    assert len(server.inits) == 1 and len(server.posts) == 1
    assert [r.path for r in server.requests][-1] == STATUS


def test_a_crash_after_init_continues_the_same_publish_id(server, platform):
    # Given a worker that dies right after saving the publish_id
    store = Checkpoints(crash_after_publish_id=True)
    with pytest.raises(Crash):
        platform.publish(request(store=store))
    publish_id = store.saved["publish_id"]

    # When the target is published again with that checkpoint
    result = platform.publish(request(store=store))

    # Then it continued the same publish: one init, one post
    assert len(server.inits) == 1
    assert server.inits[0]["publish_id"] == publish_id
    assert len(server.posts) == 1
    assert result.platform_post_id == str(server.publishes[publish_id]["post_id"])
    assert server.calls(CREATOR_INFO) and len(server.calls(CREATOR_INFO)) == 1


def test_a_poll_timeout_is_a_wait_and_the_retry_continues_the_same_post(server, platform, clock):
    # Given TikTok takes longer than the poll timeout (30 s at 5 s intervals)
    server.processing_polls = 10
    store = Checkpoints()

    # When the post is published
    with pytest.raises(StillProcessing, match="still PROCESSING_DOWNLOAD") as raised:
        platform.publish(request(store=store))

    # Then it polled within the timeout, kept the publish_id, and asks to wait (no attempt
    # spent) at least 30 s
    assert sum(clock.sleeps) <= 30
    assert "publish_id" in store.saved
    assert raised.value.retry_after == 30

    # When it is tried again (TikTok finishes meanwhile)
    server.processing_polls = 0
    server.publishes[store.saved["publish_id"]]["polls_left"] = 0
    platform.publish(request(store=store))

    # Then the same post completed: one init
    assert len(server.inits) == 1 and len(server.posts) == 1


def test_a_rate_limited_status_poll_keeps_the_checkpoint(server, platform):
    # Given the first status poll is rate-limited
    server.fail_next(1, 429, rate_limited(), {"Retry-After": "3"}, path=STATUS)
    store = Checkpoints()

    # When the post is published, then again
    with pytest.raises(TransientError):
        platform.publish(request(store=store))
    platform.publish(request(store=store))

    # Then one init, one post
    assert len(server.inits) == 1 and len(server.posts) == 1


def test_a_failed_earlier_post_is_replaced_by_one_new_post(server, platform):
    # Given an earlier try whose post TikTok failed (internal)
    server.fail_reason = "internal"
    store = Checkpoints()
    with pytest.raises(TransientError):
        platform.publish(request(store=store))
    failed_id = store.saved["publish_id"]

    # When the target is tried again
    result = platform.publish(request(store=store))

    # Then a new init replaced the failed one, and exactly one post went out
    assert len(server.inits) == 2
    assert store.saved["publish_id"] != failed_id
    assert len(server.posts) == 1
    assert result.platform_post_id == str(server.posts[0]["post_id"])


def test_an_init_whose_answer_is_lost_is_not_sent_again_automatically(server, platform):
    # Given TikTok answers init with a 200 that cannot be read (the answer is lost)
    server.fail_next(1, 200, b"", path=VIDEO_INIT)
    store = Checkpoints()

    # When the post is published
    with pytest.raises(OutcomeUnknown, match="check the TikTok account"):
        platform.publish(request(store=store))

    # Then the marker stays, and lookup says a person must decide
    assert store.saved == {"init": "sent", "media_type": "video"}
    with pytest.raises(LookupUnsupported):
        platform.lookup(request(store=store))


# -- lookup ---------------------------------------------------------------------------------


def test_lookup_of_a_completed_post_finds_it_by_reading_only(server, platform):
    # Given a published post and its checkpoint
    store = Checkpoints()
    published = platform.publish(request(store=store))
    before = len(server.requests)

    # When it is looked up
    found = platform.lookup(request(store=store))

    # Then status/fetch answered, and nothing but status/fetch was called
    assert found == published
    assert [r.path for r in server.requests[before:]] == [STATUS]


def test_lookup_of_a_failed_post_is_none(server, platform):
    server.fail_reason = "file_format_check_failed"
    store = Checkpoints()
    with pytest.raises(PermanentError):
        platform.publish(request(store=store))
    assert platform.lookup(request(store=store)) is None


def test_lookup_of_a_post_still_processing_asks_to_ask_again(server, platform):
    # Given a crash right after init, TikTok still processing
    server.processing_polls = 5
    store = Checkpoints(crash_after_publish_id=True)
    with pytest.raises(Crash):
        platform.publish(request(store=store))

    # When it is looked up
    with pytest.raises(TransientError, match="ask again later"):
        platform.lookup(request(store=store))

    # Then nothing was created by the lookup
    assert len(server.inits) == 1


def test_lookup_without_checkpoint_is_none_when_checkpoints_are_kept(server, platform):
    # Given a target never sent (its store is empty)
    # When it is looked up / Then nothing went out, and TikTok was not even asked
    assert platform.lookup(request(store=Checkpoints())) is None
    assert server.requests == []


def test_only_a_sent_init_may_have_made_the_post_public(platform):
    # Given the checkpoints a TikTok target goes through
    # When asked whether each may have made the post public; Then only a sent init may have
    assert platform.may_be_public({}) is False
    assert platform.may_be_public({"init": "sent", "media_type": "video"}) is True
    assert platform.may_be_public({"publish_id": "v_pub_url~v2.1", "media_type": "video"}) is True


def test_lookup_after_a_crash_between_init_and_its_answer_is_unsupported(server, platform):
    # Given the marker saved before init, and no publish_id (the worker died in between)
    store = Checkpoints()
    store.saved = {"init": "sent", "media_type": "video"}

    # When / Then a person must decide
    with pytest.raises(LookupUnsupported):
        platform.lookup(request(store=store))
    assert server.requests == []


def test_a_person_retrying_after_a_lost_init_posts_again(server, platform):
    # Given the lost-init marker (the target was failed/unknown and a person chose to retry)
    store = Checkpoints()
    store.saved = {"init": "sent", "media_type": "video"}

    # When it is published
    platform.publish(request(store=store))

    # Then it was sent
    assert len(server.inits) == 1 and "publish_id" in store.saved


# -- validate -------------------------------------------------------------------------------


def rules(platform: TikTokPlatform, text: str, media: list, acc: AccountRef | None = None):
    return [v.rule for v in platform.validate(text, media, acc or account())]


def test_a_valid_video_and_a_valid_photo_post_break_no_rule(platform):
    assert rules(platform, "hi", [VIDEO]) == []
    assert rules(platform, "hi", [image(n) for n in range(35)]) == []
    assert rules(platform, "", [VIDEO]) == []


def test_validate_needs_media(platform):
    assert rules(platform, "text only", []) == ["media_required"]


def test_validate_one_video_only(platform):
    assert rules(platform, "x", [VIDEO, VIDEO]) == ["one_video"]


def test_validate_no_mixed_media(platform):
    assert rules(platform, "x", [VIDEO, image(1)]) == ["mixed_media"]


def test_validate_at_most_35_images(platform):
    assert rules(platform, "x", [image(n) for n in range(36)]) == ["max_images"]


def test_validate_video_title_counts_utf16_units(platform):
    # Given emoji, which are two UTF-16 units each
    assert utf16_length("😀") == 2
    assert rules(platform, "😀" * 1100, [VIDEO]) == []
    assert rules(platform, "😀" * 1100 + "x", [VIDEO]) == ["max_title"]


def test_validate_photo_description_limit(platform):
    assert rules(platform, "x" * 4000, [image(1)]) == []
    assert rules(platform, "x" * 4001, [image(1)]) == ["max_description"]


def test_validate_privacy_level_is_required_and_valid(platform):
    no_privacy = AccountRef(id="a", tenant_id="t", platform="tiktok", handle="h", settings={})
    assert rules(platform, "x", [VIDEO], no_privacy) == ["privacy_level"]
    assert rules(platform, "x", [VIDEO], account(privacy_level="FRIENDS")) == ["privacy_level"]


def test_validate_bad_settings(platform):
    assert rules(platform, "x", [VIDEO], account(disable_duet="yes")) == ["settings"]
    assert rules(platform, "x", [VIDEO], account(colour="red")) == ["settings"]


def test_validate_branded_content_cannot_be_private(platform):
    acc = account(privacy_level="SELF_ONLY", brand_content_toggle=True)
    assert rules(platform, "x", [VIDEO], acc) == ["settings"]


def test_validate_media_needs_a_url(platform):
    item = {"data": "aGVsbG8=", "kind": "video"}
    assert rules(platform, "x", [item]) == ["media_url"]


def test_validate_media_kind_must_be_known(platform):
    item = {"url": "https://media.example.com/blob"}
    assert rules(platform, "x", [item]) == ["media_kind"]


def test_validate_image_format_and_size(platform):
    png = {"url": "https://media.example.com/a.png"}
    big = {**image(1), "size": 21 * 1024 * 1024}
    assert rules(platform, "x", [png]) == ["image_format"]
    assert rules(platform, "x", [big]) == ["image_size"]


def test_validate_video_format_and_size(platform):
    avi = {"url": "https://media.example.com/a.avi"}
    huge = {**VIDEO, "size": 5 * 1024**3}
    assert rules(platform, "x", [avi]) == ["video_format"]
    assert rules(platform, "x", [huge]) == ["video_size"]


# -- settings, credentials, pacing ----------------------------------------------------------


def test_settings_are_strict_and_privacy_level_has_no_default():
    assert TikTokSettings.model_validate({"privacy_level": "SELF_ONLY"}).disable_comment is False
    with pytest.raises(ValidationError):
        TikTokSettings.model_validate({})
    with pytest.raises(ValidationError):
        TikTokSettings.model_validate({"privacy_level": "SELF_ONLY", "is_aigc": "true"})
    with pytest.raises(ValidationError):
        TikTokSettings.model_validate({"privacy_level": "SELF_ONLY", "extra": 1})


def test_credentials_need_an_access_token():
    assert TikTokCredentials.model_validate({"access_token": "act.x"}).refresh_token is None
    with pytest.raises(ValidationError):
        TikTokCredentials.model_validate({"access_token": ""})


def test_pacing_follows_the_documented_limits():
    assert TikTokPlatform.name == "tiktok"
    assert TikTokPlatform.pacing == (Pace("account", 6, 60), Pace("account", 15, 86400))
