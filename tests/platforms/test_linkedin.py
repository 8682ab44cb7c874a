"""The LinkedIn adapter against a local API that answers as the Posts/Images API docs say."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from herald_common.errors import NeedsAuth, OutcomeUnknown, PermanentError, TransientError
from herald_common.platforms.base import AccountRef, LookupUnsupported, PublishRequest
from herald_common.platforms.linkedin import (
    DEFAULT_VERSION,
    LinkedInPlatform,
    LinkedInSettings,
    escape_commentary,
    plain_commentary,
)
from tests.platforms.fake_linkedin import (
    DAY_THROTTLE,
    NO_WRITE_PERMISSION,
    PERSON,
    FakeLinkedIn,
    unprocessable,
)
from tests.platforms.servers import FakeMediaHost, running

PNG = b"\x89PNG\r\n\x1a\n" + b"\x02" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x03" * 64
ORG = "urn:li:organization:2414183"
#: The checkpoint of a try that sent POST /rest/posts (and then crashed or lost the answer).
CREATED = {"stage": "creating", "images": []}


@pytest.fixture
def server() -> Iterator[FakeLinkedIn]:
    with running(FakeLinkedIn()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def platform(client: httpx.Client, server: FakeLinkedIn, sleeps: list[float]) -> LinkedInPlatform:
    return LinkedInPlatform(client, api_url=server.url, sleep=sleeps.append, poll_interval=0.5)


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


def account(token: str = "good-token", **settings: Any) -> AccountRef:
    return AccountRef(
        id="acc-li",
        tenant_id="t-1",
        platform="linkedin",
        handle="alice",
        settings={"author": PERSON, **settings},
        credentials={"access_token": token},
    )


def request(
    acc: AccountRef,
    text: str = "Hello, LinkedIn",
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


# -- little text ----------------------------------------------------------------------------


def test_commentary_escapes_reserved_characters_and_keeps_hashtags():
    # Given text with every reserved character, a hashtag, a mention-like and a markdown-like
    text = "Q&A (live) @bob [x] {y} <z> a|b c*d e_f ~g \\h #Launch2026 issue #12 a#b #my_tag"

    # When escaped; Then each reserved character is plain text and hashtags stay hashtags
    escaped = escape_commentary(text)
    assert escaped == (
        "Q&A \\(live\\) \\@bob \\[x\\] \\{y\\} \\<z\\> a\\|b c\\*d e\\_f \\~g \\\\h "
        "#Launch2026 issue #12 a\\#b #my\\_tag"
    )
    # And reading it back (also from hashtag templates) gives the text again
    assert plain_commentary(escaped) == text
    assert plain_commentary("Go {hashtag|\\#|Launch} now \\(really\\)") == "Go #Launch now (really)"


# -- publish --------------------------------------------------------------------------------


def test_publish_text_creates_one_post_with_the_documented_body(server, platform):
    # Given a member account that disables reshares, posting to connections
    checkpoints = Checkpoints()
    acc = account(visibility="CONNECTIONS", reshare_disabled=True)
    text = "Shipping v2 (finally) #release"

    # When a text post is published
    result = platform.publish(request(acc, text=text, checkpoints=checkpoints))

    # Then one post exists under the URN from x-restli-id, showing the text as written
    assert list(server.posts) == [result.platform_post_id]
    assert result.platform_post_id.startswith("urn:li:share:")
    assert result.url == f"https://www.linkedin.com/feed/update/{result.platform_post_id}/"
    assert result.http_status == 201
    assert server.post_text(result.platform_post_id) == text
    assert server.posts[result.platform_post_id].hashtags == ["release"]
    # And the request had the documented headers and body
    (call,) = server.calls("/rest/posts", "POST")
    assert call.headers["authorization"] == "Bearer good-token"
    assert call.headers["linkedin-version"] == DEFAULT_VERSION
    assert call.headers["x-restli-protocol-version"] == "2.0.0"
    assert call.json() == {
        "author": PERSON,
        "commentary": "Shipping v2 \\(finally\\) #release",
        "visibility": "CONNECTIONS",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": True,
    }
    assert checkpoints.saved == [{"stage": "creating", "images": []}]


def test_the_version_header_is_configurable(server, client):
    # Given an adapter configured for another API version; When publishing
    LinkedInPlatform(client, api_url=server.url, version="202610").publish(request(account()))

    # Then that version was sent
    assert server.calls("/rest/posts", "POST")[0].headers["linkedin-version"] == "202610"


def test_publish_with_one_image_uploads_it_and_waits_until_available(server, platform, sleeps):
    # Given an image LinkedIn processes for a while
    server.processing_polls = 2
    with running(FakeMediaHost({"/team.png": (PNG, "image/png")})) as host:
        media = ({"url": f"{host.url}/team.png", "alt": "the team"},)
        checkpoints = Checkpoints()

        # When the post is published
        result = platform.publish(request(account(), media=media, checkpoints=checkpoints))

    # Then the image was initialised for the author, PUT with the token, and polled
    (init,) = server.calls("/rest/images", "POST")
    assert init.query == {"action": ["initializeUpload"]}
    assert init.json() == {"initializeUploadRequest": {"owner": PERSON}}
    (image,) = server.images.values()
    assert image.content == PNG and image.content_type == "image/png"
    (put,) = [r for r in server.requests if r.method == "PUT"]
    assert put.headers["authorization"] == "Bearer good-token"
    polls = [r for r in server.requests if r.path.startswith("/rest/images/")]
    assert [r.path for r in polls] == [f"/rest/images/{quote(image.urn, safe='')}"] * 3
    assert sleeps == [0.5, 0.5]
    # And the post has the image as content.media with its alt text
    body = server.posts[result.platform_post_id].body
    assert body["content"] == {"media": {"id": image.urn, "altText": "the team"}}
    assert [c["stage"] for c in checkpoints.saved] == ["uploading", "creating"]


def test_publish_with_several_images_makes_a_multi_image_post(server, platform):
    # Given three images given as data, one with alt text
    media = (
        {"data": b64(PNG), "mime_type": "image/png", "alt": "one"},
        {"data": b64(JPEG), "mime_type": "image/jpeg"},
        {"data": b64(PNG), "mime_type": "image/png"},
    )

    # When published
    result = platform.publish(request(account(), media=media))

    # Then the post carries them as content.multiImage, in order
    images = server.posts[result.platform_post_id].body["content"]["multiImage"]["images"]
    assert len(images) == 3
    assert images[0]["altText"] == "one" and "altText" not in images[1]
    assert [server.images[i["id"]].content for i in images] == [PNG, JPEG, PNG]


def test_an_image_linkedin_cannot_process_is_permanent(server, platform):
    # Given LinkedIn fails to process the image
    server.fail_processing = True

    # When publishing; Then the error is permanent and nothing was posted
    with pytest.raises(PermanentError, match="could not process"):
        platform.publish(request(account(), media=({"data": b64(PNG)},)))
    assert server.posts == {}


def test_an_image_still_processing_after_the_deadline_is_retryable(server, client):
    # Given an image that keeps processing longer than the adapter waits
    server.processing_polls = 1000
    clock = iter(range(1000))
    platform = LinkedInPlatform(
        client,
        api_url=server.url,
        sleep=lambda _: None,
        monotonic=lambda: next(clock),
        poll_timeout=5,
    )

    # When publishing; Then a TransientError says so, and nothing was posted
    with pytest.raises(TransientError, match="still PROCESSING"):
        platform.publish(request(account(), media=({"data": b64(PNG)},)))
    assert server.posts == {}


# -- errors ---------------------------------------------------------------------------------


def test_429_with_retry_after_is_retryable_after_it(server, platform):
    # Given LinkedIn throttles with a Retry-After
    server.fail_next(1, 429, DAY_THROTTLE, {"Retry-After": "90"})

    # When publishing
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))

    # Then the error is retryable after 90 s and keeps LinkedIn's message
    assert caught.value.retry_after == 90
    assert caught.value.http_status == 429
    assert "MEMBER DAY limit" in caught.value.message
    assert server.posts == {}


def test_429_of_a_daily_limit_waits_until_midnight_utc(server, client):
    # Given a daily throttle without Retry-After at 22:30 UTC
    now = datetime(2026, 11, 22, 22, 30, tzinfo=UTC).timestamp()
    platform = LinkedInPlatform(client, api_url=server.url, clock=lambda: now)
    server.fail_next(1, 429, DAY_THROTTLE)

    # When publishing; Then retry_after is the 90 minutes left until the limits reset
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))
    assert caught.value.retry_after == pytest.approx(90 * 60)


def test_429_without_any_hint_has_no_retry_after(server, platform):
    server.fail_next(1, 429, {"status": 429, "message": "Too many requests"})
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_is_retryable_and_the_next_try_posts_once(server, platform, status):
    # Given the next create fails before LinkedIn wrote anything
    server.fail_next(
        1, status, {"status": status, "message": "Service trouble"}, path="/rest/posts"
    )

    # When publishing twice
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))
    result = platform.publish(request(account()))

    # Then the first was retryable and the second made the only post
    assert caught.value.http_status == status
    assert list(server.posts) == [result.platform_post_id]


def test_network_failure_is_retryable(client):
    with running(FakeLinkedIn()) as gone:
        platform = LinkedInPlatform(client, api_url=gone.url)
    with pytest.raises(TransientError) as caught:
        platform.publish(request(account()))
    assert caught.value.http_status is None


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("expired-token", "EXPIRED_ACCESS_TOKEN"),
        ("revoked-token", "REVOKED_ACCESS_TOKEN"),
        ("unknown", "INVALID_ACCESS_TOKEN"),
    ],
)
def test_expired_revoked_or_invalid_tokens_need_auth(server, platform, token, code):
    # Given a token LinkedIn refuses; When publishing
    with pytest.raises(NeedsAuth) as caught:
        platform.publish(request(account(token=token)))

    # Then NeedsAuth keeps LinkedIn's code and the 401, and nothing was posted
    assert code in caught.value.message
    assert caught.value.http_status == 401
    assert server.posts == {}


def test_missing_permission_needs_auth(server, platform):
    # Given the token may not post as this author
    server.fail_next(1, 403, NO_WRITE_PERMISSION, path="/rest/posts")

    # When publishing; Then the account must be connected again
    with pytest.raises(NeedsAuth, match="Not enough permissions"):
        platform.publish(request(account()))


def test_missing_token_needs_auth_without_calling(server, platform):
    acc = AccountRef("a", "t", "linkedin", "alice", settings={"author": PERSON})
    with pytest.raises(NeedsAuth):
        platform.publish(request(acc))
    assert server.requests == []


def test_other_4xx_is_permanent_with_linkedins_message(server, platform):
    # Given LinkedIn refuses the post for another reason
    server.fail_next(
        1, 422, unprocessable("/visibility :: LOGGED_IN is not allowed here"), path="/rest/posts"
    )

    # When publishing; Then the error is permanent with LinkedIn's message and code
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account()))
    assert "/visibility :: LOGGED_IN is not allowed here" in caught.value.message
    assert "UNPROCESSABLE_ENTITY" in caught.value.message
    assert caught.value.http_status == 422


def test_a_retired_version_is_permanent(server, platform):
    server.fail_next(
        1,
        426,
        {
            "status": 426,
            "code": "NONEXISTENT_VERSION",
            "message": f"Requested version {DEFAULT_VERSION} is not active",
        },
    )
    with pytest.raises(PermanentError, match="NONEXISTENT_VERSION"):
        platform.publish(request(account()))


def test_settings_without_author_are_permanent(server, platform):
    acc = AccountRef("a", "t", "linkedin", "alice", credentials={"access_token": "good-token"})
    with pytest.raises(PermanentError, match="settings"):
        platform.publish(request(acc))
    assert server.requests == []


# -- duplicates and crashes -----------------------------------------------------------------


def test_publishing_the_same_request_twice_makes_one_post(server, platform):
    # Given a post already published once by a try that kept its checkpoint
    checkpoints = Checkpoints()
    first = platform.publish(request(account(), checkpoints=checkpoints))

    # When the same request is published again
    second = platform.publish(request(account(), checkpoints=checkpoints))

    # Then LinkedIn refused the duplicate naming the first post: one post, the same URN
    assert second.platform_post_id == first.platform_post_id
    assert second.http_status == 422
    assert len(server.posts) == 1
    assert len(server.calls("/rest/posts", "POST")) == 2


def test_a_lost_answer_then_a_retry_makes_exactly_one_post(server, platform):
    # Given LinkedIn writes a post with an image but the answer is lost (500 after the write)
    server.lose_next_create = True
    checkpoints = Checkpoints()
    media = ({"data": b64(PNG), "mime_type": "image/png", "alt": "a"},)
    with pytest.raises(TransientError):
        platform.publish(request(account(), media=media, checkpoints=checkpoints))
    assert len(server.posts) == 1
    assert checkpoints.current["stage"] == "creating"

    # When the publisher tries again with the saved checkpoint
    result = platform.publish(request(account(), media=media, checkpoints=checkpoints))

    # Then the image was not uploaded again and the first post is the result
    assert list(server.posts) == [result.platform_post_id]
    assert len(server.calls("/rest/images", "POST")) == 1


def test_a_duplicate_refusal_naming_no_post_is_permanent(server, platform):
    # Given an earlier post, and LinkedIn's refusal not naming it
    platform.publish(request(account()))
    server.duplicate_names_urn = False

    # When the same text is retried; Then it fails permanently, no second post
    with pytest.raises(PermanentError, match="duplicate"):
        platform.publish(request(account(), checkpoints=Checkpoints(CREATED)))
    assert len(server.posts) == 1


def test_a_duplicate_of_an_older_post_on_a_first_try_is_not_taken_for_it(server, platform):
    # Given a recurring text posted earlier by hand, and a new target with that text
    older = server.add_post(PERSON, "Good morning!")

    # When the new target's first try is refused as a duplicate of it
    with pytest.raises(PermanentError) as caught:
        platform.publish(request(account(), text="Good morning!"))

    # Then it fails naming the duplicate; the older post is not claimed as this target's
    assert "DUPLICATE_POST" in caught.value.message
    assert f"the earlier post {older} has this content" in caught.value.message
    assert "no earlier try of this target sent it" in caught.value.message
    assert list(server.posts) == [older]


def test_a_created_post_without_a_urn_is_unknown(server, platform):
    # Given LinkedIn accepts the post but its answer names no URN
    server.fail_next(1, 201, None, path="/rest/posts")

    # When publishing; Then the outcome is unknown (the post is live), not a failure
    with pytest.raises(OutcomeUnknown, match="named no post URN"):
        platform.publish(request(account()))


def test_an_image_upload_answered_without_its_urn_is_retryable(server, platform):
    # Given initializeUpload answers 200 without `value`
    server.fail_next(1, 200, {"unexpected": True}, path="/rest/images")

    # When publishing; Then the try may be repeated (nothing is visible), and nothing was posted
    with pytest.raises(TransientError, match="initializeUpload"):
        platform.publish(request(account(), media=({"data": b64(PNG)},)))
    assert server.posts == {}


def test_a_try_that_may_not_change_the_target_does_not_post(server, platform):
    with pytest.raises(RuntimeError):
        platform.publish(request(account(), checkpoints=Checkpoints(fail=True)))
    assert server.calls("/rest/posts") == []


# -- lookup ---------------------------------------------------------------------------------


def test_lookup_finds_the_post_a_publish_made(server, platform):
    # Given a published post with reserved characters and a hashtag (read back as a template)
    text = "We're hiring (remote) — see [jobs] #hiring"
    other = platform.publish(request(account(), text="Something else"))
    published = platform.publish(request(account(), text=text))

    # When looked up after a try that sent the create
    found = platform.lookup(request(account(), text=text, checkpoints=Checkpoints(CREATED)))

    # Then it is that post, asked for with the author finder
    assert found is not None
    assert found.platform_post_id == published.platform_post_id != other.platform_post_id
    assert found.url == published.url
    (finder,) = server.calls("/rest/posts", "GET")
    assert finder.headers["x-restli-method"] == "FINDER"
    assert finder.query["author"] == [PERSON] and finder.query["q"] == ["author"]


def test_lookup_of_a_post_that_never_went_out_is_none(server, platform):
    # Given another post by the author, but not this one
    platform.publish(request(account(), text="Something else"))

    # When looked up after a try that sent the create; Then nothing is found or posted
    assert platform.lookup(request(account(), checkpoints=Checkpoints(CREATED))) is None
    assert len(server.posts) == 1
    assert len(server.calls("/rest/posts", "GET")) == 1


def test_lookup_compares_images_too(server, platform):
    # Given a post with this text and an image
    platform.publish(request(account(), media=({"data": b64(PNG)},)))

    # When the text-only request is looked up; Then the image post is not it
    assert platform.lookup(request(account(), checkpoints=Checkpoints(CREATED))) is None
    assert len(server.calls("/rest/posts", "GET")) == 1


def test_lookup_after_a_crash_before_the_create_is_none_without_asking(server, platform):
    checkpoints = Checkpoints({"stage": "uploading", "images": ["urn:li:image:C4"]})
    assert platform.lookup(request(account(), checkpoints=checkpoints)) is None
    assert server.requests == []
    assert platform.may_be_public(checkpoints.current) is False
    assert platform.may_be_public(CREATED) is True


def test_lookup_without_a_checkpoint_is_none_without_asking(server, platform):
    # Given the same text on the account, but a target whose try saved nothing (the stage is
    # saved before the create, so it never sent one)
    server.add_post(PERSON, "Hello, LinkedIn")

    # When looked up; Then nothing was sent, and LinkedIn was not asked
    assert platform.lookup(request(account())) is None
    assert server.requests == []
    assert platform.may_be_public({}) is False


def test_a_re_upload_after_a_create_keeps_the_creating_stage(server, platform):
    # Given a try that sent the create, whose saved image URNs do not fit the request
    checkpoints = Checkpoints({"stage": "creating", "images": ["not-an-image-urn"]})

    # When tried again
    platform.publish(request(account(), media=({"data": b64(PNG)},), checkpoints=checkpoints))

    # Then no save ever said the create was not sent
    assert [c["stage"] for c in checkpoints.saved] == ["creating", "creating"]


def test_lookup_without_read_permission_is_left_to_a_person(server, platform):
    # Given a token without r_member_social
    server.can_read = False

    # When looked up after a try that sent the create; Then the adapter cannot tell
    with pytest.raises(LookupUnsupported, match="r_member_social"):
        platform.lookup(request(account(), checkpoints=Checkpoints(CREATED)))


def test_lookup_with_two_identical_posts_is_left_to_a_person(server, platform):
    # Given a post published by Herald and the same text posted by hand on linkedin.com
    platform.publish(request(account(), text="Same (again)"))
    server.add_post(PERSON, "Same \\(again\\)")

    # When looked up; Then the adapter does not guess
    with pytest.raises(LookupUnsupported, match="2 recent posts"):
        platform.lookup(request(account(), text="Same (again)", checkpoints=Checkpoints(CREATED)))


# -- validate -------------------------------------------------------------------------------


def test_validate_accepts_a_good_post(platform):
    media = [{"url": "https://example.org/a.png", "alt": "a"}] * 20
    assert platform.validate("Hello", media, account()) == []
    assert platform.validate("x" * 3000, [], account(author=ORG, visibility="LOGGED_IN")) == []


def test_validate_length_in_utf16_units(platform):
    (violation,) = platform.validate("x" * 3001, [], account())
    assert violation.rule == "max_characters"
    assert "at most 3,000" in violation.reason
    # An emoji outside the BMP counts 2
    assert [v.rule for v in platform.validate("😀" * 1501, [], account())] == ["max_characters"]


def test_validate_author_and_settings(platform):
    acc = AccountRef("a", "t", "linkedin", "alice", settings={"visibility": "FRIENDS"})
    rules = {v.rule for v in platform.validate("hi", [], acc)}
    assert rules == {"author", "settings"}
    rules = {v.rule for v in platform.validate("hi", [], account(author="alice"))}
    assert rules == {"author"}
    (violation,) = platform.validate("hi", [], account(author=ORG, visibility="CONNECTIONS"))
    assert violation.rule == "visibility"


def test_validate_media(platform):
    acc = account()
    assert [v.rule for v in platform.validate("", [], acc)] == ["empty"]
    too_many = [{"url": "https://example.org/a.png"}] * 21
    assert [v.rule for v in platform.validate("hi", too_many, acc)] == ["max_images"]
    cases = [
        ({"url": "https://example.org/a.mp4"}, "media_type"),
        ({"url": "https://example.org/a", "kind": "video"}, "media_type"),
        ({"url": "https://example.org/a.webp"}, "media_type"),
        ({"kind": "image"}, "media"),
    ]
    for item, rule in cases:
        assert [v.rule for v in platform.validate("hi", [item], acc)] == [rule], item


def test_settings_schema_is_strict():
    settings = LinkedInSettings.model_validate({"author": ORG})
    assert (settings.visibility, settings.reshare_disabled) == ("PUBLIC", False)
    with pytest.raises(ValueError):
        LinkedInSettings.model_validate({"author": ORG, "reshare_disabled": "yes"})
    with pytest.raises(ValueError):
        LinkedInSettings.model_validate({})
