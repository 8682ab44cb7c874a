"""Cron entries: work that runs on a calendar, declared in one place (`entries`).

Each entry has a standard five-field expression (UTC) from settings. A firing is claimed by
inserting a `cron_runs` row keyed by (entry, fire time): with two schedulers running, one
insert succeeds and the other hits the primary key, so each firing happens once. A scheduler
that was down at the time fires the latest missed occurrence when it comes back, if that is
within `grace_seconds`; older ones are skipped (a weekly refresh need not run twice to catch
up).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cronsim import CronSim
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from herald_common.db import session_scope
from herald_common.models import CronRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CronEntry:
    """One calendar job: its name, its expression, and what it does (returns a summary)."""

    name: str
    expression: str
    action: Callable[[datetime], str]
    grace_seconds: float = 3600.0

    def latest(self, now: datetime) -> datetime:
        """The latest occurrence at or before `now`."""
        # CronSim's reverse iteration starts strictly before its start; minutes are its unit.
        start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return next(CronSim(self.expression, start, reverse=True))


@dataclass
class Cron:
    """Fires due entries; safe to run in every scheduler replica."""

    engine: Engine
    entries: list[CronEntry]
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    #: Firings this process already settled (fired, or found fired by another replica).
    _settled: set[tuple[str, datetime]] = field(default_factory=set)

    def fire_due(self, now: datetime) -> list[str]:
        """Fire every entry whose latest occurrence has not fired yet; the names fired here."""
        fired = []
        for entry in self.entries:
            at = entry.latest(now)
            key = (entry.name, at)
            if key in self._settled or (now - at).total_seconds() > entry.grace_seconds:
                continue
            if self._claim(entry, at, now):
                fired.append(entry.name)
                self._run(entry, at, now)
            self._settled.add(key)
        if len(self._settled) > 1000:  # old keys can never come back
            self._settled = {k for k in self._settled if (now - k[1]).days < 1}
        return fired

    def _claim(self, entry: CronEntry, at: datetime, now: datetime) -> bool:
        try:
            with session_scope(self.engine) as session:
                session.add(CronRun(name=entry.name, fire_at=at, fired_by=self.identity))
        except IntegrityError:
            return False  # another scheduler fired it
        return True

    def _run(self, entry: CronEntry, at: datetime, now: datetime) -> None:
        try:
            result = entry.action(now)
        except Exception as exc:
            log.exception("cron: %s (%s) failed", entry.name, at.isoformat())
            result = f"failed: {type(exc).__name__}"
        log.info("cron: %s (%s): %s", entry.name, at.isoformat(), result)
        with session_scope(self.engine) as session:
            run = session.get(CronRun, (entry.name, at))
            if run is not None:
                run.result = result[:1000]
                session.add(run)
