"""4. The scheduler's time per tick with 1,000,000 future posts, over its time with none.

The design promises that a tick costs what is due, never what is scheduled. Two fresh databases
are migrated alike, each with a tenant and 100 sandbox accounts; one also gets 1,000,000 posts
with one target each, due between one hour and 30 days ahead (bulk SQL, then VACUUM ANALYZE
as autovacuum would leave them). A `Dispatcher` is built on each, in this process, exactly as
`herald-scheduler` builds it (a Redis broker, the platform registry, the settings), and
`tick()` is timed with nothing due on either, alternating between the two so that whatever
else the machine does at the time weighs on both alike. Each figure is the median of many
ticks after a warm-up; the ratio is median(with the posts) / median(without). The tick's parts
are timed the same way, to show where a difference comes from.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy.engine import Engine

from bench.infra import Scratch, libpq_url
from bench.seeding import connect, create_sandbox_accounts, create_tenant, insert_scheduled_posts
from herald_common.broker import build_broker
from herald_common.db import create_db_engine, migrate
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_scheduler.dispatching import Dispatcher

CHUNK = 100_000


@dataclass
class TickTimes:
    """Median milliseconds of a tick and of its parts, on one database."""

    tick_ms: float
    p90_ms: float
    parts_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class TickResult:
    """Ticks without and with the future posts."""

    future_posts: int
    empty: TickTimes
    loaded: TickTimes
    insert_seconds: float

    @property
    def ratio(self) -> float:
        return self.loaded.tick_ms / self.empty.tick_ms


def measure_ticks(
    scratch: Scratch,
    future_posts: int,
    *,
    ticks: int = 500,
    say: Callable[[str], None] = print,
) -> TickResult:
    """Time idle ticks on an empty database and on one with `future_posts` scheduled."""
    engines: list[Engine] = []
    try:
        dispatchers, urls, tenants = [], [], []
        for name in ("ticks_empty", "ticks_future"):
            url = scratch.create_database(name)
            # The environment's settings (SCHEDULER_BATCH_SIZE, …) on this run's database and
            # keys.
            settings = Settings(
                database_url=url,
                redis_url=scratch.redis_url,
                HERALD_BROKER_NAMESPACE=scratch.namespace(name),
            )
            engine = create_db_engine(settings.database_url, pool_size=2)
            engines.append(engine)
            migrate(engine)
            with connect(url) as conn:
                tenant_id = create_tenant(conn, "bench-ticks")
                create_sandbox_accounts(conn, tenant_id, 100)
                conn.commit()
            urls.append(url)
            tenants.append(tenant_id)
            dispatchers.append(
                Dispatcher(
                    engine=engine,
                    broker=build_broker(settings),
                    platforms=PlatformRegistry(engine, settings),
                    settings=settings,
                )
            )
        started = time.monotonic()
        _schedule_future(urls[1], tenants[1], future_posts, say)
        inserted = time.monotonic() - started
        empty, loaded = _time_ticks(dispatchers, ticks)
        return TickResult(future_posts, empty, loaded, inserted)
    finally:
        for engine in engines:
            engine.dispose()


def _schedule_future(url: str, tenant_id: str, count: int, say: Callable[[str], None]) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    spread = int(timedelta(days=30).total_seconds())
    with connect(url) as conn:
        for first in range(1, count + 1, CHUNK):
            size = min(CHUNK, count - first + 1)
            with conn.transaction():
                insert_scheduled_posts(
                    conn,
                    tenant_id,
                    size,
                    start,
                    spread_seconds=spread,
                    label="future",
                    first=first,
                )
            conn.commit()
            say(f"  … {first + size - 1:,}/{count:,} future posts written")
    # As autovacuum would leave them: statistics known, visibility map set.
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) posts, targets")


def _parts(dispatcher: Dispatcher) -> dict[str, Callable[[datetime], object]]:
    assert dispatcher.refreshes is not None and dispatcher.cron is not None
    return {
        "dispatch_due": dispatcher.dispatch_due,
        "resend_lost": dispatcher.resend_lost,
        "reconcile_stuck": dispatcher.reconcile_stuck,
        "token_refreshes": dispatcher.refreshes.dispatch_due,
        "cron": dispatcher.cron.fire_due,
    }


def _time_ticks(dispatchers: list[Dispatcher], ticks: int) -> tuple[TickTimes, TickTimes]:
    """Ticks (then each part) alternately on each dispatcher; their medians, in order."""
    for _ in range(max(20, ticks // 10)):  # warm-up: connections, statement caches
        for dispatcher in dispatchers:
            dispatcher.tick()
    totals: list[list[float]] = [[] for _ in dispatchers]
    for _ in range(ticks):
        for samples, dispatcher in zip(totals, dispatchers, strict=True):
            started = time.perf_counter()
            report = dispatcher.tick()
            samples.append((time.perf_counter() - started) * 1000)
            if report.dispatched or report.resent or report.reconciled:
                raise RuntimeError(f"a tick found work, so it is not the idle cost: {report}")
    parts: list[dict[str, list[float]]] = [{} for _ in dispatchers]
    for _ in range(ticks):
        for found, dispatcher in zip(parts, dispatchers, strict=True):
            for name, part in _parts(dispatcher).items():
                now = datetime.now(UTC)
                started = time.perf_counter()
                part(now)
                found.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    empty, loaded = (
        TickTimes(
            tick_ms=statistics.median(samples),
            p90_ms=sorted(samples)[int(len(samples) * 0.9)],
            parts_ms={name: statistics.median(values) for name, values in found.items()},
        )
        for samples, found in zip(totals, parts, strict=True)
    )
    return empty, loaded
