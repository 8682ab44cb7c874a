"""`herald-scheduler`: the loop that turns time into messages. Safe to run twice."""

from __future__ import annotations

import logging
import signal
import threading
import time

from herald_common.broker import build_broker
from herald_common.db import create_db_engine
from herald_common.platforms import PlatformRegistry
from herald_common.settings import get_settings
from herald_common.workers import configure_logging
from herald_scheduler.dispatching import Dispatcher

log = logging.getLogger("herald_scheduler")


def run(dispatcher: Dispatcher, stop: threading.Event, tick_seconds: float) -> None:
    """Tick until `stop` is set. A failing tick is logged and the loop goes on."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            report = dispatcher.tick()
            failures = 0
            if report.dispatched or report.resent or report.reconciled or report.refreshes:
                log.info(
                    "tick: dispatched=%d resent=%d reconciled=%d refreshes=%d send_failed=%d",
                    report.dispatched,
                    report.resent,
                    report.reconciled,
                    report.refreshes,
                    report.send_failed,
                )
            # A full batch means more is due right now: go again without sleeping.
            if report.dispatched >= dispatcher.settings.scheduler_batch_size:
                continue
        except Exception:
            failures += 1
            log.exception("tick failed (%d in a row)", failures)
        pause = tick_seconds * min(2**failures, 40) if failures else tick_seconds
        stop.wait(max(0.0, pause - (time.monotonic() - started)))


def main() -> None:
    """Start the scheduler loop; SIGTERM/SIGINT stop it after the current tick."""
    settings = get_settings()
    configure_logging(settings)
    engine = create_db_engine(settings.database_url, pool_size=2)
    dispatcher = Dispatcher(
        engine=engine,
        broker=build_broker(settings),
        platforms=PlatformRegistry(engine, settings),
        settings=settings,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("scheduler started (tick %.2fs)", settings.scheduler_tick_seconds)
    run(dispatcher, stop, settings.scheduler_tick_seconds)
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
