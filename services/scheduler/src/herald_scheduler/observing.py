"""The scheduler's gauges: every METRICS_INTERVAL_SECONDS it reads the system (health.py) and
sets them. A thread of its own, so a slow reading never delays a tick.

Every label combination is set on every reading, zeros included, so a count that falls to
zero shows zero rather than its last non-zero value.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from herald_common.health import Reading, read_system
from herald_common.logs import Outage
from herald_common.metrics import ACCOUNTS, OLDEST_DUE_AGE, QUEUE_MESSAGES, TARGETS, WORKERS_ALIVE
from herald_common.models import AccountStatus
from herald_common.platforms import PLATFORMS
from herald_common.queues import QueueStore
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)
QUEUE_STATES = ("waiting", "delayed", "active", "failed")


def export(reading: Reading) -> None:
    """Set every gauge from one reading."""
    for name, counts in reading.queues.items():
        for state in QUEUE_STATES:
            QUEUE_MESSAGES.labels(name, state).set(getattr(counts, state))
    OLDEST_DUE_AGE.set(reading.oldest_due_seconds)
    for status, count in reading.targets.items():
        TARGETS.labels(status).set(count)
    for platform in sorted({*PLATFORMS, *(p for p, _ in reading.accounts)}):
        for status in AccountStatus:
            ACCOUNTS.labels(platform, str(status)).set(reading.accounts.get((platform, status), 0))
    for role, members in reading.workers.items():
        WORKERS_ALIVE.labels(role).set(len(members))


def observe(engine: Engine, store: QueueStore, settings: Settings, stop: threading.Event) -> None:
    """Read and export until `stop` is set; a failed reading is logged and tried again."""
    outage = Outage(log, "metrics: could not read the system", traceback=True)
    while not stop.is_set():
        try:
            export(read_system(engine, store, settings, utcnow()))
        except Exception as exc:
            outage.failed(exc)
        else:
            outage.succeeded()
        stop.wait(settings.metrics_interval_seconds)


def start_observer(
    engine: Engine, store: QueueStore, settings: Settings, stop: threading.Event
) -> threading.Thread:
    """The observing thread, started."""
    thread = threading.Thread(
        target=observe, args=(engine, store, settings, stop), name="metrics", daemon=True
    )
    thread.start()
    return thread
