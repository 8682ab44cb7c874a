"""Pacing on real Redis: the counters are shared by every publisher process and thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from dramatiq.rate_limits.backends import RedisBackend

from herald_common.models import Target, TargetStatus
from herald_common.pacing import Pacer
from herald_common.platforms import PlatformRegistry
from herald_publisher.publishing import Publisher, Result
from tests.conftest import add_account, add_post, add_tenant, make_settings
from tests.publisher.test_publishing import deliveries, load, queue

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_two_publishers_share_one_pace(pg_engine, redis_server_url, redis_namespace):
    # Given an account allowed 3 posts a minute, 8 posts due now, and two publishers (as two
    # worker processes would be) whose pacers talk to the same Redis
    tenant = add_tenant(pg_engine)
    account = add_account(pg_engine, tenant, settings={"pace_limit": 3, "pace_window_seconds": 60})
    targets = [add_post(pg_engine, tenant, [account])[1][0] for _ in range(8)]
    versions = {t: queue(pg_engine, t) for t in targets}
    client = redis.Redis.from_url(redis_server_url)
    settings = make_settings()
    publishers = [
        Publisher(
            engine=pg_engine,
            platforms=PlatformRegistry(pg_engine, settings),
            settings=settings,
            pacer=Pacer(RedisBackend(client=client), namespace=redis_namespace),
        )
        for _ in range(2)
    ]

    # When 8 threads handle the messages at once, alternating publishers
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(
                lambda i: publishers[i % 2].publish(targets[i], versions[targets[i]]), range(8)
            )
        )

    # Then exactly 3 went out and 5 wait, whichever publisher handled them
    assert results.count(Result.PUBLISHED) == 3
    assert results.count(Result.PACED) == 5
    assert len(deliveries(pg_engine)) == 3
    rows = [load(pg_engine, Target, t) for t in targets]
    assert (
        sum(1 for t in rows if t.status == TargetStatus.RETRYING and t.error_kind == "paced") == 5
    )
    client.close()
