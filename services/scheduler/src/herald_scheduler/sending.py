"""Sending publish messages on their second.

The scheduler claims targets up to SCHEDULER_LOOKAHEAD_SECONDS before they are due. A running
`Sender` holds each claimed target until its due time and then puts its message straight on
the publish queue, many in one round trip. Sending it at once with a Dramatiq delay instead
would cost the publisher twice the broker work per message (take it from the delay queue, hold
it, enqueue it again, acknowledge it twice: 0.8 ms of worker CPU per message against 0.4 in
the benchmark's floor), at the moment a burst is due.

What is held lives only in this process for at most the lookahead. If the process dies, the
targets are `queued` in the database with no message in the broker, and the scheduler's
resend_lost sends them again (it looks for messages the broker does not hold); on a graceful
stop, whatever is still held is sent at once, delayed by the broker.

A Sender that was not started (a tick run by hand, in tests) sends at once, delayed by the
broker to each target's second, as a running one does when it stops.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from dramatiq.broker import Broker

from herald_common.contracts import PUBLISH, PublishTargetPayload, send
from herald_common.lifecycle import Queued
from herald_common.queues import queue_store
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)

#: Longest wait of the sending thread between two looks (it is woken by new work anyway).
IDLE_WAIT_SECONDS = 1.0
#: Messages put on the queue in one round trip (one MULTI: Redis does nothing else meanwhile,
#: so a burst of ten thousand goes in slices).
SEND_BATCH = 500

#: Called with the targets whose message could not be sent (the broker is away).
Unsent = Callable[[list[Queued]], None]


class Sender:
    """Sends claimed targets' publish messages when they are due."""

    def __init__(
        self, broker: Broker, unsent: Unsent, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._broker = broker
        self._unsent = unsent
        self._clock = clock
        self._held: list[tuple[datetime, int, Queued]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._holding = False

    @property
    def held(self) -> int:
        """How many targets wait for their second."""
        with self._lock:
            return len(self._held)

    def hold(self) -> Sender:
        """Hold targets until their second from now on; whoever holds them calls send_due."""
        self._holding = True
        return self

    def start(self) -> Sender:
        """Hold targets until their second from now on, sent by a thread of this object's."""
        self.hold()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="publish-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop holding: what is held is sent now, delayed by the broker to its second."""
        thread, self._thread = self._thread, None
        self._holding = False
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout=10)
        with self._lock:
            left = [item for _, _, item in sorted(self._held)]
            self._held.clear()
        if left:
            self._send(left, delayed=True)

    def submit(self, items: Sequence[Queued]) -> tuple[int, int]:
        """Send (or hold until due) these claimed targets; (taken, failed to send)."""
        if not self._holding:
            return self._send(list(items), delayed=True)
        now = self._clock()
        due = [item for item in items if item.due_at is None or item.due_at <= now]
        later = [item for item in items if item.due_at is not None and item.due_at > now]
        if later:
            with self._lock:
                for item in later:
                    assert item.due_at is not None
                    heapq.heappush(self._held, (item.due_at, next(self._order), item))
            self._wake.set()
        sent, failed = self._send(due, delayed=False) if due else (0, 0)
        return sent + len(later), failed

    def send_due(self) -> tuple[int, int]:
        """Send every held target whose second has come; (sent, failed to send)."""
        now = self._clock()
        with self._lock:
            due = []
            while self._held and self._held[0][0] <= now:
                due.append(heapq.heappop(self._held)[2])
        return self._send(due, delayed=False) if due else (0, 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_due()
            except Exception:
                log.exception("sender: sending failed")
            with self._lock:
                wait = (
                    (self._held[0][0] - self._clock()).total_seconds()
                    if self._held
                    else IDLE_WAIT_SECONDS
                )
            self._wake.wait(min(max(wait, 0.0), IDLE_WAIT_SECONDS))
            self._wake.clear()

    def _send(self, items: list[Queued], *, delayed: bool) -> tuple[int, int]:
        """Put the messages on the queue (now, or delayed by the broker to their second)."""
        sent = 0
        try:
            if delayed:
                for item in items:
                    # Rounded up: a message may come a moment late, never early.
                    delay = (
                        math.ceil((item.due_at - self._clock()).total_seconds() * 1000)
                        if item.due_at
                        else 0
                    )
                    payload = _payload(item)
                    send(self._broker, PUBLISH, payload, delay_ms=delay, request_id=item.request_id)
                    sent += 1
            else:
                store = queue_store(self._broker)
                for start in range(0, len(items), SEND_BATCH):
                    batch = items[start : start + SEND_BATCH]
                    messages = [
                        PUBLISH.message(_payload(i), request_id=i.request_id) for i in batch
                    ]
                    store.enqueue_many(PUBLISH.queue, messages)
                    sent += len(batch)
        except Exception as exc:
            # The broker is away. Their rows are safe in the database: mark them as never sent
            # so that the scheduler sends them again as soon as it can.
            unsent = items[sent:]
            log.error(
                "scheduler: broker unreachable (%s); %d target(s) wait in the database",
                type(exc).__name__,
                len(unsent),
            )
            self._unsent(unsent)
            return sent, len(unsent)
        return sent, 0


def _payload(item: Queued) -> PublishTargetPayload:
    return PublishTargetPayload(target_id=item.target_id, version=item.version)
