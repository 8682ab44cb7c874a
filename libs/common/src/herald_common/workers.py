"""What every worker service shares: the `dramatiq` launcher, the broker with Herald's worker
middleware, and lazily built dependencies.

Nothing here imports prometheus_client at module level: `run_worker` must set the metrics
directory before the first import (see herald_common.metrics).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_common import greenwait
from herald_common.broker import build_broker
from herald_common.contracts import CONTRACTS, queue_concurrency
from herald_common.db import create_db_engine
from herald_common.logs import configure_logging
from herald_common.multiproc import use_metrics_dir
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings, get_settings
from herald_common.webhooks import Events, events_for

T = TypeVar("T")

__all__ = [
    "Deps",
    "configure_logging",
    "lazy",
    "process_engine",
    "run_worker",
    "service_deps",
    "worker_broker",
]


def lazy(factory: Callable[[], T]) -> Callable[[], T]:
    """Build on first use, once per process (Dramatiq imports actors before it forks)."""
    return lru_cache(maxsize=1)(factory)


@lru_cache(maxsize=1)
def process_engine() -> Engine:
    """This process's database engine (its driver waiting on gevent's loop, on gevent)."""
    greenwait.use_on_gevent()
    settings = get_settings()
    return create_db_engine(settings.database_url, pool_size=settings.database_pool_size)


@dataclass(frozen=True)
class Deps:
    """What a worker service's actors are built with. The engine and the platform registry
    are factories: a `dramatiq` process builds them on first message, after it forked; the
    embedded stack hands in the ones it already has."""

    settings: Settings
    broker: Broker
    engine: Callable[[], Engine]
    platforms: Callable[[], PlatformRegistry]

    def events(self) -> Events:
        """Tenants' outcome webhooks on this process's engine and broker (built once)."""
        return events_for(self.engine(), self.broker, self.settings)


def service_deps(settings: Settings, broker: Broker) -> Deps:
    """The Deps of a worker service process."""

    @lazy
    def platforms() -> PlatformRegistry:
        return PlatformRegistry(process_engine(), settings)

    return Deps(settings=settings, broker=broker, engine=process_engine, platforms=platforms)


def run_worker(module: str, queues: list[str], argv: list[str] | None = None) -> None:
    """Replace this process with `dramatiq MODULE --queues …` at the queue's concurrency.

    Jobs in flight come from the queue's setting (PUBLISH_WORKER_CONCURRENCY, QUEUE_CONCURRENCY,
    …), summed when one service drains several queues (content and content-regen) so that each
    keeps its own; processes from WORKER_PROCESSES (default 1: scale out with more pods). They
    run on threads, or on gevent's greenlets (`dramatiq-gevent`) when the queues' contracts say
    so (the publisher's) or WORKER_POOL asks.
    """
    settings = get_settings()
    if not settings.broker_url:
        sys.exit("a worker service needs Redis: set REDIS_URL (or REDIS_HOST); see `make run`")
    threads = sum(queue_concurrency(settings, queue) for queue in queues)
    processes = os.environ.get("WORKER_PROCESSES", "1")
    # Consumers wake this often (ms) to move due delayed messages: 1000 by default, which
    # would make posts up to a second late.
    os.environ.setdefault("dramatiq_worker_timeout", "100")
    if settings.metrics_port:
        expose_metrics(settings)
    # Dramatiq's command line, from this interpreter (a service started by its full path runs
    # without its virtual environment on PATH), logging in Herald's format (herald_common.launch).
    os.environ["HERALD_WORKER_POOL"] = worker_pool(settings, queues)
    args = [sys.executable, "-m", "herald_common.launch", module, "--queues", *queues]
    args += ["--threads", str(threads)]
    # On SIGTERM the jobs in hand may run to their time limit (a month of posts: 30 min);
    # Dramatiq's own default (10 min) would cut the longest short.
    args += ["--worker-shutdown-timeout", str(shutdown_timeout_ms(queues))]
    args += ["--processes", processes, *(argv if argv is not None else sys.argv[1:])]
    os.execv(args[0], args)


#: Beyond the longest time limit, for the stop itself (acks, heartbeats, ledger flush).
SHUTDOWN_MARGIN_MS = 10_000


def shutdown_timeout_ms(queues: list[str]) -> int:
    """How long a stopping worker waits for its jobs in hand: the longest time limit of the
    queues' contracts, and a margin. A pod's terminationGracePeriodSeconds must exceed it."""
    longest = max(c.time_limit_ms for c in CONTRACTS if c.queue in queues)
    return longest + SHUTDOWN_MARGIN_MS


def worker_pool(settings: Settings, queues: list[str]) -> str:
    """`gevent` when WORKER_POOL says so, or every queue's contract does; else `threads`."""
    if settings.worker_pool is not None:
        return settings.worker_pool
    pools = {contract.pool for contract in CONTRACTS if contract.queue in queues}
    return "gevent" if pools == {"gevent"} else "threads"


def expose_metrics(settings: Settings) -> None:
    """Point Dramatiq's Prometheus middleware (and prometheus_client) at an empty directory
    and at METRICS_HOST:METRICS_PORT, for the `dramatiq` process about to replace this one."""
    directory = use_metrics_dir(settings.metrics_dir, prefix="herald-worker-metrics-")
    # Dramatiq reads these lower-case names (dramatiq/middleware/prometheus.py).
    os.environ["dramatiq_prom_db"] = directory  # noqa: SIM112
    os.environ["dramatiq_prom_host"] = settings.metrics_host  # noqa: SIM112
    os.environ["dramatiq_prom_port"] = str(settings.metrics_port)  # noqa: SIM112


def worker_broker(settings: Settings) -> Broker:
    """The broker a worker service consumes from: Herald's job records and heartbeats, and
    Dramatiq's Prometheus exposition when `run_worker` set it up (METRICS_PORT ≠ 0)."""
    from herald_common import ledger

    broker = build_broker(settings)
    ledger.add_to(broker, settings.heartbeat_interval_seconds)
    if os.environ.get("dramatiq_prom_db"):  # noqa: SIM112
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    return broker
