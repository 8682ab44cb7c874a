"""The job ledger writes the records of finished jobs in batches, from the worker's own
thread, and all that is left when the worker stops."""

from __future__ import annotations

import dramatiq
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from herald_common.broker import build_broker
from herald_common.ledger import JobLedger
from herald_common.queues import queue_store
from tests.conftest import make_settings


def test_finished_jobs_are_recorded_in_batches_and_all_by_the_time_the_worker_stops():
    # Given a worker whose ledger writes its records only when flushed (never by its thread)
    broker = build_broker(make_settings())
    assert isinstance(broker, StubBroker)
    ledger = JobLedger(flush_every=3600)
    broker.add_middleware(ledger)
    ran: list[int] = []

    @dramatiq.actor(broker=broker, queue_name="content", actor_name="note")
    def note(n: int) -> None:
        ran.append(n)

    worker = Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    store = queue_store(broker)
    try:
        # When five jobs finish
        for n in range(5):
            note.send(n)
        broker.join("content")
        worker.join()

        # I expect them done but not yet recorded, one at a time...
        assert sorted(ran) == [0, 1, 2, 3, 4]
        assert store.counts("content").completed == 0

        # ...and recorded together when the ledger flushes
        ledger.flush()
        assert store.counts("content").completed == 5
        note.send(5)
        broker.join("content")
        worker.join()
    finally:
        worker.stop()

    # and what finished since is recorded by the time the worker has stopped
    assert store.counts("content").completed == 6
