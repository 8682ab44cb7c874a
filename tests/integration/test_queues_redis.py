"""The queue store against Dramatiq's own keys on the machine's Redis, with real workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from herald_common import ledger
from herald_common.queues import RedisQueueStore, queue_store
from herald_embedded.stack import wait_for

pytestmark = [pytest.mark.redis]
QUEUE = "content"


@pytest.fixture
def client(redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url)
    yield client
    client.close()


@pytest.fixture
def broker(client: redis.Redis, redis_namespace: str) -> Iterator[RedisBroker]:
    broker = RedisBroker(client=client, namespace=redis_namespace)
    ledger.add_to(broker, heartbeat_interval=5)
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


class Actors:
    """A job that works, one that fails for good, and one that fails until it is fixed."""

    def __init__(self, broker: RedisBroker) -> None:
        self.fixed = threading.Event()
        self.done: list[int] = []

        def write(n: int) -> None:
            self.done.append(n)

        def boom(n: int) -> None:
            raise RuntimeError(f"boom {n}")

        def flaky(n: int) -> None:
            if not self.fixed.is_set():
                raise RuntimeError("not yet")
            self.done.append(n)

        options = {"broker": broker, "queue_name": QUEUE, "max_retries": 0}
        self.write = dramatiq.actor(write, **options)
        self.boom = dramatiq.actor(boom, **options)
        self.flaky = dramatiq.actor(flaky, **options)


def run_worker(broker: RedisBroker) -> dramatiq.Worker:
    worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=2, worker_timeout=50)
    worker.start()
    return worker


def test_counts_match_redis_after_enqueues_delays_and_dead_letters(broker, client):
    # Given 3 jobs waiting and 2 delayed by a minute, with no worker running
    actors, store = Actors(broker), queue_store(broker)
    for n in range(3):
        actors.write.send(n)
    for n in range(2):
        actors.write.send_with_options(args=(10 + n,), delay=60_000)
    ns = broker.namespace

    # I expect the counts to be what Redis holds
    counts = store.counts(QUEUE)
    assert (counts.waiting, counts.delayed, counts.active, counts.failed) == (3, 2, 0, 0)
    assert counts.waiting == client.llen(f"{ns}:{QUEUE}")
    assert counts.delayed == client.hlen(f"{ns}:{QUEUE}.DQ.msgs")
    # and the waiting ones listed oldest first, page by page
    first, rest = store.jobs(QUEUE, "waiting", limit=2), store.jobs(QUEUE, "waiting", offset=2)
    assert first.total == 3
    assert [j.payload for j in first.jobs + rest.jobs] == [{"args": [n]} for n in range(3)]
    assert {j.actor for j in first.jobs} == {"write"}

    # When a worker runs, and one job fails for good
    actors.boom.send(7)
    worker = run_worker(broker)
    try:
        wait_for(lambda: store.counts(QUEUE).failed == 1, timeout=10, what="a dead letter")
        wait_for(lambda: store.counts(QUEUE).completed == 3, timeout=10, what="3 done")
        counts = store.counts(QUEUE)
        delayed = store.jobs(QUEUE, "delayed")
    finally:
        worker.stop()

    # Then the dead letter is counted and listed with its error and traceback
    assert counts.failed == client.zcard(f"{ns}:{QUEUE}.XQ") == 1
    assert (counts.waiting, counts.completed, counts.completed_total) == (0, 3, 3)
    # the delayed ones, now held in the worker's memory, are still listed as delayed
    assert counts.delayed == 2
    assert sorted(j.payload["args"][0] for j in delayed.jobs) == [10, 11]
    assert all(j.eta and j.eta > datetime.now(UTC) for j in delayed.jobs)
    [dead] = store.jobs(QUEUE, "failed").jobs
    assert (dead.actor, dead.state, dead.attempts) == ("boom", "failed", 1)
    assert dead.error == "RuntimeError: boom 7"
    assert dead.traceback and "raise RuntimeError" in dead.traceback
    assert dead.failed_at is not None
    done = store.jobs(QUEUE, "completed")
    assert done.total == 3
    assert sorted(j.payload["args"][0] for j in done.jobs) == [0, 1, 2]
    assert all(j.duration_ms is not None and j.finished_at for j in done.jobs)
    # and the console's throughput counts the records of the window asked for
    now = time.time()
    assert store.finished_since(QUEUE, now - 60) == 3
    assert store.finished_since(QUEUE, now + 60) == 0


def test_retry_failed_moves_a_dead_letter_back_and_it_is_processed(broker):
    # Given a job that died because something was broken
    actors, store = Actors(broker), queue_store(broker)
    worker = run_worker(broker)
    try:
        actors.flaky.send(42)
        wait_for(lambda: store.counts(QUEUE).failed == 1, timeout=10, what="a dead letter")
        [dead] = store.jobs(QUEUE, "failed").jobs

        # When it is fixed and the dead letter retried by id, by two operators at once
        actors.fixed.set()
        with ThreadPoolExecutor(max_workers=2) as pool:
            moved = list(pool.map(lambda _: store.retry_failed(QUEUE, [dead.id]), range(2)))

        # Then it moved once, and it ran
        assert sorted(moved, key=len) == [[], [dead.id]]
        wait_for(lambda: actors.done == [42], timeout=10, what="the retried job to run")
        wait_for(lambda: store.counts(QUEUE).completed == 1, timeout=10, what="its record")
    finally:
        worker.stop()
    assert store.counts(QUEUE).failed == 0
    [record] = store.jobs(QUEUE, "completed").jobs
    assert record.message_id == dead.message_id
    # An id that is not a dead letter moves nothing
    assert store.retry_failed(QUEUE, [dead.id, "nope"]) == []


def test_retry_all_resets_retries_and_keeps_each_message_once(broker, client):
    actors, store = Actors(broker), queue_store(broker)
    worker = run_worker(broker)
    try:
        for n in range(5):
            actors.boom.send(n)
        wait_for(lambda: store.counts(QUEUE).failed == 5, timeout=10, what="5 dead letters")
    finally:
        worker.stop()

    moved = store.retry_failed(QUEUE)

    assert len(moved) == 5
    counts = store.counts(QUEUE)
    assert (counts.failed, counts.waiting) == (0, 5)
    waiting = store.jobs(QUEUE, "waiting").jobs
    assert all(j.attempts == 0 and j.traceback is None for j in waiting)
    assert client.hlen(f"{broker.namespace}:{QUEUE}.XQ.msgs") == 0


def test_clear_empties_exactly_the_state_asked(broker):
    # Given one job in each state
    actors, store = Actors(broker), queue_store(broker)
    worker = run_worker(broker)
    try:
        actors.boom.send(1)
        actors.write.send(2)
        wait_for(
            lambda: (store.counts(QUEUE).failed, store.counts(QUEUE).completed) == (1, 1),
            timeout=10,
            what="one dead and one done",
        )
    finally:
        worker.stop()
    for n in range(2):
        actors.write.send(n)
    for n in range(3):
        actors.write.send_with_options(args=(n,), delay=60_000)

    def states() -> tuple[int, int, int, int]:
        c = store.counts(QUEUE)
        return c.waiting, c.delayed, c.failed, c.completed

    assert states() == (2, 3, 1, 1)
    # When each state is cleared in turn, I expect only that one to empty
    assert store.clear(QUEUE, "waiting") == 2
    assert states() == (0, 3, 1, 1)
    assert store.clear(QUEUE, "delayed") == 3
    assert states() == (0, 0, 1, 1)
    assert store.clear(QUEUE, "failed") == 1
    assert states() == (0, 0, 0, 1)
    assert store.clear(QUEUE, "completed") == 1
    assert states() == (0, 0, 0, 0)
    assert store.counts(QUEUE).completed_total == 1  # the count since start stays
    with pytest.raises(ValueError):
        store.clear(QUEUE, "active")


def test_records_are_pruned_by_age_and_by_number(broker):
    store = queue_store(broker)
    assert isinstance(store, RedisQueueStore)
    message = dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(), kwargs={}, options={})
    now = time.time()
    for age in (7200, 3600, 10, 5, 1):  # seconds ago
        store.record_completed(
            message.copy(message_id=f"m{age}"), finished_at=now - age, duration_ms=1
        )

    # Older than 30 minutes goes; then only the newest 2 are kept
    assert store.prune_records(QUEUE, older_than=now - 1800, keep=100) == 2
    assert store.prune_records(QUEUE, older_than=now - 1800, keep=2) == 1
    assert [j.id for j in store.jobs(QUEUE, "completed").jobs] == ["m1", "m5"]


def test_heartbeats_show_who_is_alive(broker):
    store = queue_store(broker)
    now = time.time()
    store.beat("publish", "host-a:1", now - 60)
    store.beat("publish", "host-b:2", now - 5)
    store.beat("scheduler", "host-a:3", now)

    assert store.alive("publish", now, timeout=30) == ["host-b:2"]
    assert store.alive("scheduler", now, timeout=30) == ["host-a:3"]
    store.leave("scheduler", "host-a:3")
    assert store.alive("scheduler", now, timeout=30) == []


def test_one_prune_drops_the_aged_and_then_the_excess(broker):
    # Given 10 records two days old and 990 recent ones, with a cap of 100
    store, now = queue_store(broker), time.time()
    message = dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(), kwargs={}, options={})
    for n in range(1000):
        age = 2 * 86400 if n < 10 else 1000 - n
        store.record_completed(
            message.copy(message_id=f"m{n:04}"), finished_at=now - age, duration_ms=1
        )

    # When one clean-up prunes, I expect the cap reached at once
    assert store.prune_records(QUEUE, older_than=now - 86400, keep=100) == 900
    newest = store.jobs(QUEUE, "completed", limit=200)
    assert newest.total == 100
    assert newest.jobs[-1].id == "m0900"


def test_the_admin_cli_reads_retries_and_clears_the_queues(
    broker, redis_server_url, redis_namespace, monkeypatch, capsys, tmp_path
):
    import json

    from herald_api.cli import main
    from herald_common.settings import get_settings

    # Given a dead letter and two delayed jobs on the broker the CLI is pointed at
    actors, store = Actors(broker), queue_store(broker)
    worker = run_worker(broker)
    try:
        actors.boom.send(1)
        wait_for(lambda: store.counts(QUEUE).failed == 1, timeout=10, what="a dead letter")
    finally:
        worker.stop()
    for n in range(2):
        actors.write.send_with_options(args=(n,), delay=60_000)
    monkeypatch.setenv("REDIS_URL", redis_server_url)
    monkeypatch.setenv("HERALD_BROKER_NAMESPACE", redis_namespace)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    try:
        # When an operator's script asks for the stats
        assert main(["queue-stats"]) == 0
        stats = {q["name"]: q for q in json.loads(capsys.readouterr().out)["data"]}
        # I expect what the store counts
        assert (stats[QUEUE]["failed"], stats[QUEUE]["delayed"]) == (1, 2)
        # and retrying the dead letters moves it back on the queue
        assert main(["retry-failed", QUEUE]) == 0
        assert json.loads(capsys.readouterr().out)["retried"] == 1
        assert store.counts(QUEUE).failed == 0
        # and clearing a state drops exactly that
        assert main(["clear-queue", QUEUE, "--state", "waiting"]) == 0
        assert json.loads(capsys.readouterr().out)["cleared"] == {"waiting": 1}
        # and a queue no contract declares is an error in words, not a traceback
        assert main(["retry-failed", "nope"]) == 1
        assert "no queue named 'nope'" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
