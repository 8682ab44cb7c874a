"""Reading snapshots back: the aggregates per account, platform and day, and one post's history,
over known snapshots on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from herald_api.schemas.analytics import AnalyticsQuery
from herald_api.services.analytics import aggregate, post_analytics
from herald_common.db import session_scope
from herald_common.errors import InvalidInput, NotFound
from herald_common.models import Account, MetricSnapshot, Post, PostStatus, Target, TargetStatus
from tests.conftest import add_tenant

DAY1, DAY2 = date(2026, 4, 10), date(2026, 4, 11)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@dataclass
class World:
    tenant: str
    sandbox: str  # account ids
    mastodon: str
    post_a: str  # post ids
    post_b: str
    a_sandbox: str  # target ids
    a_mastodon: str
    b_sandbox: str


def build(engine: Engine) -> World:
    """Two posts: A on a sandbox and a Mastodon account, B on the sandbox account only."""
    tenant = add_tenant(engine)
    with session_scope(engine) as session:
        sandbox = Account(tenant_id=tenant, platform="sandbox", handle="s")
        mastodon = Account(tenant_id=tenant, platform="mastodon", handle="m")
        post_a = Post(tenant_id=tenant, content="A", status=PostStatus.PUBLISHED)
        post_b = Post(tenant_id=tenant, content="B", status=PostStatus.PUBLISHED)
        session.add_all([sandbox, mastodon, post_a, post_b])
        session.flush()
        targets = [
            Target(
                tenant_id=tenant,
                post_id=post.id,
                account_id=account.id,
                platform=account.platform,
                status=TargetStatus.PUBLISHED,
                published_at=at(DAY1, 8),
                platform_url=f"https://example.org/{post.content}/{account.handle}",
            )
            for post, account in ((post_a, sandbox), (post_a, mastodon), (post_b, sandbox))
        ]
        session.add_all(targets)
    return World(tenant, sandbox.id, mastodon.id, post_a.id, post_b.id, *(t.id for t in targets))


def snap(engine: Engine, world: World, target_id: str, taken_at: datetime, **values: int) -> None:
    with session_scope(engine) as session:
        target = session.get_one(Target, target_id)
        session.add(
            MetricSnapshot(
                tenant_id=world.tenant,
                target_id=target_id,
                post_id=target.post_id,
                account_id=target.account_id,
                platform=target.platform,
                taken_at=taken_at,
                **values,
            )
        )


@pytest.fixture
def world(engine: Engine) -> World:
    world = build(engine)
    # Post A on the sandbox: three snapshots on day 1 (the latest counts), one on day 2
    snap(engine, world, world.a_sandbox, at(DAY1, 9), likes=1, views=10)
    snap(engine, world, world.a_sandbox, at(DAY1, 23, 59), likes=5, views=50, reposts=1)
    snap(engine, world, world.a_sandbox, at(DAY1, 12), likes=3, views=30)
    snap(engine, world, world.a_sandbox, at(DAY2, 0, 1), likes=8, views=80, reposts=2)
    # Post A on Mastodon: no views there
    snap(engine, world, world.a_mastodon, at(DAY1, 10), likes=4, reposts=1, replies=2)
    # Post B on the sandbox: day 1 only
    snap(engine, world, world.b_sandbox, at(DAY1, 15), likes=2, views=20)
    # Another tenant's snapshot on the same day is never counted
    other = build(engine)
    snap(engine, other, other.a_sandbox, at(DAY1, 11), likes=1000, views=1000)
    return world


def rows(engine: Engine, tenant: str, **query: object) -> list[dict]:
    with session_scope(engine) as session:
        if engine.dialect.name == "postgresql":
            # Days are UTC days whatever the connection's zone (here UTC+14).
            session.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
        out = aggregate(session, tenant, AnalyticsQuery.model_validate(query), today=DAY2)
    return [r.model_dump(exclude_none=False) for r in out.data]


def test_per_day_account_and_platform_the_latest_snapshot_of_each_target_is_summed(engine, world):
    data = rows(engine, world.tenant, start=DAY1, end=DAY2)

    empty = {"quotes": None, "impressions": None}
    assert data == sorted(
        [
            # day 1, sandbox: A's latest of the day (23:59) + B's
            {
                "day": DAY1,
                "account_id": world.sandbox,
                "platform": "sandbox",
                "posts": 2,
                "likes": 5 + 2,
                "views": 50 + 20,
                "reposts": 1,
                "replies": None,
                **empty,
            },
            {
                "day": DAY1,
                "account_id": world.mastodon,
                "platform": "mastodon",
                "posts": 1,
                "likes": 4,
                "views": None,  # Mastodon gave none
                "reposts": 1,
                "replies": 2,
                **empty,
            },
            # day 2: only A on the sandbox was pulled
            {
                "day": DAY2,
                "account_id": world.sandbox,
                "platform": "sandbox",
                "posts": 1,
                "likes": 8,
                "views": 80,
                "reposts": 2,
                "replies": None,
                **empty,
            },
        ],
        key=lambda r: (r["day"], r["account_id"], r["platform"]),
    )


def test_grouped_by_platform_each_targets_latest_in_the_range_is_summed_once(engine, world):
    data = rows(engine, world.tenant, start=DAY1, end=DAY2, group_by="platform")

    by_platform = {r["platform"]: r for r in data}
    # The sandbox: A's latest in the range (day 2) + B's — never day 1 and day 2 added up
    assert by_platform["sandbox"]["likes"] == 8 + 2
    assert by_platform["sandbox"]["views"] == 80 + 20
    assert by_platform["sandbox"]["posts"] == 2
    assert by_platform["sandbox"]["day"] is None and by_platform["sandbox"]["account_id"] is None
    assert by_platform["mastodon"]["likes"] == 4 and by_platform["mastodon"]["views"] is None


def test_filters_and_ranges(engine, world):
    only_day1 = rows(engine, world.tenant, start=DAY1, end=DAY1, group_by="day")
    mastodon = rows(engine, world.tenant, start=DAY1, end=DAY2, platform="mastodon")
    one_account = rows(engine, world.tenant, start=DAY1, end=DAY2, account_id=world.mastodon)
    everything = rows(engine, world.tenant, start=DAY1, end=DAY2, group_by="account")

    assert only_day1 == [
        {
            "day": DAY1,
            "account_id": None,
            "platform": None,
            "posts": 2,
            "likes": 5 + 2 + 4,
            "views": 50 + 20,
            "reposts": 2,
            "replies": 2,
            "quotes": None,
            "impressions": None,
        }
    ]
    assert [r["platform"] for r in mastodon] == ["mastodon"]
    assert [r["account_id"] for r in one_account] == [world.mastodon]
    assert {r["account_id"]: r["likes"] for r in everything} == {
        world.sandbox: 10,
        world.mastodon: 4,
    }
    # The default range is the 30 days up to today; nothing else falls in a later month
    assert (
        rows(engine, world.tenant, start=DAY2 + timedelta(days=1), end=DAY2 + timedelta(days=9))
        == []
    )
    assert len(rows(engine, world.tenant)) == 3


def test_ranges_that_make_no_sense_are_refused(engine, world):
    with pytest.raises(InvalidInput) as backwards:
        rows(engine, world.tenant, start=DAY2, end=DAY1)
    with pytest.raises(InvalidInput) as too_long:
        rows(engine, world.tenant, start=DAY1 - timedelta(days=366), end=DAY1)

    assert [e.field for e in backwards.value.errors] == ["end"]
    assert [e.field for e in too_long.value.errors] == ["start"]
    assert rows(engine, world.tenant, start=DAY1 - timedelta(days=365), end=DAY1) != []


def test_a_posts_history_per_target_oldest_first_and_its_latest_totals(engine, world):
    with session_scope(engine) as session:
        out = post_analytics(session, world.tenant, world.post_a)

    by_target = {t.target_id: t for t in out.targets}
    sandbox = by_target[world.a_sandbox]
    assert [s.likes for s in sandbox.history] == [1, 3, 5, 8]  # oldest first
    assert sandbox.latest is not None and sandbox.latest.taken_at == at(DAY2, 0, 1)
    assert by_target[world.a_mastodon].history[0].replies == 2
    assert sandbox.platform_url == "https://example.org/A/s"
    # The totals are each target's latest, summed; none gave quotes
    assert (out.totals.likes, out.totals.views, out.totals.reposts) == (8 + 4, 80, 2 + 1)
    assert out.totals.quotes is None


def test_a_post_without_snapshots_and_another_tenants_post(engine, world):
    other = add_tenant(engine, "Globex")
    snap(engine, world, world.b_sandbox, at(DAY2, 1), likes=9)
    with session_scope(engine) as session:
        mine = post_analytics(session, world.tenant, world.post_b)
        with pytest.raises(NotFound):
            post_analytics(session, other, world.post_a)

    assert mine.totals.likes == 9
    with session_scope(engine) as session:
        session.add(Post(id="lonely", tenant_id=world.tenant, content="x"))
    with session_scope(engine) as session:
        lonely = post_analytics(session, world.tenant, "lonely")
    assert lonely.targets == [] and lonely.totals.likes is None
