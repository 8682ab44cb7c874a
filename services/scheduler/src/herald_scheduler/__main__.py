"""`herald-scheduler`: the loop that turns time into messages. Safe to run twice."""

from __future__ import annotations

import os

# One process, serving its own registry: a pod-wide PROMETHEUS_MULTIPROC_DIR (set for gunicorn
# or Dramatiq) must not send its samples to files. Before prometheus_client is imported.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import logging
import threading
import time

from herald_common.broker import build_broker
from herald_common.db import create_db_engine
from herald_common.ledger import process_name
from herald_common.logs import Outage
from herald_common.metrics import LAST_TICK, TARGETS_DISPATCHED, TICK_DURATION
from herald_common.platforms import PlatformRegistry
from herald_common.queues import SCHEDULER_ROLE, queue_store
from herald_common.settings import get_settings
from herald_common.stopping import stop_on_signals
from herald_common.workers import configure_logging
from herald_scheduler.dispatching import Dispatcher
from herald_scheduler.observing import start_observer

log = logging.getLogger("herald_scheduler")


def run(dispatcher: Dispatcher, stop: threading.Event, tick_seconds: float) -> None:
    """Tick until `stop` is set. A failing tick is logged and the loop goes on.

    The scheduler's heartbeat comes from this loop, not from a thread of its own: a loop that
    hangs stops beating, and the admin health says so.
    """
    assert dispatcher.sender is not None
    sender = dispatcher.sender.start()
    try:
        _loop(dispatcher, stop, tick_seconds)
    finally:
        # What is still held goes to the broker now, delayed to its second.
        sender.stop()


def _loop(dispatcher: Dispatcher, stop: threading.Event, tick_seconds: float) -> None:
    failures = 0
    store, member = queue_store(dispatcher.broker), process_name()
    beat_every, last_beat = dispatcher.settings.heartbeat_interval_seconds, 0.0
    beat_outage = Outage(log, "heartbeat: could not beat")
    while not stop.is_set():
        started = time.monotonic()
        try:
            report = dispatcher.tick()
            failures = 0
            TICK_DURATION.observe(time.monotonic() - started)
            LAST_TICK.set(time.time())
            TARGETS_DISPATCHED.inc(report.dispatched)
            if started - last_beat >= beat_every:
                last_beat = started
                # Not a failed tick when Redis is away: the schedule is in the database.
                try:
                    store.beat(SCHEDULER_ROLE, member, time.time())
                except Exception as exc:
                    beat_outage.failed(exc)
                else:
                    beat_outage.succeeded()
            if report.sweeps:
                log.info("sweeps: %s", ", ".join(f"{k}={v}" for k, v in report.sweeps.items()))
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
    try:
        store.leave(SCHEDULER_ROLE, member)
    except Exception as exc:
        log.warning("could not say the scheduler stopped: %s", type(exc).__name__)


def main() -> None:
    """Start the scheduler loop; SIGTERM/SIGINT stop it after the current tick."""
    settings = get_settings()
    configure_logging(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    engine = create_db_engine(settings.database_url, pool_size=3)
    broker = build_broker(settings)
    dispatcher = Dispatcher(
        engine=engine,
        broker=broker,
        platforms=PlatformRegistry(engine, settings),
        settings=settings,
    )
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        start_observer(engine, queue_store(broker), settings, stop)
    log.info(
        "scheduler started (tick %.2fs, metrics on %s)",
        settings.scheduler_tick_seconds,
        f"{settings.metrics_host}:{settings.metrics_port}" if settings.metrics_port else "none",
    )
    run(dispatcher, stop, settings.scheduler_tick_seconds)
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
