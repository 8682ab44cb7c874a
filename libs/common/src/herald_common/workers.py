"""What every worker service shares: lazily built dependencies and the `dramatiq` launcher."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from sqlalchemy.engine import Engine

from herald_common.contracts import queue_concurrency
from herald_common.db import create_db_engine
from herald_common.logs import configure_logging
from herald_common.settings import get_settings

T = TypeVar("T")

__all__ = ["configure_logging", "lazy", "process_engine", "run_worker"]


def lazy(factory: Callable[[], T]) -> Callable[[], T]:
    """Build on first use, once per process (Dramatiq imports actors before it forks)."""
    return lru_cache(maxsize=1)(factory)


@lru_cache(maxsize=1)
def process_engine() -> Engine:
    """This process's database engine."""
    settings = get_settings()
    return create_db_engine(settings.database_url, pool_size=settings.database_pool_size)


def run_worker(module: str, queues: list[str], argv: list[str] | None = None) -> None:
    """Replace this process with `dramatiq MODULE --queues …` at the queue's concurrency.

    Threads come from the queue's setting (PUBLISH_WORKER_CONCURRENCY, QUEUE_CONCURRENCY, …);
    processes from WORKER_PROCESSES (default 1: scale out with more pods instead).
    """
    settings = get_settings()
    if not settings.broker_url:
        sys.exit("a worker service needs Redis: set REDIS_URL (or REDIS_HOST); see `make run`")
    threads = max(queue_concurrency(settings, queue) for queue in queues)
    processes = os.environ.get("WORKER_PROCESSES", "1")
    # Consumers wake this often (ms) to move due delayed messages: 1000 by default, which
    # would make posts up to a second late.
    os.environ.setdefault("dramatiq_worker_timeout", "100")
    args = ["dramatiq", module, "--queues", *queues, "--threads", str(threads)]
    args += ["--processes", processes, *(argv if argv is not None else sys.argv[1:])]
    os.execvp(args[0], args)
