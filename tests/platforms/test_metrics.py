"""Each adapter's `metrics` against the local servers: the request it makes (path, query, token),
what it reads from the answer, and how it takes a 429, a refused token and a deleted post."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy.engine import Engine

from herald_common.db import session_scope
from herald_common.errors import NeedsAuth, PermanentError, RateLimited, TransientError, Waiting
from herald_common.models import SandboxDelivery
from herald_common.platforms.base import (
    AccountRef,
    MetricsRequest,
    Platform,
    PostMetrics,
    PublishRequest,
    PublishResult,
    Violation,
)
from herald_common.platforms.bluesky import BlueskyPlatform
from herald_common.platforms.facebook import FacebookPlatform
from herald_common.platforms.instagram import InstagramPlatform
from herald_common.platforms.linkedin import LinkedInPlatform
from herald_common.platforms.mastodon import MastodonPlatform
from herald_common.platforms.sandbox import SandboxPlatform, sandbox_metrics
from herald_common.platforms.threads import ThreadsPlatform
from herald_common.platforms.tiktok import TikTokPlatform
from herald_common.platforms.x import XPlatform
from herald_common.timeutil import utcnow
from tests.conftest import add_account, add_tenant, stored
from tests.platforms.fake_linkedin import PERSON, FakeLinkedIn
from tests.platforms.fake_meta import CheckpointStore, FakeFacebook, FakeInstagram, FakeThreads
from tests.platforms.fake_meta import graph_error as graph_reply
from tests.platforms.fake_tiktok import STATUS, VIDEO_QUERY, FakeTikTok
from tests.platforms.fake_x import TOO_MANY, FakeX
from tests.platforms.servers import FakeMastodon, FakePDS, running

PAGE = "1122334455"
IG = "17841400000000001"
JPEG = "https://cdn.example.org/photos/cat.jpg"


def ref(platform: str, *, token: str = "good-token", **settings: Any) -> AccountRef:
    return AccountRef(
        id=f"acc-{platform}",
        tenant_id="t-1",
        platform=platform,
        handle="alice",
        settings=settings,
        credentials={"access_token": token},
    )


def asked(account: AccountRef, post_id: str, **extra: Any) -> MetricsRequest:
    return MetricsRequest(account=account, platform_post_id=post_id, **extra)


def publish(platform: Platform, account: AccountRef, text: str = "Hello") -> PublishResult:
    return platform.publish(PublishRequest(account=account, idempotency_key="t-1", text=text))


# -- the interface ------------------------------------------------------------------------------


class Silent(Platform):
    """A platform that publishes nothing and counts nothing."""

    name = "silent"

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        return []

    def publish(self, request: PublishRequest) -> PublishResult:
        return PublishResult("1")


def test_a_platform_without_metrics_says_so_permanently():
    with pytest.raises(PermanentError, match="silent: gives no metrics"):
        Silent().metrics(asked(ref("silent"), "1"))


# -- Mastodon -----------------------------------------------------------------------------------


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as fake:
        yield fake  # type: ignore[misc]


def test_mastodon_reads_the_status_counts(client, mastodon):
    # Given a status people favourited, boosted, replied to and quoted
    platform = MastodonPlatform(client)
    account = ref("mastodon", instance_url=mastodon.url)
    status_id = publish(platform, account).platform_post_id
    mastodon.engage(status_id, favourites=12, reblogs=3, replies=4, quotes=1)

    # When its metrics are read
    metrics = platform.metrics(asked(account, status_id))

    # Then GET /api/v1/statuses/:id with the token gave each count; Mastodon counts no views
    assert metrics == PostMetrics(likes=12, reposts=3, replies=4, quotes=1)
    [call] = mastodon.calls(f"/api/v1/statuses/{status_id}", "GET")
    assert call.headers["authorization"] == "Bearer good-token"


def test_mastodon_before_4_5_gives_no_quotes(client, mastodon):
    mastodon.counts_quotes = False
    platform = MastodonPlatform(client)
    account = ref("mastodon", instance_url=mastodon.url)
    status_id = publish(platform, account).platform_post_id

    metrics = platform.metrics(asked(account, status_id))

    assert (metrics.likes, metrics.quotes) == (0, None)


def test_mastodon_429_is_rate_limited_with_its_retry_after(client, mastodon):
    mastodon.fail_next(1, 429, {"error": "Too many requests"}, {"Retry-After": "42"})
    account = ref("mastodon", instance_url=mastodon.url)

    with pytest.raises(RateLimited) as caught:
        MastodonPlatform(client).metrics(asked(account, "1000"))

    assert caught.value.retry_after == 42


def test_mastodon_refused_token_and_deleted_status(client, mastodon):
    platform = MastodonPlatform(client)
    good = ref("mastodon", instance_url=mastodon.url)
    status_id = publish(platform, good).platform_post_id
    mastodon.statuses.clear()  # the person deleted it

    with pytest.raises(NeedsAuth):
        platform.metrics(asked(ref("mastodon", token="bad", instance_url=mastodon.url), "1"))
    with pytest.raises(PermanentError, match="is gone") as gone:
        platform.metrics(asked(good, status_id))
    assert gone.value.http_status == 404


# -- Bluesky ------------------------------------------------------------------------------------


@pytest.fixture
def pds() -> Iterator[FakePDS]:
    with running(FakePDS()) as fake:
        yield fake  # type: ignore[misc]


def bluesky_account(pds: FakePDS) -> AccountRef:
    return AccountRef(
        id="acc-bsky",
        tenant_id="t-1",
        platform="bluesky",
        handle=pds.handle,
        external_id=pds.did,
        settings={"service_url": pds.url},
        credentials={"app_password": pds.password},
    )


def test_bluesky_reads_the_post_view_counts_with_the_session(client, pds):
    # Given a post the AppView counts
    platform = BlueskyPlatform(client)
    account = bluesky_account(pds)
    uri = publish(platform, account).platform_post_id
    pds.engage(uri, likeCount=9, repostCount=2, replyCount=5, quoteCount=1, bookmarkCount=4)

    # When its metrics are read
    metrics = platform.metrics(asked(account, uri))

    # Then app.bsky.feed.getPosts was asked for that URI with the session's token
    assert metrics == PostMetrics(likes=9, reposts=2, replies=5, quotes=1, extra={"bookmarks": 4})
    [call] = pds.calls("/xrpc/app.bsky.feed.getPosts", "GET")
    assert call.query == {"uris": [uri]}
    assert call.headers["authorization"].startswith("Bearer access-")


def test_bluesky_deleted_post_and_rate_limit(client, pds):
    platform = BlueskyPlatform(client)
    account = bluesky_account(pds)
    uri = publish(platform, account).platform_post_id
    pds.fail_next(
        1,
        429,
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        {"RateLimit-Reset": "99999999999"},
        path="/xrpc/app.bsky.feed.getPosts",
    )
    with pytest.raises(RateLimited) as limited:
        platform.metrics(asked(account, uri))
    assert limited.value.retry_after and limited.value.retry_after > 3600

    pds.delete_post(uri)
    with pytest.raises(PermanentError, match="is gone"):
        platform.metrics(asked(account, uri))


def test_bluesky_refreshes_an_expired_session_once_then_needs_auth(client, pds):
    platform = BlueskyPlatform(client)
    account = bluesky_account(pds)
    uri = publish(platform, account).platform_post_id
    pds.engage(uri, likeCount=1)
    pds.expire_all()

    # An expired session is refreshed on the way
    assert platform.metrics(asked(account, uri)).likes == 1

    pds.expire_all()
    pds.revoke_app_password()
    with pytest.raises(NeedsAuth):
        platform.metrics(asked(account, uri))


# -- X ------------------------------------------------------------------------------------------


@pytest.fixture
def x() -> Iterator[FakeX]:
    with running(FakeX()) as fake:
        yield fake  # type: ignore[misc]


def test_x_reads_public_metrics(client, x):
    # Given a post people engaged with
    platform = XPlatform(client, api_url=x.url)
    account = ref("x")
    post_id = publish(platform, account).platform_post_id
    x.engage(
        post_id,
        like_count=40,
        retweet_count=6,
        reply_count=7,
        quote_count=2,
        bookmark_count=3,
        impression_count=1500,
    )

    # When its metrics are read
    metrics = platform.metrics(asked(account, post_id))

    # Then GET /2/tweets/:id?tweet.fields=public_metrics gave them, impressions included
    assert metrics == PostMetrics(
        likes=40, reposts=6, replies=7, quotes=2, impressions=1500, extra={"bookmarks": 3}
    )
    [call] = x.calls(f"/2/tweets/{post_id}", "GET")
    assert call.query == {"tweet.fields": ["public_metrics"]}
    assert call.headers["authorization"] == "Bearer good-token"


def test_x_deleted_post_is_a_200_with_errors_and_permanent(client, x):
    platform = XPlatform(client, api_url=x.url)

    with pytest.raises(PermanentError, match="Could not find tweet"):
        platform.metrics(asked(ref("x"), "1850000000000009999"))


def test_x_429_waits_for_retry_after_and_401_needs_auth(client, x):
    platform = XPlatform(client, api_url=x.url)
    x.fail_next(1, 429, TOO_MANY, {"Retry-After": "30"})

    with pytest.raises(RateLimited) as limited:
        platform.metrics(asked(ref("x"), "1850000000000000000"))
    with pytest.raises(NeedsAuth):
        platform.metrics(asked(ref("x", token="expired-token"), "1850000000000000000"))
    assert limited.value.retry_after == 30


# -- Facebook -----------------------------------------------------------------------------------


@pytest.fixture
def facebook() -> Iterator[FakeFacebook]:
    with running(FakeFacebook()) as fake:
        yield fake  # type: ignore[misc]


def published_on_facebook(platform: FacebookPlatform) -> str:
    store = CheckpointStore()
    return platform.publish(
        store.request(ref("facebook", page_id=PAGE), "Croissants")
    ).platform_post_id


def test_facebook_reads_reactions_comments_shares_and_views(client, facebook):
    # Given a Page post with reactions, comments, shares and views
    platform = FacebookPlatform(client, api_url=facebook.url)
    post_id = published_on_facebook(platform)
    facebook.engage(post_id, reactions=25, comments=4, shares=3, views=800)

    # When its metrics are read
    metrics = platform.metrics(asked(ref("facebook", page_id=PAGE), post_id))

    # Then the post's summaries and its post_media_view insight gave them
    assert metrics == PostMetrics(likes=25, replies=4, reposts=3, views=800)
    fields = facebook.calls(f"/v25.0/{post_id}", "GET")[-1]  # after the publish's permalink
    assert fields.query["fields"] == [
        "reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0),shares"
    ]
    [insights] = facebook.calls(f"/v25.0/{post_id}/insights", "GET")
    assert insights.query["metric"] == ["post_media_view"]
    assert insights.headers["authorization"] == "Bearer good-token"


def test_facebook_post_nobody_shared_has_zero_shares(client, facebook):
    platform = FacebookPlatform(client, api_url=facebook.url)
    post_id = published_on_facebook(platform)

    metrics = platform.metrics(asked(ref("facebook", page_id=PAGE), post_id))

    assert (metrics.reposts, metrics.likes, metrics.views) == (0, 0, 0)


def test_facebook_keeps_the_counts_when_insights_are_refused(client, facebook):
    # Given a token without read_insights
    platform = FacebookPlatform(client, api_url=facebook.url)
    post_id = published_on_facebook(platform)
    facebook.engage(post_id, reactions=5, comments=1, views=99)
    facebook.insights_refused = graph_reply(10, "(#10) Application does not have permission")

    # When its metrics are read, the counts come without views
    metrics = platform.metrics(asked(ref("facebook", page_id=PAGE), post_id))

    assert metrics == PostMetrics(likes=5, replies=1, reposts=0, views=None)


def test_facebook_deleted_post_throttle_and_expired_token(client, facebook):
    platform = FacebookPlatform(client, api_url=facebook.url)
    account = ref("facebook", page_id=PAGE)

    with pytest.raises(PermanentError, match="does not exist"):
        platform.metrics(asked(account, f"{PAGE}_404"))
    facebook.throttle(1, code=32, minutes=7, business_id=PAGE, buc_type="pages")
    with pytest.raises(RateLimited) as limited:
        platform.metrics(asked(account, f"{PAGE}_1"))
    assert limited.value.retry_after == 7 * 60
    with pytest.raises(NeedsAuth):
        platform.metrics(asked(ref("facebook", token="expired-token", page_id=PAGE), "1"))


# -- Instagram ----------------------------------------------------------------------------------


@pytest.fixture
def instagram() -> Iterator[FakeInstagram]:
    with running(FakeInstagram()) as fake:
        yield fake  # type: ignore[misc]


def published_on_instagram(platform: InstagramPlatform) -> str:
    store = CheckpointStore()
    request = store.request(ref("instagram", ig_user_id=IG), "Caturday", [{"url": JPEG}])
    return platform.publish(request).platform_post_id


def instagram_platform(client: httpx.Client, server: FakeInstagram) -> InstagramPlatform:
    return InstagramPlatform(client, api_url=server.url, poll_interval=0.01, sleep=lambda _: None)


def test_instagram_reads_likes_comments_and_views_reach_saves_shares(client, instagram):
    # Given a media people liked, commented, viewed, saved and shared
    platform = instagram_platform(client, instagram)
    media_id = published_on_instagram(platform)
    instagram.engage(
        media_id, {"like_count": 31, "comments_count": 6}, views=900, reach=700, saved=8, shares=2
    )

    # When its metrics are read
    metrics = platform.metrics(asked(ref("instagram", ig_user_id=IG), media_id))

    # Then like/comment counts from the media, views and the rest from its insights
    assert metrics == PostMetrics(
        likes=31, replies=6, views=900, extra={"reach": 700, "saved": 8, "shares": 2}
    )
    media = instagram.calls(f"/v25.0/{media_id}", "GET")[-1]  # after the publish's permalink
    assert media.query["fields"] == ["like_count,comments_count"]
    [insights] = instagram.calls(f"/v25.0/{media_id}/insights", "GET")
    assert insights.query["metric"] == ["views,reach,saved,shares"]


def test_instagram_keeps_counts_when_insights_are_refused(client, instagram):
    platform = instagram_platform(client, instagram)
    media_id = published_on_instagram(platform)
    instagram.engage(media_id, {"like_count": 3, "comments_count": 0})
    instagram.insights_refused = graph_reply(
        10, "(#10) Not enough viewers for the media to show insights"
    )

    metrics = platform.metrics(asked(ref("instagram", ig_user_id=IG), media_id))

    assert metrics == PostMetrics(likes=3, replies=0)


def test_instagram_missing_permission_is_permanent_and_deleted_media_too(client, instagram):
    platform = instagram_platform(client, instagram)
    account = ref("instagram", ig_user_id=IG)
    instagram.fail_next(1, 400, graph_reply(200, "(#200) Requires instagram_manage_insights").body)

    with pytest.raises(PermanentError, match="may not read"):
        platform.metrics(asked(account, "17900000000000999"))
    with pytest.raises(PermanentError, match="does not exist"):
        platform.metrics(asked(account, "17900000000000999"))


# -- Threads ------------------------------------------------------------------------------------


@pytest.fixture
def threads() -> Iterator[FakeThreads]:
    with running(FakeThreads()) as fake:
        yield fake  # type: ignore[misc]


def test_threads_reads_every_insight(client, threads):
    # Given a Threads post with views, likes, replies, reposts, quotes and shares
    platform = ThreadsPlatform(
        client, api_url=threads.url, poll_interval=0.01, sleep=lambda _: None
    )
    account = ref("threads")
    media_id = platform.publish(CheckpointStore().request(account, "Hi")).platform_post_id
    threads.engage(media_id, views=450, likes=20, replies=5, reposts=2, quotes=1, shares=3)

    # When its metrics are read
    metrics = platform.metrics(asked(account, media_id))

    # Then one insights call gave them all
    assert metrics == PostMetrics(
        likes=20, reposts=2, replies=5, quotes=1, views=450, extra={"shares": 3}
    )
    [call] = threads.calls(f"/v1.0/{media_id}/insights", "GET")
    assert call.query["metric"] == ["views,likes,replies,reposts,quotes,shares"]
    assert call.headers["authorization"] == "Bearer good-token"


def test_threads_without_the_insights_permission_is_permanent(client, threads):
    platform = ThreadsPlatform(
        client, api_url=threads.url, poll_interval=0.01, sleep=lambda _: None
    )
    account = ref("threads")
    media_id = platform.publish(CheckpointStore().request(account, "Hi")).platform_post_id
    threads.insights_refused = graph_reply(10, "(#10) Application does not have permission")

    with pytest.raises(PermanentError, match="may not read the post's insights"):
        platform.metrics(asked(account, media_id))
    with pytest.raises(NeedsAuth):
        platform.metrics(asked(ref("threads", token="expired-token"), media_id))


# -- LinkedIn -----------------------------------------------------------------------------------


@pytest.fixture
def linkedin() -> Iterator[FakeLinkedIn]:
    with running(FakeLinkedIn()) as fake:
        yield fake  # type: ignore[misc]


def test_linkedin_reads_the_social_actions_summary(client, linkedin):
    # Given a member's post with likes and comments
    platform = LinkedInPlatform(client, api_url=linkedin.url)
    account = ref("linkedin", author=PERSON)
    urn = publish(platform, account).platform_post_id
    linkedin.engage(urn, likes=14, comments=6, first_level=4)

    # When its metrics are read
    metrics = platform.metrics(asked(account, urn))

    # Then GET /rest/socialActions/{encoded URN} with the version headers gave them
    assert metrics == PostMetrics(likes=14, replies=6, extra={"first_level_comments": 4})
    [call] = [r for r in linkedin.requests if r.path.startswith("/rest/socialActions/")]
    assert call.path == "/rest/socialActions/" + quote(urn, safe="")
    assert call.headers["linkedin-version"] and call.headers["x-restli-protocol-version"]
    assert call.headers["authorization"] == "Bearer good-token"


def test_linkedin_without_read_permission_or_post_is_permanent(client, linkedin):
    platform = LinkedInPlatform(client, api_url=linkedin.url)
    account = ref("linkedin", author=PERSON)
    urn = publish(platform, account).platform_post_id

    with pytest.raises(PermanentError, match="is gone"):
        platform.metrics(asked(account, "urn:li:share:1"))
    linkedin.can_read = False
    with pytest.raises(PermanentError, match="r_member_social"):
        platform.metrics(asked(account, urn))


def test_linkedin_429_and_expired_token(client, linkedin):
    platform = LinkedInPlatform(client, api_url=linkedin.url)
    linkedin.fail_next(1, 429, {"status": 429, "message": "Too many"}, {"Retry-After": "12"})

    with pytest.raises(RateLimited) as limited:
        platform.metrics(asked(ref("linkedin", author=PERSON), "urn:li:share:1"))
    with pytest.raises(NeedsAuth):
        platform.metrics(asked(ref("linkedin", token="expired-token"), "urn:li:share:1"))
    assert limited.value.retry_after == 12


# -- TikTok -------------------------------------------------------------------------------------


@pytest.fixture
def tiktok() -> Iterator[FakeTikTok]:
    with running(FakeTikTok()) as fake:
        yield fake  # type: ignore[misc]


def tiktok_publish(client: httpx.Client, server: FakeTikTok, privacy: str) -> tuple[Any, Any]:
    platform = TikTokPlatform(client, api_url=server.url, sleep=lambda _: None, poll_interval=0.01)
    account = AccountRef(
        id="acc-tt",
        tenant_id="t-1",
        platform="tiktok",
        handle="alice",
        settings={"privacy_level": privacy},
        credentials={"access_token": "act.good"},
    )
    store = CheckpointStore()
    video = {"url": "https://media.example.com/clip.mp4", "kind": "video"}
    result = platform.publish(store.request(account, "A #cat video", [video]))
    return platform, asked(account, result.platform_post_id, checkpoint=dict(store.state))


def test_tiktok_queries_the_video_by_its_id(client, tiktok):
    # Given a public video with counts
    platform, request = tiktok_publish(client, tiktok, "PUBLIC_TO_EVERYONE")
    tiktok.engage(
        request.platform_post_id, like_count=70, comment_count=8, share_count=5, view_count=3000
    )

    # When its metrics are read
    metrics = platform.metrics(request)

    # Then Query Videos was asked with the fields and the video id
    assert metrics == PostMetrics(likes=70, replies=8, reposts=5, views=3000)
    [call] = tiktok.calls(VIDEO_QUERY, "POST")
    assert call.query == {"fields": ["id,like_count,comment_count,share_count,view_count"]}
    assert call.json() == {"filters": {"video_ids": [request.platform_post_id]}}
    assert call.headers["authorization"] == "Bearer act.good"


def test_tiktok_finds_the_video_id_of_a_post_known_by_its_publish_id(client, tiktok):
    # Given a post whose publish came back before TikTok gave it a public id
    platform, request = tiktok_publish(client, tiktok, "PUBLIC_TO_EVERYONE")
    video_id = request.platform_post_id
    tiktok.engage(video_id, view_count=10)
    publish_id = request.checkpoint["publish_id"]

    # When its metrics are read by its publish_id
    metrics = platform.metrics(asked(request.account, publish_id, checkpoint=request.checkpoint))

    # Then status/fetch gave the video id, and the query asked for it
    assert metrics.views == 10
    assert tiktok.calls(VIDEO_QUERY)[-1].json() == {"filters": {"video_ids": [video_id]}}


def test_tiktok_without_a_public_video_id_waits(client, tiktok):
    platform, request = tiktok_publish(client, tiktok, "SELF_ONLY")
    calls = len(tiktok.calls(STATUS))

    with pytest.raises(Waiting, match="no public video id"):
        platform.metrics(request)
    assert len(tiktok.calls(STATUS)) == calls + 1
    assert not tiktok.calls(VIDEO_QUERY)


def test_tiktok_scope_deleted_video_rate_limit_and_expired_token(client, tiktok):
    platform, request = tiktok_publish(client, tiktok, "PUBLIC_TO_EVERYONE")

    tiktok.fail_next(
        1,
        429,
        {
            "data": {},
            "error": {"code": "rate_limit_exceeded", "message": "slow down", "log_id": "1"},
        },
        {"Retry-After": "20"},
        path=VIDEO_QUERY,
    )
    with pytest.raises(RateLimited) as limited:
        platform.metrics(request)
    assert limited.value.retry_after == 20
    tiktok.video_list = False
    with pytest.raises(PermanentError, match=r"video\.list scope"):
        platform.metrics(request)
    tiktok.video_list = True
    tiktok.delete(request.platform_post_id)
    with pytest.raises(PermanentError, match="not among the creator's videos"):
        platform.metrics(request)
    tiktok.tokens["act.good"] = "expired"
    with pytest.raises(NeedsAuth):
        platform.metrics(request)


# -- the sandbox --------------------------------------------------------------------------------


def sandbox_delivery(engine: Engine) -> tuple[AccountRef, SandboxDelivery]:
    tenant = add_tenant(engine)
    account_id = add_account(engine, tenant)
    account = AccountRef(id=account_id, tenant_id=tenant, platform="sandbox", handle="demo")
    result = stored(
        engine,
        SandboxPlatform(engine).publish(
            PublishRequest(account=account, idempotency_key="t-1", text="Hello")
        ),
    )
    with session_scope(engine) as session:
        delivery = session.get(SandboxDelivery, result.platform_post_id)
    assert delivery is not None
    return account, delivery


def test_sandbox_metrics_grow_with_the_delivery_age_deterministically(sqlite_engine):
    # Given a post the sandbox accepted
    account, delivery = sandbox_delivery(sqlite_engine)
    platform = SandboxPlatform(sqlite_engine)

    # When its metrics are read an hour and a day after it went out
    hour = platform.metrics(
        asked(account, delivery.id, now=delivery.created_at + timedelta(hours=1))
    )
    day = platform.metrics(asked(account, delivery.id, now=delivery.created_at + timedelta(days=1)))

    # Then they are the sandbox's formula at those ages, and they grew
    assert hour == sandbox_metrics(delivery.id, 3600)
    assert day == sandbox_metrics(delivery.id, 86400)
    assert day.views is not None and hour.views is not None and day.views > hour.views > 0
    assert day.impressions == day.views * 3 // 2
    assert sandbox_metrics(delivery.id, 0).views == 0


def test_sandbox_metrics_fail_as_told_and_unknown_posts_are_permanent(sqlite_engine):
    account, delivery = sandbox_delivery(sqlite_engine)
    platform = SandboxPlatform(sqlite_engine)
    told = {
        "rate_limited": RateLimited,
        "retryable": TransientError,
        "needs_auth": NeedsAuth,
        "gone": PermanentError,
        "permanent": PermanentError,
    }

    for kind, error in told.items():
        failing = AccountRef(
            id=account.id,
            tenant_id=account.tenant_id,
            platform="sandbox",
            handle="demo",
            settings={"metrics_fail": kind},
        )
        with pytest.raises(error):
            platform.metrics(asked(failing, delivery.id))
    with pytest.raises(PermanentError, match="no post"):
        platform.metrics(asked(account, "someone-else's", now=utcnow()))
