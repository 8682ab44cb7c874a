"""6. What one published target costs the database: statements and transactions, counted.

The counts are taken where the statements are sent, not read from the code: SQLAlchemy's
`before_cursor_execute` event sees every statement Herald's code sends through its engine, and
`commit`/`rollback` every transaction's end. The code that runs is the services' own: the
scheduler's batch (`lifecycle.queue_due`, what `Dispatcher.dispatch_due` runs) and
`Publisher.publish` for each target, as the `publish_target` actor calls it, in this process
and one at a time, on a fresh database with the zero-latency sandbox. No broker is involved:
the messages are the (target id, version) pairs the batch returned. The publish path's hot
statements go straight to psycopg on PostgreSQL (herald_common.hot), whose hooks count them.

Reported per published target: the publisher's statements (by kind) and transactions, the
scheduler's share of its batch, and the publisher's CPU per target in this process (without
Dramatiq, so below what the service spends). With `profile`, the publish loop also runs under
cProfile and the top functions by own time are printed.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.infra import Scratch
from bench.seeding import connect, create_sandbox_accounts, create_tenant, insert_scheduled_posts
from herald_common import hot, lifecycle
from herald_common.db import create_db_engine, migrate
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_publisher.publishing import Publisher, Result


@dataclass
class StatementCount:
    """Statements and transactions seen on an engine."""

    statements: dict[str, int] = field(default_factory=dict)  # by kind (a Counter would not
    transactions: int = 0  # survive dataclasses.asdict: it counts the pairs it is given)

    def add(self, sql: str) -> None:
        kind = sql.split(None, 1)[0].upper()
        self.statements[kind] = self.statements.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.statements.values())


@dataclass
class StatementsResult:
    """What one published sandbox target cost, averaged over `targets`."""

    targets: int
    published: int
    publisher: StatementCount
    scheduler: StatementCount
    cpu_ms_per_target: float
    profile: str = ""

    def per_target(self, count: StatementCount) -> tuple[float, float]:
        n = max(self.published, 1)
        return count.total / n, count.transactions / n


class Counting:
    """Counts what an engine sends while `active` names the part being counted: through
    SQLAlchemy (its events) and straight to the driver (herald_common.hot's hooks)."""

    def __init__(self, engine: Engine) -> None:
        self.parts: dict[str, StatementCount] = {}
        self.active: str | None = None
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)
        hot.statement_hooks.append(self._hot)

    def close(self) -> None:
        hot.statement_hooks.remove(self._hot)

    def _hot(self, sql: str) -> None:
        if self.active is None:
            return
        part = self.part(self.active)
        if sql in ("COMMIT", "ROLLBACK"):
            part.transactions += 1
        else:
            part.add(sql)

    def part(self, name: str) -> StatementCount:
        return self.parts.setdefault(name, StatementCount())

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.active is not None:
            part = self.part(self.active)
            part.add(statement)
            # A statement run in autocommit is a transaction of its own.
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                part.transactions += 1

    def _end(self, conn: Any) -> None:
        if (
            self.active is not None
            and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT"
        ):
            self.part(self.active).transactions += 1


def measure_statements(
    scratch: Scratch, targets: int, *, profile: bool = False, say: Callable[[str], None] = print
) -> StatementsResult:
    """Schedule `targets` sandbox targets due now, queue them, publish each; count."""
    url = scratch.create_database("statements")
    settings = Settings(database_url=url, redis_url=None, HERALD_ENV="test")
    engine = create_db_engine(url, pool_size=2)
    try:
        migrate(engine)
        with connect(url) as conn:
            tenant_id = create_tenant(conn, "bench-statements")
            create_sandbox_accounts(conn, tenant_id, 100)
            insert_scheduled_posts(
                conn, tenant_id, targets, datetime.now(UTC) - timedelta(seconds=1), label="stmt"
            )
            conn.commit()
        counting = Counting(engine)
        publisher = Publisher(
            engine=engine, platforms=PlatformRegistry(engine, settings), settings=settings
        )
        counting.active = "scheduler"
        queued: list[lifecycle.Queued] = []
        while batch := _queue_batch(engine, settings):
            queued += batch
        counting.active = "publisher"
        results: Counter[str] = Counter()
        profiler = cProfile.Profile(time.process_time) if profile else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for item in queued:
            results[publisher.publish(item.target_id, item.version)] += 1
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - started
        counting.active = None
        counting.close()
        published = results[Result.PUBLISHED]
        say(f"  {published:,}/{targets:,} published in-process, outcomes {dict(results)}")
        return StatementsResult(
            targets=targets,
            published=published,
            publisher=counting.part("publisher"),
            scheduler=counting.part("scheduler"),
            cpu_ms_per_target=cpu / max(published, 1) * 1000,
            profile=_top(profiler) if profiler is not None else "",
        )
    finally:
        engine.dispose()


def _queue_batch(engine: Engine, settings: Settings) -> list[lifecycle.Queued]:
    now = datetime.now(UTC)
    with engine.begin() as db:
        return lifecycle.queue_due(db, now, settings.scheduler_batch_size, now)


def _top(profiler: cProfile.Profile, n: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(n)
    return out.getvalue()
