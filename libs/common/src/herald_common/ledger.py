"""Dramatiq middleware every worker service runs: the record of finished jobs, and heartbeats.

- `JobLedger` keeps a record of each job that finished (queues.QueueStore.record_completed),
  which the queue admin API lists as `completed`, and why each dead letter died; the
  scheduler prunes old records. Records of finished jobs are written in batches, a few times a
  second, by a thread of the worker's: one Redis round trip per message was a fifth of a
  publish's broker work. A worker killed outright loses its last fraction of a second of
  records (what an operator reads, never what decides a job's fate).
- `Heartbeat` says, every few seconds, that this process drains its queues; the admin health
  and `herald_workers_alive` count the processes that beat within HEARTBEAT_TIMEOUT_SECONDS.
  `Beater` is the thread behind it, also used by the scheduler.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware, Retries
from dramatiq.worker import Worker

from herald_common.logs import REQUEST_ID, Outage
from herald_common.queues import Finished, QueueStore, queue_store

log = logging.getLogger(__name__)

#: How often a worker writes the records of the jobs it finished.
FLUSH_EVERY_SECONDS = 0.25


def process_name() -> str:
    """This process as heartbeats name it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobLedger(Middleware):
    """Records every job that finished, and why every dead letter died.

    The records are written once the broker has acked or dead-lettered the message: by then
    the actor's time limit is disarmed (a slow Redis write inside it could raise
    TimeLimitExceeded into a job that had finished, and have it run again), and what is
    recorded is what the broker did.
    """

    def __init__(self, flush_every: float = FLUSH_EVERY_SECONDS) -> None:
        self._started: dict[str, float] = {}
        self._flush_every = flush_every
        self._finished: list[Finished] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._broker: Broker | None = None

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        self._broker = broker
        if self._flusher is None:
            self._stop.clear()
            self._flusher = threading.Thread(target=self._flush_loop, name="ledger", daemon=True)
            self._flusher.start()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        flusher, self._flusher = self._flusher, None
        self._stop.set()
        if flusher is not None:
            flusher.join(timeout=self._flush_every + 5)
        self.flush()

    def before_delay_message(self, broker: Broker, message: MessageProxy) -> None:
        queue_store(broker).held(message)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        self._started[message.message_id] = time.monotonic()
        queue_store(broker).started(message)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        queue_store(broker).finished(message)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        queue_store(broker).finished(message)

    def after_ack(self, broker: Broker, message: MessageProxy) -> None:
        started = self._started.pop(message.message_id, None)
        if message.queue_name.endswith(".DQ"):
            return  # a delayed message moved onto its queue: it has not run yet
        duration_ms = (time.monotonic() - started) * 1000 if started is not None else 0.0
        finished = (message, time.time(), duration_ms)
        if self._flusher is None:  # no worker thread to batch them: write it now
            self._write(broker, [finished])
            return
        with self._lock:
            self._finished.append(finished)

    def flush(self) -> None:
        """Write the records of the jobs finished since the last flush."""
        with self._lock:
            finished, self._finished = self._finished, []
        if finished and self._broker is not None:
            self._write(self._broker, finished)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._flush_every):
            self.flush()

    @staticmethod
    def _write(broker: Broker, finished: list[Finished]) -> None:
        try:
            queue_store(broker).record_completed_many(finished)
        except Exception as exc:  # a missing record is not worth more than a warning
            log.warning("ledger: could not record %d finished job(s): %s", len(finished), exc)

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:
        self._started.pop(message.message_id, None)
        # The exception the actor raised; none when a middleware refused the message before it
        # ran (an age limit, say).
        exception = getattr(message, "_exception", None) or MessageRejected(
            "rejected before it ran (by a middleware, e.g. past its age limit)"
        )
        try:
            attempts = failed_runs(broker, message, exception)
            queue_store(broker).record_failed(message, exception, attempts=attempts, at=time.time())
        except Exception as exc:
            log.warning("ledger: could not record why %s died: %s", message.message_id, exc)


class MessageRejected(Exception):
    """Stands for the exception of a message dead-lettered without running."""


def failed_runs(broker: Broker, message: MessageProxy, exception: BaseException) -> int:
    """How many runs of `message` failed, this one included.

    Retries counts a failure in the message's `retries` option, except an exception the actor
    `throws` (given up at once, uncounted).
    """
    retries = int(message.options.get("retries", 0))
    if isinstance(exception, MessageRejected):
        return retries
    throws = message.options.get("throws") or broker.get_actor(message.actor_name).options.get(
        "throws"
    )
    return retries + 1 if throws and isinstance(exception, throws) else retries


def add_to(broker: Broker, heartbeat_interval: float) -> None:
    """Add the job ledger, the heartbeat and the request ids to a worker's broker.

    The ledger goes before Dramatiq's Retries: after-hooks run in reverse order, so its
    after_process_message follows Retries' decision between a retry and a dead letter.
    """
    broker.add_middleware(RequestIds())
    broker.add_middleware(JobLedger(), before=Retries)
    broker.add_middleware(Heartbeat(heartbeat_interval))


class RequestIds(Middleware):
    """While a message runs, REQUEST_ID is the id of the API request that caused it (its
    `request_id` option), so its log lines, the attempt it writes and the messages it sends
    name that request. One dict lookup and a context variable per message."""

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        REQUEST_ID.set(message.options.get("request_id"))

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        REQUEST_ID.set(None)

    after_skip_message = after_process_message


class Beater:
    """A thread that beats for `roles` every `interval` seconds until stopped."""

    def __init__(
        self, store: QueueStore, roles: Iterable[str], interval: float, member: str | None = None
    ) -> None:
        self.store = store
        self.roles = sorted(set(roles))
        self.interval = interval
        self.member = member or process_name()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> Beater:
        self._thread.start()
        return self

    def beat(self) -> None:
        """One beat for every role now."""
        now = time.time()
        for role in self.roles:
            self.store.beat(role, self.member, now)

    def _run(self) -> None:
        outage = Outage(log, "heartbeat: could not beat")
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.succeeded()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop beating and say so, so that health does not wait for the timeout."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
        for role in self.roles:
            try:
                self.store.leave(role, self.member)
            except Exception as exc:
                log.warning("heartbeat: could not leave %s: %s", role, type(exc).__name__)


class Heartbeat(Middleware):
    """Beats for each queue a worker drains, from boot to shutdown."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._beaters: dict[int, Beater] = {}

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        queues = worker.consumer_whitelist or broker.get_declared_queues()
        roles = {q.removesuffix(".DQ") for q in queues}
        self._beaters[id(worker)] = Beater(queue_store(broker), roles, self.interval).start()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        beater = self._beaters.pop(id(worker), None)
        if beater is not None:
            beater.stop()
