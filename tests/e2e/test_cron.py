"""The weekly token refresh is a cron entry that fires once per occurrence with two scheduler
processes running, on PostgreSQL and Redis, and refreshes each account once per firing.

The entry's expression is set to every minute here, so the test needs no Sunday midnight:
the schedulers start inside the current minute's grace and both try to fire it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from herald_common.crypto import generate_key
from herald_common.db import create_db_engine
from herald_embedded.stack import Stack, wait_for
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json
from tests.platforms.servers import FakeMastodon, running

ENTRY = "token-refresh-weekly"
VERIFY = "/api/v1/accounts/verify_credentials"


@pytest.fixture(scope="module")
def mastodon() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """API and token-refresher only: the test starts the schedulers itself."""
    env = {
        "HERALD_SECRET_KEYS": generate_key(),
        "PLATFORM_ALLOW_PRIVATE_ADDRESSES": "true",
        "TOKEN_REFRESH_CRON": "* * * * *",
    }
    logdir = tmp_path_factory.mktemp("cron-logs")
    with e2e_stack(pg_url, redis_server_url, logdir, env) as stack:
        stack.migrate()
        stack.start_api()
        stack.start_token_refresher()
        stack.wait_ready()
        stack.api_key = stack.create_tenant()
        yield stack


def cron_runs(pg_url: str) -> list[tuple[str, str]]:
    engine = create_db_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT fire_at, fired_by FROM cron_runs WHERE name = :name ORDER BY fire_at"),
                {"name": ENTRY},
            ).all()
        return [(row[0].isoformat(), row[1]) for row in rows]
    finally:
        engine.dispose()


def test_the_weekly_refresh_fires_once_with_two_schedulers(stack, mastodon, pg_url):
    # Given a connected Mastodon account (its token checked once when it was connected)
    with stack.client() as client:
        post_json(
            client,
            "/v1/accounts/connect/mastodon",
            {"instance_url": mastodon.url, "access_token": mastodon.token},
        )
    assert len(mastodon.calls(VERIFY)) == 1
    already = {fire_at for fire_at, _ in cron_runs(pg_url)}

    # When two scheduler processes start side by side, both inside the entry's grace
    # Not in the last seconds of a minute: a scheduler starting then fires the minute that
    # ends and, a moment later, the next one, and the second firing's refresh request meets
    # the first one's still running (one refresh for two firings, rightly).
    second = datetime.now(UTC).second
    if second >= 50:
        time.sleep(61 - second)
    stack.start_scheduler("scheduler")
    stack.start_scheduler("scheduler-2")

    # Then the entry fires, each firing in exactly one of the two schedulers, and the account
    # is refreshed (its token checked again) once per firing. Read until the processes have
    # caught up with each other: the row is written before the run, the log line after it.
    def fired_in(fire_at: str) -> list[str]:
        return [
            name
            for name in ("scheduler", "scheduler-2")
            if f"cron: {ENTRY} ({fire_at})" in stack.log(name)
        ]

    def settled() -> list[tuple[str, str]] | None:
        if not all("scheduler started" in stack.log(n) for n in ("scheduler", "scheduler-2")):
            return None  # both must be up: the later one then meets the firing already taken
        runs = [r for r in cron_runs(pg_url) if r[0] not in already]
        if not runs or any(len(fired_in(fire_at)) != 1 for fire_at, _ in runs):
            return None
        return runs if len(mastodon.calls(VERIFY)) == 1 + len(runs) else None

    runs = wait_for(settled, timeout=40, interval=0.2, what="one firing and one refresh each")
    # A moment later (many ticks of both), still one firing each: the other did not add one
    time.sleep(1.5)
    for fire_at, _ in runs:
        assert len(fired_in(fire_at)) == 1, fire_at
