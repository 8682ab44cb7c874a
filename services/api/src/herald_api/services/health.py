"""Readiness: can this process serve requests right now?"""

from __future__ import annotations

import logging

from dramatiq.broker import Broker
from sqlalchemy import text
from sqlalchemy.engine import Engine

from herald_common.broker import broker_reachable
from herald_common.db import migrations_current

log = logging.getLogger(__name__)


def readiness(engine: Engine, broker: Broker) -> dict[str, str]:
    """The state of each dependency; `status` is `ready` only when all of them are fine."""
    checks = {"database": "ok", "migrations": "current", "broker": "ok"}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready", never a 500
        log.warning("ready: database unreachable: %s", type(exc).__name__)
        checks["database"] = "unreachable"
        checks["migrations"] = "unknown"
    else:
        try:
            if not migrations_current(engine):
                checks["migrations"] = "behind"
        except Exception as exc:
            log.warning("ready: could not read the migration state: %s", type(exc).__name__)
            checks["migrations"] = "unknown"
    try:
        if not broker_reachable(broker):
            checks["broker"] = "unreachable"
    except Exception as exc:
        log.warning("ready: broker check failed: %s", type(exc).__name__)
        checks["broker"] = "unreachable"
    ready = (checks["database"], checks["migrations"], checks["broker"]) == ("ok", "current", "ok")
    return {"status": "ready" if ready else "not_ready", **checks}
