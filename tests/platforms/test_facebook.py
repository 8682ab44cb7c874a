"""The Facebook Page adapter against a local Graph host that behaves as Meta's docs say.

The last section checks the Graph error and usage-header handling the three Meta adapters
share (herald_common.platforms.meta).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from herald_common.errors import (
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    TransientError,
)
from herald_common.platforms.base import AccountRef, LookupUnsupported, PublishRequest
from herald_common.platforms.facebook import (
    FacebookCredentials,
    FacebookPlatform,
    FacebookSettings,
    first_link,
)
from herald_common.platforms.meta import APP_USAGE_RETRY_AFTER, graph_error, usage_retry_after
from tests.platforms import fake_meta
from tests.platforms.fake_meta import CheckpointStore, FakeFacebook, SimulatedCrash
from tests.platforms.servers import running

PAGE = "1122334455"
JPEG = "https://cdn.example.org/photos/cat.jpg"
JPEG2 = "https://cdn.example.org/photos/dog.jpg"
JPEG3 = "https://cdn.example.org/photos/owl.jpg"
MP4 = "https://cdn.example.org/videos/run.mp4"


@pytest.fixture
def server() -> Iterator[FakeFacebook]:
    with running(FakeFacebook()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def platform(client: httpx.Client, server: FakeFacebook) -> FacebookPlatform:
    return FacebookPlatform(client, api_url=server.url)


@pytest.fixture
def store() -> CheckpointStore:
    return CheckpointStore()


def account(token: str = "good-token", **settings: object) -> AccountRef:
    return AccountRef(
        id="acc-fb",
        tenant_id="t-1",
        platform="facebook",
        handle="Alice's Bakery",
        settings={"page_id": PAGE, **settings},
        credentials={"access_token": token},
    )


def edge(name: str) -> str:
    return f"/v25.0/{PAGE}/{name}"


def writes(server: FakeFacebook) -> list[str]:
    return [r.path for r in server.requests if r.method == "POST"]


# -- publish --------------------------------------------------------------------------------


def test_publish_text_posts_to_the_feed_with_the_first_link(server, platform, store):
    # When a text post with a link is published
    result = platform.publish(store.request(account(), "Fresh bread: https://bakery.example/b."))

    # Then one feed post carries the message and the link (without the trailing dot)
    (call,) = server.calls(edge("feed"), "POST")
    assert call.form() == {
        "message": ["Fresh bread: https://bakery.example/b."],
        "link": ["https://bakery.example/b"],
    }
    assert call.headers["authorization"] == "Bearer good-token"
    assert list(server.posts) == [result.platform_post_id]
    assert result.platform_post_id.startswith(f"{PAGE}_")
    assert result.url == server.posts[result.platform_post_id]["permalink_url"]
    # And the result was saved, so a repeat answers it
    assert store.state["post_id"] == result.platform_post_id


def test_the_link_can_be_left_out(server, platform, store):
    platform.publish(store.request(account(attach_first_link=False), "see https://x.example"))
    (call,) = server.calls(edge("feed"), "POST")
    assert "link" not in call.form()


def test_publish_one_photo(server, platform, store):
    # When one photo is published with text
    result = platform.publish(store.request(account(), "Croissants", [{"url": JPEG}]))

    # Then it went to /photos as a published photo with the message, and the post id is answered
    (call,) = server.calls(edge("photos"), "POST")
    assert call.form() == {"url": [JPEG], "message": ["Croissants"]}
    (post,) = server.posts.values()
    assert result.platform_post_id == post["id"]
    assert post["photo"] in server.photos


def test_publish_several_photos_uploads_them_unpublished_then_attaches_them(
    server, platform, store
):
    # When three photos are published
    media = [{"url": JPEG}, {"url": JPEG2}, {"url": JPEG3}]
    result = platform.publish(store.request(account(), "Our week", media))

    # Then each was uploaded with published=false, and one feed post attaches all three
    uploads = server.calls(edge("photos"), "POST")
    assert [u.form() for u in uploads] == [
        {"url": [url], "published": ["false"]} for url in (JPEG, JPEG2, JPEG3)
    ]
    photo_ids = list(server.photos)
    (feed,) = server.calls(edge("feed"), "POST")
    assert feed.form() == {
        "message": ["Our week"],
        **{
            f"attached_media[{i}]": [json.dumps({"media_fbid": p})] for i, p in enumerate(photo_ids)
        },
    }
    (post,) = server.posts.values()
    assert result.platform_post_id == post["id"]
    assert post["attached_media"] == photo_ids
    # And every uploaded photo id was saved as soon as it existed
    assert [s.get("photo_ids") for s in store.saves[:3]] == [
        photo_ids[:1],
        photo_ids[:2],
        photo_ids,
    ]


def test_publish_a_video(server, platform, store):
    result = platform.publish(store.request(account(), "Watch us bake", [{"url": MP4}]))
    (call,) = server.calls(edge("videos"), "POST")
    assert call.form() == {"file_url": [MP4], "description": ["Watch us bake"]}
    assert result.platform_post_id in server.videos
    assert result.url == f"https://www.facebook.com/{PAGE}/videos/{result.platform_post_id}/"


# -- repeats and crashes --------------------------------------------------------------------


def test_publishing_twice_with_the_checkpoint_makes_one_post(server, platform, store):
    first = platform.publish(store.request(account(), "only once"))
    second = platform.publish(store.request(account(), "only once"))
    assert second.platform_post_id == first.platform_post_id
    assert len(server.posts) == 1
    assert len(server.calls(edge("feed"), "POST")) == 1


def test_a_feed_post_whose_answer_is_lost_is_found_not_repeated(server, platform, store):
    # Given Facebook makes the post but the connection drops before it answers
    server.drop_after.add("feed")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "lost answer"))
    assert store.state["final_started"] is True

    # When the target is published again
    result = platform.publish(store.request(account(), "lost answer"))

    # Then the recent posts were read first and the post was found: one post, one feed call
    (post_id,) = server.posts
    assert result.platform_post_id == post_id
    assert len(server.calls(edge("feed"), "POST")) == 1
    assert len(server.calls(edge("published_posts"), "GET")) == 1


def test_a_multi_photo_post_whose_answer_is_lost_is_not_repeated(server, platform, store):
    # Given the final feed post of three photos is made but its answer lost
    media = [{"url": JPEG}, {"url": JPEG2}, {"url": JPEG3}]
    server.drop_after.add("feed")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "album", media))

    # When lookup asks, and publish runs again
    found = platform.lookup(store.request(account(), "album", media))
    again = platform.publish(store.request(account(), "album", media))

    # Then both answer the one post; no photo was uploaded twice
    (post_id,) = server.posts
    assert found is not None and found.platform_post_id == post_id
    assert again.platform_post_id == post_id
    assert len(server.photos) == 3
    assert len(server.calls(edge("feed"), "POST")) == 1


def test_a_crash_during_uploads_does_not_upload_again(server, platform, store):
    # Given a worker killed right after the second photo's id was saved
    store.crash_when = lambda state: len(state.get("photo_ids", ())) == 2
    media = [{"url": JPEG}, {"url": JPEG2}, {"url": JPEG3}]
    with pytest.raises(SimulatedCrash):
        platform.publish(store.request(account(), "album", media))
    assert server.posts == {}

    # When lookup asks; Then nothing was posted (the public call was never made)
    assert platform.lookup(store.request(account(), "album", media)) is None

    # When published again; Then only the third photo is uploaded, and one post attaches all
    result = platform.publish(store.request(account(), "album", media))
    assert len(server.calls(edge("photos"), "POST")) == 3
    assert server.posts[result.platform_post_id]["attached_media"] == list(server.photos)


def test_a_lost_answer_not_yet_listed_is_recognised_by_the_duplicate_refusal(
    server, platform, store
):
    # Given a lost answer, and /published_posts that does not show the new post at first
    server.drop_after.add("feed")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "same again"))
    server.listing_lag = 1

    # When published again: not found, so posted, and Facebook refuses the duplicate (506)
    result = platform.publish(store.request(account(), "same again"))

    # Then the refusal led to a second read, which found the post: still one post
    (post_id,) = server.posts
    assert result.platform_post_id == post_id
    assert len(server.calls(edge("feed"), "POST")) == 2


def test_an_ambiguous_earlier_try_is_left_to_a_person(server, platform, store):
    # Given an older post with the same text, and a lost answer for this one
    server.reject_duplicates = False
    platform.publish(CheckpointStore().request(account(), "Open today"))
    server.drop_after.add("feed")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "Open today"))

    # When looked up or published again; Then the adapter does not guess and does not post:
    # the outcome is unknown, for a person to resolve
    with pytest.raises(LookupUnsupported):
        platform.lookup(store.request(account(), "Open today"))
    with pytest.raises(OutcomeUnknown, match="check the Page"):
        platform.publish(store.request(account(), "Open today"))
    assert len(server.posts) == 2


def test_a_duplicate_refusal_on_a_first_try_does_not_claim_the_older_post(server, platform, store):
    # Given the Page's previous post has the same text, made by another target
    older = platform.publish(CheckpointStore().request(account(), "Open today"))

    # When a new target with that text is published and Facebook refuses it (506)
    with pytest.raises(PermanentError) as caught:
        platform.publish(store.request(account(), "Open today"))

    # Then it fails naming the duplicate; the older post is not taken for this target
    assert "Duplicate status message" in caught.value.message
    assert "no earlier try of this target sent it" in caught.value.message
    assert "post_id" not in store.state
    assert list(server.posts) == [older.platform_post_id]


def test_a_video_whose_answer_is_lost_is_not_posted_again(server, platform, store):
    # Given Facebook takes the video but the connection drops before it answers (and the video
    # is not listed in /published_posts while it is processed)
    server.drop_after.add("videos")
    server.listing_lag = 10
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "Watch us bake", [{"url": MP4}]))
    assert platform.may_be_public(store.state) is True

    # When published again or looked up
    with pytest.raises(OutcomeUnknown, match="video"):
        platform.publish(store.request(account(), "Watch us bake", [{"url": MP4}]))
    with pytest.raises(LookupUnsupported, match="video"):
        platform.lookup(store.request(account(), "Watch us bake", [{"url": MP4}]))

    # Then the video was sent once, and nothing relied on the listing
    assert len(server.videos) == 1
    assert len(server.calls(edge("videos"), "POST")) == 1
    assert server.calls(edge("published_posts")) == []


def test_a_post_answered_without_its_id_is_unknown(server, platform, store):
    # Given Facebook answers the feed call 200 without an id
    server.fail_next(1, 200, {"success": True}, path=edge("feed"))

    # When published; Then the post may be live: the outcome is unknown, the marker kept
    with pytest.raises(OutcomeUnknown, match="without the post's id"):
        platform.publish(store.request(account(), "no id"))
    assert store.state["final_started"] is True


def test_an_unpublished_photo_answered_without_its_id_is_retryable(server, platform, store):
    # Given Facebook answers an unpublished photo upload without an id
    server.fail_next(1, 200, {"success": True}, path=edge("photos"))

    # When published; Then the try may be repeated (an unpublished photo is invisible)
    with pytest.raises(TransientError, match="unpublished photo"):
        platform.publish(store.request(account(), "album", [{"url": JPEG}, {"url": JPEG2}]))
    assert server.calls(edge("feed")) == []
    assert platform.may_be_public(store.state) is False


def test_lookup_when_no_public_call_was_made_is_none_and_asks_nothing(server, platform):
    assert platform.lookup(PublishRequest(account(), "k", "hello")) is None
    assert server.requests == []
    assert platform.may_be_public({}) is False
    assert platform.may_be_public({"photo_ids": ["1"]}) is False
    assert platform.may_be_public({"final_started": True, "started_at": 1.0}) is True


def test_lookup_after_an_interrupted_call_that_did_not_post_is_none(server, platform, store):
    # Given the final call was started but failed before Facebook made anything
    server.fail_next(1, 503, b"", path=edge("feed"))
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "not there"))

    # When looked up; Then nothing matches: it did not go out
    assert platform.lookup(store.request(account(), "not there")) is None


def test_lookup_of_a_post_without_text_cannot_tell(server, platform, store):
    server.drop_after.add("photos")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "", [{"url": JPEG}]))
    with pytest.raises(LookupUnsupported):
        platform.lookup(store.request(account(), "", [{"url": JPEG}]))


def test_posts_made_before_the_try_began_are_not_taken_for_it(server, client, store):
    # Given an old post with the same text, made long before this try
    clock = [1_000_000.0]
    server.clock = lambda: clock[0]
    server.reject_duplicates = False
    platform = FacebookPlatform(client, api_url=server.url, clock=lambda: clock[0])
    platform.publish(CheckpointStore().request(account(), "Weekly special"))

    # When a day later a try's answer is lost, and it is looked up
    clock[0] += 86400
    server.drop_after.add("feed")
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "Weekly special"))
    found = platform.lookup(store.request(account(), "Weekly special"))

    # Then only the new post matches
    assert found is not None
    assert found.platform_post_id == list(server.posts)[-1]


# -- errors ---------------------------------------------------------------------------------


def test_page_throttling_waits_as_the_buc_header_says(server, platform, store):
    # Given the Page's BUC limit (code 32) is reached, regained in 12 minutes
    server.throttle(1, code=32, minutes=12, business_id=PAGE, buc_type="pages")

    # When publishing; Then retry_after is 12 minutes, and nothing was posted
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x"))
    assert caught.value.retry_after == 720
    assert "Page request limit reached" in caught.value.message
    assert server.posts == {}


def test_429_with_retry_after_is_retryable(server, platform, store):
    server.fail_next(1, 429, b"slow down", {"Retry-After": "30"})
    with pytest.raises(TransientError) as caught:
        platform.publish(store.request(account(), "x"))
    assert caught.value.retry_after == 30


def test_a_server_error_is_retryable_and_a_later_try_posts_once(server, platform, store):
    server.fail_next(1, 500, fake_meta.graph_error(2, "Service unavailable").body)
    with pytest.raises(TransientError):
        platform.publish(store.request(account(), "x"))
    result = platform.publish(store.request(account(), "x"))
    assert list(server.posts) == [result.platform_post_id]


def test_an_expired_page_token_needs_auth(server, platform, store):
    with pytest.raises(NeedsAuth) as caught:
        platform.publish(store.request(account("expired-token"), "x"))
    assert "code 190/463" in caught.value.message


def test_a_missing_page_permission_needs_auth(server, platform, store):
    body = fake_meta.graph_error(
        200,
        "(#200) If posting to a page, requires both pages_read_engagement and "
        "pages_manage_posts permission",
    ).body
    server.fail_next(1, 403, body)
    with pytest.raises(NeedsAuth, match="pages_manage_posts"):
        platform.publish(store.request(account(), "x"))


def test_no_token_needs_auth_without_a_call(server, platform):
    acc = AccountRef("a", "t", "facebook", "p", settings={"page_id": PAGE})
    with pytest.raises(NeedsAuth):
        platform.publish(PublishRequest(acc, "k", "x"))
    assert server.requests == []


def test_other_refusals_are_permanent_with_facebooks_words(server, platform, store):
    # Given a Page id the token cannot post to
    acc = account(page_id="999")
    with pytest.raises(PermanentError) as caught:
        platform.publish(store.request(acc, "x"))
    assert "Unsupported post request" in caught.value.message
    assert "code 100/33" in caught.value.message


# -- validate -------------------------------------------------------------------------------


def rules(platform: FacebookPlatform, text: str, media: list, acc: AccountRef | None = None):
    return {v.rule for v in platform.validate(text, media, acc or account())}


def test_validate_rules(platform):
    assert rules(platform, "x" * 63206, []) == set()
    assert rules(platform, "x" * 63207, []) == {"max_characters"}
    assert rules(platform, " ", []) == {"empty"}
    assert rules(platform, "", [{"url": JPEG}, {"url": JPEG2}]) == set()
    assert rules(platform, "x", [{"data": "aGk="}]) == {"media_url"}
    assert rules(platform, "x", [{"url": "https://cdn.example.org/blob"}]) == {"media_kind"}
    assert rules(platform, "x", [{"url": MP4}]) == set()
    assert rules(platform, "x", [{"url": MP4}, {"url": JPEG}]) == {"video_alone"}
    bad = AccountRef("a", "t", "facebook", "p", settings={"page_id": 1122})
    assert rules(platform, "x", [], bad) == {"settings"}


def test_first_link():
    assert first_link("see (https://a.example/x?y=1), thanks") == "https://a.example/x?y=1"
    assert first_link("no links") is None


def test_settings_and_credentials_schemas():
    assert FacebookSettings.model_validate({"page_id": PAGE}).attach_first_link is True
    for bad in ({}, {"page_id": 5}, {"page_id": PAGE, "attach_first_link": "yes"}):
        with pytest.raises(ValueError):
            FacebookSettings.model_validate(bad)
    assert FacebookCredentials.model_validate({"access_token": "t", "expires_at": 1.5})


def test_facebook_documents_no_posting_quota():
    assert FacebookPlatform.pacing == ()


# -- the shared Graph error handling (meta.py) ----------------------------------------------


def response(status: int, body: object = None, headers: dict[str, str] | None = None):
    content = json.dumps(body).encode() if body is not None else b""
    return httpx.Response(status, content=content, headers=headers or {})


def error(code: int, **extra: object) -> dict:
    return {"error": {"message": f"error {code}", "type": "OAuthException", "code": code, **extra}}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (error(190, error_subcode=463), NeedsAuth),
        (error(190, error_subcode=460), NeedsAuth),
        (error(102), NeedsAuth),
        ({"error": {"message": "bad token", "type": "OAuthException"}}, NeedsAuth),
        (error(10), NeedsAuth),
        (error(299), NeedsAuth),
        (error(4), RateLimited),
        (error(17), RateLimited),
        (error(32), RateLimited),
        (error(613), RateLimited),
        (error(80001), RateLimited),
        (error(80009), RateLimited),
        (error(1), TransientError),
        (error(2), TransientError),
        (error(100, is_transient=True), TransientError),
        (error(100), PermanentError),
        (error(506), PermanentError),
        (error(36000, error_subcode=2207004), PermanentError),
    ],
)
def test_graph_errors_are_classified_by_code(body, kind):
    assert type(graph_error("facebook", response(400, body))) is kind


def test_ad_account_usage_gives_seconds_and_the_largest_wait_wins():
    headers = httpx.Headers(
        {
            "X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": 100, "reset_time_duration": 90}),
            "X-Business-Use-Case-Usage": json.dumps(
                {"1": [{"type": "ads_management", "estimated_time_to_regain_access": 1}]}
            ),
        }
    )
    assert usage_retry_after(headers) == 90
    exc = graph_error("facebook", response(400, error(17), dict(headers)))
    assert isinstance(exc, TransientError) and exc.retry_after == 90


def test_usage_below_the_limit_gives_no_wait():
    headers = httpx.Headers({"X-App-Usage": json.dumps({"call_count": 99, "total_time": 10})})
    assert usage_retry_after(headers) is None
    full = httpx.Headers({"X-App-Usage": json.dumps({"call_count": 10, "total_cputime": 100})})
    assert usage_retry_after(full) == APP_USAGE_RETRY_AFTER


def test_retry_after_header_wins_over_usage_headers():
    headers = {
        "Retry-After": "5",
        "X-App-Usage": json.dumps({"call_count": 100}),
    }
    exc = graph_error("facebook", response(400, error(4), headers))
    assert isinstance(exc, TransientError) and exc.retry_after == 5


def test_a_response_without_a_graph_body_falls_back_to_the_status():
    assert isinstance(graph_error("facebook", response(502)), TransientError)
    assert isinstance(graph_error("facebook", response(401)), NeedsAuth)
    assert isinstance(graph_error("facebook", response(404, {"x": 1})), PermanentError)


def test_the_message_keeps_graphs_words_and_trace_id():
    body = error(368, error_user_msg="You can't post right now", fbtrace_id="Trace1")
    exc = graph_error("facebook", response(400, body))
    assert isinstance(exc, TransientError)
    assert exc.message == (
        "facebook: error 368 — You can't post right now (code 368, HTTP 400, fbtrace_id Trace1)"
    )
