"""1. The floor: how many messages per second a no-op `publish_target` drains on this machine,
with the Redis broker and the launcher of the publisher, in the shape the run gives it (the
benchmark: five threads, one process; see bench/__main__.py's REFERENCE_SHAPE and
noop_worker.py).

Measured as the publish figure is, from the moment the work is due to the moment the last of it
is done, each way with a worker of its own (a fresh namespace):

* **immediate** (the floor the publish figure is compared with): N messages are enqueued
  under a staging namespace while the worker idles, then moved into the worker's queue in one
  Redis transaction (`RENAME` of Dramatiq's list and message hash), so that they all appear at
  once, like N targets becoming due at once. Rate = N / (last acknowledged − moved).
* **delayed** (for reading the publish figure, not a target): N messages sent with a delay so
  that they all fall due at the same second T, the way the scheduler sends publish messages
  (Dramatiq's workers hold delayed messages in memory, at most 1,000 per thread, and move
  them to the queue when due). Rate = N / (last acknowledged − T).
* **with Herald's worker middleware** (for reading, not a target): immediate again, the
  no-op actor on the publisher's own broker (`worker_broker`: job records, heartbeats,
  Prometheus), to show what Herald's per-message middleware costs by itself.

A message counts as done when Dramatiq has acknowledged it, i.e. removed it from the queue's
message hash; the hash is polled every 5 ms.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
from dramatiq.brokers.redis import RedisBroker

from bench.cpu import CpuMeter
from bench.infra import BenchStack, Scratch, python_module, queue_keys, wait_drained
from herald_common.broker import redis_client
from herald_common.contracts import PUBLISH, PublishTargetPayload, send
from herald_embedded.stack import free_port, wait_for


@dataclass
class FloorRun:
    """One drain of the no-op worker."""

    messages: int
    seconds: float
    cores: dict[str, float] = field(default_factory=dict)
    cpu_wall: float = 0.0  # the seconds `cores` is an average over

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass
class FloorResult:
    """The floor, and the same no-op through Herald's delivery path and middleware."""

    immediate: FloorRun
    delayed: FloorRun | None
    herald_middleware: FloorRun | None
    threads: str
    processes: str
    pool: str = "threads"


def measure_floor(
    scratch: Scratch,
    database_url: str,
    env: dict[str, str],
    messages: int,
    *,
    say: Callable[[str], None] = print,
) -> FloorResult:
    """Drain `messages` each way, each time with a no-op worker of its own."""
    with _noop_worker(scratch, "floor", database_url, env) as (stack, client, meter):
        immediate, sending = _drain_immediate(scratch, stack, client, meter, messages)
        say(f"  immediate: {immediate.messages:,} messages in {immediate.seconds:.2f} s")
        threads, processes, pool = _worker_shape(stack)
        # Due once they have all been sent: twice as long as sending took just now, and
        # more on a machine too busy for that.
        for attempt in range(3):
            delayed = _drain_delayed(
                scratch, stack, client, meter, messages, lead=1 + 2 * sending * 2**attempt
            )
            if delayed is not None:
                break
            say("  delayed: sending took longer than planned; again, with more time")
        else:
            raise RuntimeError("could not send the delayed messages before they were due")
        say(f"  delayed:   {delayed.messages:,} messages in {delayed.seconds:.2f} s after due")
    herald_env = {
        **env,
        "BENCH_FLOOR_MIDDLEWARE": "herald",
        # Its Prometheus exposition, as the stack gives the publisher one.
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": str(free_port()),
    }
    with _noop_worker(scratch, "floor-herald", database_url, herald_env) as (
        stack,
        client,
        meter,
    ):
        middleware, _ = _drain_immediate(scratch, stack, client, meter, messages)
        say(f"  with Herald's worker middleware: {middleware.seconds:.2f} s")
    return FloorResult(immediate, delayed, middleware, threads, processes, pool)


@contextmanager
def _noop_worker(
    scratch: Scratch, name: str, database_url: str, env: dict[str, str]
) -> Iterator[tuple[BenchStack, redis.Redis, CpuMeter]]:
    """A running no-op worker under namespace `name`; stopped on the way out."""
    stack = scratch.stack(name, database_url, env)
    client = scratch.redis()
    stack.spawn("noop-worker", python_module("bench.noop_worker"))
    try:
        _wait_until_consuming(stack, client)
        yield stack, client, CpuMeter(lambda: {"worker": stack.pids("noop-worker")})
    finally:
        stack.stop_all()


def _wait_until_consuming(stack: BenchStack, client: redis.Redis) -> None:
    # A Dramatiq worker registers its heartbeat with every fetch: once it is there, the
    # consumers are polling the queues.
    def consuming() -> bool:
        stack.check_alive()
        return bool(client.zcard(f"{stack.namespace}:__heartbeats__"))

    wait_for(consuming, timeout=60, interval=0.1, what="the no-op worker to consume")


def _payloads(messages: int) -> list[PublishTargetPayload]:
    return [PublishTargetPayload(target_id=str(uuid.uuid4()), version=1) for _ in range(messages)]


def _drain_immediate(
    scratch: Scratch, stack: BenchStack, client: redis.Redis, meter: CpuMeter, messages: int
) -> tuple[FloorRun, float]:
    """The run, and how long sending the messages took."""
    staging = RedisBroker(client=redis_client(scratch.redis_url), namespace=f"{stack.namespace}~")
    staging.declare_queue(PUBLISH.queue)
    payloads = _payloads(messages)
    sending = time.monotonic()
    for payload in payloads:
        send(staging, PUBLISH, payload)
    sending = time.monotonic() - sending
    source_list, source_hash = queue_keys(staging.namespace, PUBLISH.queue)
    target_list, target_hash = queue_keys(stack.namespace, PUBLISH.queue)
    before = meter.snapshot()
    pipe = client.pipeline(transaction=True)
    pipe.rename(source_hash, target_hash)
    pipe.rename(source_list, target_list)
    pipe.execute()
    started = time.time()
    finished = wait_drained(stack, client, [target_hash])
    after = meter.snapshot()
    run = FloorRun(messages, finished - started, meter.cores(before, after), after.at - before.at)
    return run, sending


def _drain_delayed(
    scratch: Scratch,
    stack: BenchStack,
    client: redis.Redis,
    meter: CpuMeter,
    messages: int,
    *,
    lead: float,
) -> FloorRun | None:
    """The run; None when the messages could not all be sent before they were due."""
    broker = RedisBroker(client=redis_client(scratch.redis_url), namespace=stack.namespace)
    broker.declare_queue(PUBLISH.queue)
    payloads = _payloads(messages)
    # Due at a whole second, `lead` seconds ahead at least.
    due = float(math.ceil(time.time() + lead))
    for payload in payloads:
        send(broker, PUBLISH, payload, delay_ms=max(1, round((due - time.time()) * 1000)))
    _, queue_hash = queue_keys(stack.namespace, PUBLISH.queue)
    _, delay_hash = queue_keys(stack.namespace, f"{PUBLISH.queue}.DQ")
    if time.time() > due:
        wait_drained(stack, client, [queue_hash, delay_hash])
        return None
    before = meter.snapshot()
    finished = wait_drained(stack, client, [queue_hash, delay_hash])
    after = meter.snapshot()
    return FloorRun(messages, finished - due, meter.cores(before, after), after.at - before.at)


def _worker_shape(stack: BenchStack) -> tuple[str, str, str]:
    """The --threads and --processes `dramatiq` was started with, and whether on threads or
    gevent (from its command line)."""
    for pid in stack.pids("noop-worker"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                argv = file.read().decode().split("\0")
        except OSError:
            continue
        if "--threads" in argv and "--processes" in argv:
            pool = "gevent" if any(a.endswith("dramatiq-gevent") for a in argv) else "threads"
            threads = argv[argv.index("--threads") + 1]
            return threads, argv[argv.index("--processes") + 1], pool
    return "?", "?", "?"
