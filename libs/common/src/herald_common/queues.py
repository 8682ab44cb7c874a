"""What is in each queue, for operators: counts, job lists, retrying and clearing, the record
of finished jobs, and the heartbeats of the processes that drain them.

`queue_store(broker)` gives the store for a broker: `RedisQueueStore` reads Dramatiq's own
keys in Redis; `MemoryQueueStore` reads the in-process stub broker of `make run`.

Dramatiq's Redis broker keeps, under its namespace `ns` (dramatiq/brokers/redis/dispatch.lua):

    ns:{queue}              list of the waiting messages' ids, oldest first
    ns:{queue}.msgs         hash id → message, for the waiting and the active ones
    ns:{queue}.DQ           list of delayed messages no worker has taken yet
    ns:{queue}.DQ.msgs      hash id → message, for every delayed one (taken or not)
    ns:{queue}.XQ           sorted set of dead letters, scored by when they died
    ns:{queue}.XQ.msgs      hash id → message, for the dead letters
    ns:__acks__.{w}.{q}     set of ids worker process `w` has taken from `q` and not acked
    ns:__heartbeats__       sorted set of broker ids (every process that sent a command)

So waiting = LLEN q, active = HLEN q.msgs − LLEN q (taken, not yet acked: running, or held by
a dead worker until Dramatiq's maintenance puts it back), delayed = HLEN q.DQ.msgs. A delayed
message a worker has taken sits in that worker's memory until its time; it can be listed but
not cleared (the worker sends it on when it is due).

Herald adds, under the same namespace:

    ns:herald.done:{queue}        sorted set of finished message ids, scored by finish time
    ns:herald.done:{queue}.msgs   hash id → JSON record (actor, payload, timings)
    ns:herald.failures:{queue}    hash id → JSON (error, traceback, attempts) of each dead
                                  letter: Dramatiq keeps the message as it was enqueued,
                                  not why it died
    ns:herald.stats:{queue}       hash: `completed` since the namespace began
    ns:herald.heartbeats:{role}   sorted set of "host:pid" → last beat (ms); a role is a
                                  queue name, or "scheduler"

Every change that moves a message (retry, clear) is one Lua script, so a message is never
lost or doubled by two operators, or by an operator and a worker, acting at once.
"""

from __future__ import annotations

import json
import threading
import uuid
import weakref
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from queue import Empty
from traceback import format_exception
from typing import Any

import redis
from dramatiq import Message
from dramatiq.broker import Broker, MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name

from herald_common.contracts import CONTRACTS
from herald_common.logs import redact

#: A message as the broker hands it to middleware, or as it was enqueued.
AnyMessage = Message[Any] | MessageProxy
#: A job that finished: its message, when (epoch seconds) and how long it ran (ms).
Finished = tuple[AnyMessage, float, float]
#: Every state a job can be listed in.
STATES = ("waiting", "active", "delayed", "failed", "completed")
#: The states an operator can clear.
CLEARABLE = ("waiting", "delayed", "failed", "completed")
#: Processes that beat besides the queues' workers.
SCHEDULER_ROLE = "scheduler"
#: Options Dramatiq's retries leave on a message; a retried dead letter starts afresh.
_RETRY_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta")
#: About when this process began (this module is imported before anything is sent).
_PROCESS_STARTED = datetime.now(UTC)
_SUMMARY_TEXT = 200
_SUMMARY_ITEMS = 20
_BATCH = 500


def queue_names() -> list[str]:
    """Every queue a contract declares, in contract order."""
    return list(dict.fromkeys(contract.queue for contract in CONTRACTS))


@dataclass(frozen=True)
class QueueCounts:
    """How many jobs a queue holds in each state."""

    queue: str
    waiting: int
    active: int
    delayed: int
    failed: int
    completed: int  # finished jobs still on record (see job_records_retention_seconds)
    completed_total: int  # finished since the namespace began

    @property
    def total(self) -> int:
        """Every job the queue knows of: waiting, active, delayed, failed and on record."""
        return self.waiting + self.active + self.delayed + self.failed + self.completed


@dataclass(frozen=True)
class Job:
    """One message in one state, as an operator sees it."""

    id: str  # what retry and clear act on (the broker's id of this copy)
    message_id: str
    queue: str
    actor: str
    state: str
    payload: dict[str, Any]
    enqueued_at: datetime | None = None
    eta: datetime | None = None
    attempts: int = 0  # runs that failed so far (Dramatiq's `retries` option)
    failed_at: datetime | None = None
    error: str | None = None
    traceback: str | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None


@dataclass(frozen=True)
class JobPage:
    """One page of a state's jobs, and how many there are in all."""

    total: int
    jobs: list[Job]


def summarize(value: Any) -> Any:
    """A payload cut to a readable size: long strings and lists are shortened."""
    if isinstance(value, str):
        return value if len(value) <= _SUMMARY_TEXT else value[:_SUMMARY_TEXT] + "…"
    if isinstance(value, dict):
        return {str(k): summarize(v) for k, v in list(value.items())[:_SUMMARY_ITEMS]}
    if isinstance(value, list | tuple):
        items = [summarize(v) for v in list(value)[:_SUMMARY_ITEMS]]
        return [*items, "…"] if len(value) > _SUMMARY_ITEMS else items
    return value


def _payload(message: AnyMessage) -> dict[str, Any]:
    """A message's arguments, shortened: its keyword arguments, and `args` when it has any."""
    positional = {"args": list(message.args)} if message.args else {}
    return summarize({**message.kwargs, **positional})  # type: ignore[no-any-return]


def _at(ms: float | int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _error_line(traceback: str | None) -> str | None:
    """The exception line of a traceback: what a person reads first."""
    if not traceback:
        return None
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return lines[-1][:1000] if lines else None


def job_from_message(message: Message[Any], state: str, *, failed_ms: float | None = None) -> Job:
    """A Job from a Dramatiq message found in `state`."""
    options = message.options
    traceback = redact(options["traceback"]) if options.get("traceback") else None
    return Job(
        id=str(options.get("redis_message_id") or message.message_id),
        message_id=message.message_id,
        queue=message.queue_name.removesuffix(".DQ"),
        actor=message.actor_name,
        state=state,
        payload=_payload(message),
        enqueued_at=_at(message.message_timestamp),
        eta=_at(options.get("eta")),
        attempts=int(options.get("retries", 0)),
        failed_at=_at(failed_ms or options.get("requeue_timestamp")) if state == "failed" else None,
        error=_error_line(traceback) if state == "failed" else None,
        traceback=traceback if state == "failed" else None,
    )


def fresh_copy(message: Message[Any], queue: str) -> Message[Any]:
    """A dead letter made ready to run again: on its queue, due now, retries reset."""
    options = {k: v for k, v in message.options.items() if k not in _RETRY_OPTIONS}
    return Message(
        queue_name=queue,
        actor_name=message.actor_name,
        args=message.args,
        kwargs=message.kwargs,
        options=options,
        message_id=message.message_id,
        message_timestamp=message.message_timestamp,
    )


def completed_record(
    message: AnyMessage, *, finished_at: float, duration_ms: float
) -> dict[str, Any]:
    """What is kept of a finished job (JSON-ready)."""
    return {
        "message_id": message.message_id,
        "actor": message.actor_name,
        "payload": _payload(message),
        "enqueued_at": message.message_timestamp,
        "finished_at": int(finished_at * 1000),
        "duration_ms": round(duration_ms, 3),
        "attempts": int(message.options.get("retries", 0)),
    }


def failure_record(exception: BaseException, *, attempts: int, at: float) -> dict[str, Any]:
    """Why a job died (JSON-ready): its exception on one line, its traceback, its runs."""
    # An exception's text can quote a request: masked as the logs are (herald_common.logs).
    trace = redact("".join(format_exception(exception, limit=30)))
    # The exception on one line: its last traceback line may be a detail of a long message.
    said = redact(" ".join(str(exception).split()))
    return {
        "error": f"{type(exception).__name__}: {said}"[:1000] if said else type(exception).__name__,
        "traceback": trace[-20_000:],
        "attempts": attempts,
        "failed_at": int(at * 1000),
    }


def with_failure(job: Job, record: dict[str, Any] | None) -> Job:
    """A dead letter's job with why it died, when that was recorded."""
    if not record:
        return job
    return replace(
        job,
        error=record.get("error"),
        traceback=record.get("traceback"),
        attempts=int(record.get("attempts", job.attempts)),
        failed_at=job.failed_at or _at(record.get("failed_at")),
    )


def job_from_record(queue: str, record: dict[str, Any]) -> Job:
    """A Job from a finished job's record."""
    return Job(
        id=record["message_id"],
        message_id=record["message_id"],
        queue=queue,
        actor=record["actor"],
        state="completed",
        payload=record.get("payload", {}),
        enqueued_at=_at(record.get("enqueued_at")),
        attempts=int(record.get("attempts", 0)),
        finished_at=_at(record.get("finished_at")),
        duration_ms=record.get("duration_ms"),
    )


class QueueStore(ABC):
    """Reads and changes what a broker's queues hold."""

    @abstractmethod
    def counts(self, queue: str) -> QueueCounts:
        """How many jobs `queue` holds in each state."""

    @abstractmethod
    def jobs(self, queue: str, state: str, *, offset: int = 0, limit: int = 50) -> JobPage:
        """One page of `queue`'s jobs in `state` (newest first for failed and completed)."""

    @abstractmethod
    def retry_failed(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        """Put dead letters (all, or those with these ids) back on the queue with their retries
        reset; the ids moved."""

    @abstractmethod
    def clear(self, queue: str, state: str) -> int:
        """Drop the jobs of one clearable state; how many were dropped."""

    @abstractmethod
    def record_completed(
        self, message: AnyMessage, *, finished_at: float, duration_ms: float
    ) -> None:
        """Keep a record of a job that finished."""

    def record_completed_many(self, finished: Sequence[Finished]) -> None:
        """Keep a record of each of these jobs that finished."""
        for message, finished_at, duration_ms in finished:
            self.record_completed(message, finished_at=finished_at, duration_ms=duration_ms)

    @abstractmethod
    def finished_since(self, queue: str, since: float) -> int:
        """How many of `queue`'s jobs on record finished at or after `since` (unix s): its
        throughput, as far back as the records are kept."""

    @abstractmethod
    def record_failed(
        self, message: AnyMessage, exception: BaseException, *, attempts: int, at: float
    ) -> None:
        """Keep why a job died (it is a dead letter now) after `attempts` failed runs."""

    @abstractmethod
    def prune_records(self, queue: str, *, older_than: float, keep: int) -> int:
        """Drop records of jobs finished before `older_than` (unix s), and beyond the newest
        `keep`; how many were dropped."""

    @abstractmethod
    def beat(self, role: str, member: str, now: float) -> None:
        """Say that process `member` doing `role` is alive at `now` (unix s)."""

    @abstractmethod
    def leave(self, role: str, member: str) -> None:
        """Say that process `member` stopped doing `role`."""

    @abstractmethod
    def alive(self, role: str, now: float, timeout: float) -> list[str]:
        """The processes doing `role` that beat within `timeout` seconds of `now`."""

    # Hooks the JobLedger middleware calls; Redis already knows, only the in-process store
    # needs them to see what its workers hold.
    @abstractmethod
    def enqueue_many(self, queue: str, messages: Sequence[Message[Any]]) -> None:
        """Put `messages` on `queue` now, all or none (many per round trip)."""

    @abstractmethod
    def missing(
        self, queue: str, fields: Sequence[str], sent: Sequence[SentMessage]
    ) -> list[SentMessage]:
        """The `sent` messages of `queue` the broker no longer holds, waiting, delayed or
        taken by a worker (a dead worker's included, which Dramatiq puts back): they were
        never sent, lost with Redis, or dead-lettered. A message is known by its payload's
        `fields` joined with ":" (SentMessage.key)."""

    def started(self, message: AnyMessage) -> None:  # noqa: B027
        """A worker started `message`."""

    def finished(self, message: AnyMessage) -> None:  # noqa: B027
        """A worker finished `message`, whatever the outcome."""

    def held(self, message: AnyMessage) -> None:  # noqa: B027
        """A worker took a delayed `message` into memory until its time."""


# ----------------------------------------------------------------------------- Redis

# Move dead letters back onto their queue. KEYS: xq, xq.msgs, q, q.msgs, failures; ARGV: id,
# data, … Only an id still among the dead letters moves, so two operators retrying at once move
# it once.
_RETRY = """
local moved = {}
for i = 1, #ARGV, 2 do
    local id = ARGV[i]
    if redis.call('zrem', KEYS[1], id) == 1 then
        redis.call('hdel', KEYS[2], id)
        redis.call('hdel', KEYS[5], id)
        redis.call('hset', KEYS[4], id, ARGV[i + 1])
        redis.call('rpush', KEYS[3], id)
        moved[#moved + 1] = id
    end
end
return moved
"""

# Drop every message of a list (waiting or delayed, not yet taken). KEYS: list, its .msgs hash.
_CLEAR_LIST = """
local ids = redis.call('lrange', KEYS[1], 0, -1)
redis.call('del', KEYS[1])
for i = 1, #ids, 1000 do
    redis.call('hdel', KEYS[2], unpack(ids, i, math.min(i + 999, #ids)))
end
return #ids
"""

# Drop a sorted set and its hashes (dead letters and why they died, finished records).
# KEYS: zset, hash, … more hashes.
_CLEAR_SET = """
local n = redis.call('zcard', KEYS[1])
redis.call('del', unpack(KEYS))
return n
"""

# Forget why dead letters died once Dramatiq has dropped them (after its dead-message TTL).
# KEYS: failures hash, xq.
_FORGET_GONE = """
local gone = 0
for _, id in ipairs(redis.call('hkeys', KEYS[1])) do
    if not redis.call('zscore', KEYS[2], id) then
        redis.call('hdel', KEYS[1], id)
        gone = gone + 1
    end
end
return gone
"""

# Drop up to ARGV[3] records: first those finished before ARGV[1] (ms), then the oldest beyond
# the newest ARGV[2]. KEYS: done zset, done hash.
_PRUNE = """
local limit = tonumber(ARGV[3])
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, limit)
local excess = redis.call('zcard', KEYS[1]) - #ids - tonumber(ARGV[2])
if #ids < limit and excess > 0 then
    local oldest = redis.call('zrange', KEYS[1], #ids, #ids + math.min(excess, limit - #ids) - 1)
    for _, id in ipairs(oldest) do ids[#ids + 1] = id end
end
if #ids > 0 then
    redis.call('zrem', KEYS[1], unpack(ids))
    redis.call('hdel', KEYS[2], unpack(ids))
end
return #ids
"""


# Which of the wanted messages one page of a message hash holds. KEYS: the hash; ARGV: cursor,
# page size, the payload's field names (comma-separated), then the keys wanted. Decoding runs
# in Redis, so only the keys found cross the network.
_FIND = """
local wanted = {}
for i = 4, #ARGV do wanted[ARGV[i]] = true end
local names = {}
for name in string.gmatch(ARGV[3], '[^,]+') do names[#names + 1] = name end
local page = redis.call('hscan', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local found = {}
local entries = page[2]
for i = 2, #entries, 2 do
    local ok, message = pcall(cjson.decode, entries[i])
    if ok and type(message) == 'table' and type(message.kwargs) == 'table' then
        local parts = {}
        for j, name in ipairs(names) do parts[j] = tostring(message.kwargs[name]) end
        local key = table.concat(parts, ':')
        if wanted[key] then found[#found + 1] = key end
    end
end
return {page[1], found}
"""
#: Messages one _FIND call reads.
_FIND_PAGE = 1000


@dataclass(frozen=True)
class SentMessage:
    """A message Herald sent, known by its payload (`key`), and when it was sent."""

    key: str
    sent_at: datetime


def message_key(payload: dict[str, Any], fields: Sequence[str]) -> str:
    """A message's key: its payload's `fields`, as Redis's Lua prints them, joined with ":"."""
    return ":".join(str(payload.get(name)) for name in fields)


@dataclass
class RedisQueueStore(QueueStore):
    """The queues of a Dramatiq Redis broker (see the module docstring for the keys)."""

    client: redis.Redis
    namespace: str
    _scripts: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        register = self.client.register_script
        self._scripts = {
            "retry": register(_RETRY),
            "clear_list": register(_CLEAR_LIST),
            "clear_set": register(_CLEAR_SET),
            "prune": register(_PRUNE),
            "forget_gone": register(_FORGET_GONE),
            "find": register(_FIND),
        }

    def _key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def counts(self, queue: str) -> QueueCounts:
        q, dq, xq, done = (
            self._key(queue),
            self._key(dq_name(queue)),
            self._key(f"{queue}.XQ"),
            self._key(f"herald.done:{queue}"),
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.llen(q).hlen(f"{q}.msgs").hlen(f"{dq}.msgs").zcard(xq).zcard(done)
        pipe.hget(self._key(f"herald.stats:{queue}"), "completed")
        waiting, held, delayed, failed, completed, total = pipe.execute()
        return QueueCounts(
            queue=queue,
            waiting=waiting,
            active=max(0, held - waiting),
            delayed=delayed,
            failed=failed,
            completed=completed,
            completed_total=int(total or 0),
        )

    def jobs(self, queue: str, state: str, *, offset: int = 0, limit: int = 50) -> JobPage:
        end = offset + limit - 1
        if state == "waiting":
            key = self._key(queue)
            return self._page(
                key, self.client.llen(key), self.client.lrange(key, offset, end), state
            )
        if state == "active":
            taken = sorted(self._taken(queue))
            return self._page(self._key(queue), len(taken), taken[offset : end + 1], state)
        if state == "delayed":
            dq = self._key(dq_name(queue))
            # Those taken by a worker come due first, then those still in the list.
            ids = sorted(self._taken(dq_name(queue))) + [
                i.decode() for i in self.client.lrange(dq, 0, end)
            ]
            return self._page(dq, self.client.hlen(f"{dq}.msgs"), ids[offset : end + 1], state)
        if state == "failed":
            xq = self._key(f"{queue}.XQ")
            scored = self.client.zrevrange(xq, offset, end, withscores=True)
            # When each died is the dead-letter set's score; why, the failure records.
            died = {i.decode(): s for i, s in scored}
            page = self._page(xq, self.client.zcard(xq), list(died), state, died)
            ids = [job.id for job in page.jobs]
            why = self.client.hmget(self._key(f"herald.failures:{queue}"), ids) if ids else []
            records = [json.loads(w) if w else None for w in why]
            return JobPage(
                page.total, [with_failure(j, r) for j, r in zip(page.jobs, records, strict=True)]
            )
        if state == "completed":
            done = self._key(f"herald.done:{queue}")
            ids = self.client.zrevrange(done, offset, end)
            records = self.client.hmget(f"{done}.msgs", ids) if ids else []
            jobs = [job_from_record(queue, json.loads(r)) for r in records if r]
            return JobPage(self.client.zcard(done), jobs)
        raise ValueError(f"unknown state {state!r}")

    def _taken(self, queue: str) -> set[str]:
        """Ids that worker processes took from `queue` (the Dramatiq name) and did not ack."""
        workers = self.client.zrange(self._key("__heartbeats__"), 0, -1)
        pipe = self.client.pipeline(transaction=False)
        for worker in workers:
            pipe.smembers(self._key(f"__acks__.{worker.decode()}.{queue}"))
        return {i.decode() for members in pipe.execute() for i in members}

    def _page(
        self,
        key: str,
        total: int,
        ids: Iterable[Any],
        state: str,
        died: dict[str, float] | None = None,
    ) -> JobPage:
        ids = [i.decode() if isinstance(i, bytes) else i for i in ids]
        datas = self.client.hmget(f"{key}.msgs", ids) if ids else []
        jobs = [
            job_from_message(Message.decode(data), state, failed_ms=(died or {}).get(id_))
            for id_, data in zip(ids, datas, strict=True)
            if data
        ]
        return JobPage(total, jobs)

    def retry_failed(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        xq, q = self._key(f"{queue}.XQ"), self._key(queue)
        keys = [xq, f"{xq}.msgs", q, f"{q}.msgs", self._key(f"herald.failures:{queue}")]
        moved: list[str] = []
        if ids is not None:
            batches: Iterable[list[str]] = (
                list(ids[i : i + _BATCH]) for i in range(0, len(ids), _BATCH)
            )
        else:
            batches = self._all_dead(xq)
        for batch in batches:
            datas = self.client.hmget(f"{xq}.msgs", batch) if batch else []
            argv: list[Any] = []
            for id_, data in zip(batch, datas, strict=True):
                if data:
                    argv += [id_, fresh_copy(Message.decode(data), queue).encode()]
            if argv:
                moved += [i.decode() for i in self._scripts["retry"](keys=keys, args=argv)]
        return moved

    def _all_dead(self, xq: str) -> Iterable[list[str]]:
        """Every dead letter's id, oldest first, in batches (read before any is moved)."""
        ids = [i.decode() for i in self.client.zrange(xq, 0, -1)]
        for start in range(0, len(ids), _BATCH):
            yield ids[start : start + _BATCH]

    def clear(self, queue: str, state: str) -> int:
        if state == "waiting":
            key = self._key(queue)
            return int(self._scripts["clear_list"](keys=[key, f"{key}.msgs"]))
        if state == "delayed":
            key = self._key(dq_name(queue))
            return int(self._scripts["clear_list"](keys=[key, f"{key}.msgs"]))
        if state == "failed":
            key = self._key(f"{queue}.XQ")
            keys = [key, f"{key}.msgs", self._key(f"herald.failures:{queue}")]
            return int(self._scripts["clear_set"](keys=keys))
        if state == "completed":
            key = self._key(f"herald.done:{queue}")
            return int(self._scripts["clear_set"](keys=[key, f"{key}.msgs"]))
        raise ValueError(f"{state!r} cannot be cleared")

    def record_completed(
        self, message: AnyMessage, *, finished_at: float, duration_ms: float
    ) -> None:
        self.record_completed_many([(message, finished_at, duration_ms)])

    def record_completed_many(self, finished: Sequence[Finished]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for message, finished_at, duration_ms in finished:
            queue = message.queue_name.removesuffix(".DQ")
            done = self._key(f"herald.done:{queue}")
            record = completed_record(message, finished_at=finished_at, duration_ms=duration_ms)
            pipe.zadd(done, {message.message_id: record["finished_at"]})
            pipe.hset(f"{done}.msgs", message.message_id, json.dumps(record))
            pipe.hincrby(self._key(f"herald.stats:{queue}"), "completed", 1)
        pipe.execute()

    def finished_since(self, queue: str, since: float) -> int:
        return int(self.client.zcount(self._key(f"herald.done:{queue}"), int(since * 1000), "+inf"))

    def record_failed(
        self, message: AnyMessage, exception: BaseException, *, attempts: int, at: float
    ) -> None:
        queue = message.queue_name.removesuffix(".DQ")
        record = failure_record(exception, attempts=attempts, at=at)
        self.client.hset(
            self._key(f"herald.failures:{queue}"), _job_id(message), json.dumps(record)
        )

    def prune_records(self, queue: str, *, older_than: float, keep: int) -> int:
        self._scripts["forget_gone"](
            keys=[self._key(f"herald.failures:{queue}"), self._key(f"{queue}.XQ")]
        )
        done = self._key(f"herald.done:{queue}")
        dropped = 0
        while True:
            n = int(
                self._scripts["prune"](
                    keys=[done, f"{done}.msgs"], args=[int(older_than * 1000), keep, _BATCH]
                )
            )
            dropped += n
            if n < _BATCH:
                return dropped

    def enqueue_many(self, queue: str, messages: Sequence[Message[Any]]) -> None:
        # What Dramatiq's enqueue does (dispatch.lua: the message under a Redis id of its
        # own in the queue's hash, the id at the end of its list), for a batch in one MULTI.
        pipe = self.client.pipeline(transaction=True)
        for message in messages:
            redis_id = str(uuid.uuid4())
            data = message.copy(queue_name=queue, options={"redis_message_id": redis_id})
            pipe.hset(self._key(f"{queue}.msgs"), redis_id, data.encode())
            pipe.rpush(self._key(queue), redis_id)
        pipe.execute()

    def missing(
        self, queue: str, fields: Sequence[str], sent: Sequence[SentMessage]
    ) -> list[SentMessage]:
        wanted = {message.key for message in sent}
        found: set[str] = set()
        # The delayed hash first: a worker moving a message from it to the queue adds it to
        # the queue's hash before removing it from the delayed one, so read in this order a
        # message being moved is seen in one or the other.
        for key in (self._key(f"{dq_name(queue)}.msgs"), self._key(f"{queue}.msgs")):
            cursor = "0"
            while wanted - found:
                cursor, keys = self._scripts["find"](
                    keys=[key], args=[cursor, _FIND_PAGE, ",".join(fields), *(wanted - found)]
                )
                found.update(k.decode() for k in keys)
                cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
                if cursor == "0":
                    break
        return [message for message in sent if message.key not in found]

    def beat(self, role: str, member: str, now: float) -> None:
        self.client.zadd(self._key(f"herald.heartbeats:{role}"), {member: int(now * 1000)})

    def leave(self, role: str, member: str) -> None:
        self.client.zrem(self._key(f"herald.heartbeats:{role}"), member)

    def alive(self, role: str, now: float, timeout: float) -> list[str]:
        key = self._key(f"herald.heartbeats:{role}")
        # Processes silent for a day are forgotten: pods come and go under new names.
        self.client.zremrangebyscore(key, "-inf", int((now - 86400) * 1000))
        members = self.client.zrangebyscore(key, int((now - timeout) * 1000), "+inf")
        return sorted(m.decode() for m in members)


# ----------------------------------------------------------------------------- in process


@dataclass
class MemoryQueueStore(QueueStore):
    """The queues of Dramatiq's in-process stub broker (`make run`)."""

    broker: StubBroker
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _active: dict[str, dict[str, Message[Any]]] = field(default_factory=lambda: defaultdict(dict))
    _held: dict[str, dict[str, Message[Any]]] = field(default_factory=lambda: defaultdict(dict))
    _done: dict[str, deque[dict[str, Any]]] = field(default_factory=lambda: defaultdict(deque))
    _done_total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _beats: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    _failures: dict[str, dict[str, Any]] = field(default_factory=dict)

    #: Messages sent before this are gone: the in-process broker began with this process.
    _born: datetime = field(default_factory=lambda: _PROCESS_STARTED)

    def enqueue_many(self, queue: str, messages: Sequence[Message[Any]]) -> None:
        for message in messages:
            self.broker.enqueue(message.copy(queue_name=queue))

    def missing(
        self, queue: str, fields: Sequence[str], sent: Sequence[SentMessage]
    ) -> list[SentMessage]:
        # The in-process broker lives and dies with the process that sends and works its
        # messages: one sent since it began is still held unless it was dead-lettered, and
        # one sent before it began went with the process before.
        dead = {
            message_key(_plain(message).kwargs, fields)
            for message in self.broker.dead_letters_by_queue.get(queue, ())
        }
        return [m for m in sent if m.sent_at < self._born or m.key in dead]

    def _queued(self, name: str) -> list[Message[Any]]:
        q = self.broker.queues.get(name)
        if q is None:
            return []
        with q.mutex:
            return [Message.decode(data) for data in list(q.queue)]

    def counts(self, queue: str) -> QueueCounts:
        q, dq = self.broker.queues.get(queue), self.broker.queues.get(dq_name(queue))
        with self._lock:
            active, held = len(self._active[queue]), len(self._held[queue])
            completed, total = len(self._done[queue]), self._done_total[queue]
        return QueueCounts(
            queue=queue,
            waiting=q.qsize() if q else 0,
            active=active,
            delayed=(dq.qsize() if dq else 0) + held,
            failed=len(self.broker.dead_letters_by_queue[queue]),
            completed=completed,
            completed_total=total,
        )

    def jobs(self, queue: str, state: str, *, offset: int = 0, limit: int = 50) -> JobPage:
        if state == "completed":
            with self._lock:
                records = list(reversed(self._done[queue]))
            page = records[offset : offset + limit]
            return JobPage(len(records), [job_from_record(queue, r) for r in page])
        if state == "failed":
            messages = list(reversed(self.broker.dead_letters_by_queue[queue]))
        elif state == "waiting":
            messages = self._queued(queue)
        elif state == "active":
            with self._lock:
                messages = list(self._active[queue].values())
        elif state == "delayed":
            with self._lock:
                messages = list(self._held[queue].values())
            messages += self._queued(dq_name(queue))
        else:
            raise ValueError(f"unknown state {state!r}")
        page = [job_from_message(_plain(m), state) for m in messages[offset : offset + limit]]
        with self._lock:
            page = [with_failure(job, self._failures.get(job.id)) for job in page]
        return JobPage(len(messages), page)

    def retry_failed(self, queue: str, ids: Sequence[str] | None = None) -> list[str]:
        dead = self.broker.dead_letters_by_queue[queue]
        wanted = set(ids) if ids is not None else None
        with self._lock:
            chosen = [m for m in dead if wanted is None or _job_id(m) in wanted]
            # The list is shared with the broker's consumers, which append to it without this
            # lock: remove one by one, never reassign, so a letter dying meanwhile stays.
            for message in chosen:
                dead.remove(message)
                self._failures.pop(_job_id(message), None)
        for message in chosen:
            self.broker.enqueue(fresh_copy(_plain(message), queue))
        return [_job_id(m) for m in chosen]

    def clear(self, queue: str, state: str) -> int:
        if state in ("waiting", "delayed"):
            q = self.broker.queues.get(queue if state == "waiting" else dq_name(queue))
            dropped = 0
            while q is not None:
                try:
                    q.get_nowait()
                except Empty:
                    break
                q.task_done()
                dropped += 1
            return dropped
        with self._lock:
            if state == "failed":
                dead = self.broker.dead_letters_by_queue[queue]
                dropped = len(dead)
                dead.clear()
                return dropped
            if state == "completed":
                dropped = len(self._done[queue])
                self._done[queue].clear()
                return dropped
        raise ValueError(f"{state!r} cannot be cleared")

    def record_completed(
        self, message: AnyMessage, *, finished_at: float, duration_ms: float
    ) -> None:
        queue = message.queue_name.removesuffix(".DQ")
        record = completed_record(message, finished_at=finished_at, duration_ms=duration_ms)
        with self._lock:
            self._done[queue].append(record)
            self._done_total[queue] += 1

    def finished_since(self, queue: str, since: float) -> int:
        with self._lock:
            done = list(self._done[queue])
        return sum(1 for record in done if record["finished_at"] >= since * 1000)

    def record_failed(
        self, message: AnyMessage, exception: BaseException, *, attempts: int, at: float
    ) -> None:
        record = failure_record(exception, attempts=attempts, at=at)
        with self._lock:
            self._failures[_job_id(message)] = record

    def prune_records(self, queue: str, *, older_than: float, keep: int) -> int:
        with self._lock:
            dead = {_job_id(m) for dq in self.broker.dead_letters_by_queue.values() for m in dq}
            for gone in set(self._failures) - dead:
                del self._failures[gone]
            done = self._done[queue]
            before = len(done)
            while done and (done[0]["finished_at"] < older_than * 1000 or len(done) > keep):
                done.popleft()
            return before - len(done)

    def beat(self, role: str, member: str, now: float) -> None:
        with self._lock:
            self._beats[role][member] = now

    def leave(self, role: str, member: str) -> None:
        with self._lock:
            self._beats[role].pop(member, None)

    def alive(self, role: str, now: float, timeout: float) -> list[str]:
        with self._lock:
            return sorted(m for m, at in self._beats[role].items() if now - at <= timeout)

    def started(self, message: AnyMessage) -> None:
        queue = message.queue_name.removesuffix(".DQ")
        with self._lock:
            self._held[queue].pop(message.message_id, None)
            self._active[queue][message.message_id] = _plain(message)

    def finished(self, message: AnyMessage) -> None:
        with self._lock:
            self._active[message.queue_name.removesuffix(".DQ")].pop(message.message_id, None)

    def held(self, message: AnyMessage) -> None:
        with self._lock:
            self._held[message.queue_name.removesuffix(".DQ")][message.message_id] = _plain(message)


def _plain(message: Any) -> Message[Any]:
    """The Message inside a MessageProxy (the stub broker's dead letters are proxies)."""
    return getattr(message, "_message", message)


def _job_id(message: Any) -> str:
    plain = _plain(message)
    return str(plain.options.get("redis_message_id") or plain.message_id)


_stores: weakref.WeakKeyDictionary[Broker, QueueStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def queue_store(broker: Broker) -> QueueStore:
    """The store of this broker's queues (one per broker, shared by the process)."""
    with _stores_lock:
        store = _stores.get(broker)
        if store is None:
            if isinstance(broker, RedisBroker):
                store = RedisQueueStore(broker.client, broker.namespace)
            elif isinstance(broker, StubBroker):
                store = MemoryQueueStore(broker)
            else:
                raise TypeError(f"no queue store for {type(broker).__name__}")
            _stores[broker] = store
        return store
