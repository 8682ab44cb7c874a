"""2. End-to-end publish throughput and 3. the burst's lateness, on the running stack.

Both are one experiment, a drain: N scheduled targets (one per post, over the tenant's sandbox
accounts) are written in one transaction, all due at the same whole second T a few seconds
ahead, so every row is in the database before the scheduler can see it (it looks
SCHEDULER_LOOKAHEAD_SECONDS ahead). From then on the real services do everything: the
scheduler claims and sends, `dramatiq` claims, calls the sandbox platform, records the outcome
and the attempt. When no target of the run is left active, the rows say what happened:

* throughput = published / (last `published_at` − T), targets per second from due;
* lateness of each target = `published_at` − the post's `scheduled_at` (T);
* drain time = last `published_at` − T;
* where the time went: when the scheduler had sent the last message (last `queued_at` − T),
  how long targets waited for a worker (the attempt's `lateness_seconds`: claim − due), and
  how long a claimed target took to be recorded (`published_at` − the attempt's start);
* exactly once: accepted sandbox deliveries and attempts, which should both equal N;
* messages beyond one per target, from the services' counters
  (`herald_publish_messages_resent_total` on the scheduler's /metrics: sent again because the
  broker no longer held the first; `herald_publish_messages_stale_total` on the publisher's:
  skipped because their target was no longer queued at their version). A drain ends when no
  target is active and the publish queue is empty, so that leftover duplicates do not spill
  into the next measurement.
* exactly once: every target has exactly one accepted sandbox delivery and one attempt; a
  target with none or two fails the run.

The sandbox platform answers at once (no latency, no failure) unless its accounts' settings
ask for latency (the latency part's do: 200 ± 50 ms), and is not paced unless they ask for it
(they do not), so PUBLISH_PACING stays at its default without slowing anything; its delivery
is one row written in the same database, in the transaction that records the outcome.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench import profile
from bench.cpu import CpuMeter
from bench.infra import BenchStack, queue_keys, wait_drained
from bench.seeding import connect, insert_scheduled_posts
from bench.stats import summary
from herald_common.contracts import PUBLISH

ACTIVE = ("scheduled", "queued", "publishing", "retrying")
#: A drain that publishes nothing for this long is stuck: give up with the logs.
STALL_SECONDS = 60.0


@dataclass
class DrainResult:
    """What the rows of one drain say."""

    label: str
    targets: int
    due: datetime
    published: int
    outcomes: dict[str, int]
    lateness: list[float]
    drain_seconds: float
    visible_before_due: float
    last_sent_after_due: float
    wait_for_worker: dict[str, float]
    claim_to_recorded_ms: dict[str, float]
    deliveries: int
    attempts: int
    not_once: int  # targets with no accepted delivery, or more than one
    cores: dict[str, float] = field(default_factory=dict)
    cpu_wall: float = 0.0  # the seconds `cores` is an average over
    resent: int | None = None  # messages the scheduler sent again (from its log)
    stale: int | None = None  # messages the publisher skipped as stale (from its log)
    queue_empty_after: float = math.nan  # seconds from the last publish to an empty queue
    rss_before_mib: float = math.nan  # the publisher's resident memory when the drain began
    rss_peak_mib: float = math.nan  # and at its highest during the drain

    @property
    def throughput(self) -> float:
        return self.published / self.drain_seconds if self.drain_seconds > 0 else math.nan

    @property
    def lateness_summary(self) -> dict[str, float]:
        return summary(self.lateness)


def drain(
    stack: BenchStack,
    tenant_id: str,
    count: int,
    *,
    label: str,
    lookahead_seconds: float,
    say: Callable[[str], None] = print,
    profile_dir: Path | None = None,
) -> DrainResult:
    """Schedule `count` targets due at one second, wait until the stack has settled them all."""
    meter = CpuMeter(lambda: {name: stack.pids(name) for name in stack.procs})
    counted = _message_counters(stack)
    with connect(stack.database_url) as conn:
        # Ahead by the scheduler's lookahead, plus time to write the rows (at 10,000/s: they
        # go in at twice that or more on a small machine).
        due_ts = math.ceil(time.time() + lookahead_seconds + 2 + count / 10_000)
        due = datetime.fromtimestamp(due_ts, UTC)
        with conn.transaction():
            insert_scheduled_posts(conn, tenant_id, count, due, label=label)
        visible_before_due = due_ts - time.time()
        if visible_before_due < lookahead_seconds:
            say(
                f"  note: rows visible only {visible_before_due:.2f} s before due "
                f"(lookahead {lookahead_seconds} s): the start is late by the difference"
            )
        time.sleep(max(0.0, due_ts - lookahead_seconds - time.time()))
        recordings = [
            profile.record(f"{label}-{name}", stack.procs[name].pid, profile_dir)
            for name in ("publisher", "scheduler")
            if profile_dir is not None
        ]
        rss_before = stack.rss_mib("publisher")
        before = meter.snapshot()
        rss_peak = _wait_settled(stack, conn, tenant_id, count, say)
        after = meter.snapshot()
        for recording in recordings:
            recording.stop()
        cores = meter.cores(before, after)
        result = _read_results(
            conn,
            tenant_id=tenant_id,
            label=label,
            count=count,
            due=due,
            visible_before_due=visible_before_due,
            cores=cores,
            cpu_wall=after.at - before.at,
        )
    if result.not_once or result.deliveries != result.published:
        raise RuntimeError(
            f"{label}: not exactly once: {result.not_once} target(s) without exactly one "
            f"accepted delivery; {result.deliveries} deliveries for {result.published} "
            "published targets"
        )
    result.rss_before_mib, result.rss_peak_mib = rss_before, max(rss_peak, rss_before)
    # Duplicates still queued would be worked off during the next measurement.
    client = redis.Redis.from_url(stack.redis_url)
    hashes = [queue_keys(stack.namespace, q)[1] for q in (PUBLISH.queue, f"{PUBLISH.queue}.DQ")]
    empty_at = wait_drained(stack, client, hashes, poll=0.1, timeout=1800)
    result.queue_empty_after = empty_at - (due_ts + result.drain_seconds)
    after = _message_counters(stack)
    result.resent = round(after["resent"] - counted["resent"])
    result.stale = round(after["stale"] - counted["stale"])
    return result


#: The counters of messages beyond one per target, and the process serving each.
COUNTERS = {
    "resent": ("scheduler", "herald_publish_messages_resent_total"),
    "stale": ("publisher", "herald_publish_messages_stale_total"),
}


def _message_counters(stack: BenchStack) -> dict[str, float]:
    """Messages the scheduler has sent again and the publisher skipped as stale, so far,
    read from their /metrics."""
    return {
        name: read_counter(stack.metrics_url(process), metric)
        for name, (process, metric) in COUNTERS.items()
    }


def read_counter(url: str, metric: str) -> float:
    """The value of an unlabelled counter in a Prometheus text exposition (0 when absent)."""
    text = httpx.get(url, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == metric:
            total += float(value)
    return total


def _wait_settled(
    stack: BenchStack,
    conn: psycopg.Connection[Any],
    tenant_id: str,
    count: int,
    say: Callable[[str], None],
) -> float:
    """Until no target of the drain is active; the publisher's highest resident memory (MiB)
    seen meanwhile."""
    rss_peak = 0.0
    progress_at = time.monotonic()
    reported_at = time.monotonic()
    remaining = count
    while True:
        row = conn.execute(
            "SELECT count(*) FROM targets WHERE tenant_id = %s AND status = ANY(%s)",
            (tenant_id, list(ACTIVE)),
        ).fetchone()
        conn.commit()
        left = int(row[0]) if row else 0
        now = time.monotonic()
        if left < remaining:
            remaining, progress_at = left, now
        rss_peak = max(rss_peak, stack.rss_mib("publisher"))
        if remaining == 0:
            return rss_peak
        if now - progress_at > STALL_SECONDS:
            raise RuntimeError(
                f"{remaining} target(s) still active after {STALL_SECONDS:.0f} s without "
                f"progress\n--- publisher ---\n{stack.log('publisher')}"
                f"\n--- scheduler ---\n{stack.log('scheduler')}"
            )
        if now - reported_at >= 10:
            say(f"  … {count - remaining:,}/{count:,} settled")
            reported_at = now
        stack.check_alive()
        time.sleep(0.25)


_RESULTS = """
SELECT t.status,
       extract(epoch FROM t.published_at - p.scheduled_at),
       extract(epoch FROM t.queued_at - p.scheduled_at),
       a.lateness_seconds,
       extract(epoch FROM t.published_at - a.started_at) * 1000
FROM posts p
JOIN targets t ON t.post_id = p.id
LEFT JOIN LATERAL (
    SELECT lateness_seconds, started_at FROM attempts
    WHERE attempts.target_id = t.id ORDER BY number DESC LIMIT 1
) a ON true
WHERE p.tenant_id = %(tenant_id)s AND p.scheduled_at = %(due)s AND p.content LIKE %(like)s
"""

_COUNTS = """
SELECT
  (SELECT count(*) FROM attempts a JOIN targets t ON t.id = a.target_id
     JOIN posts p ON p.id = t.post_id
     WHERE p.tenant_id = %(tenant_id)s AND p.scheduled_at = %(due)s AND p.content LIKE %(like)s),
  (SELECT count(*) FROM sandbox_deliveries d JOIN targets t ON t.id = d.idempotency_key
     JOIN posts p ON p.id = t.post_id
     WHERE p.tenant_id = %(tenant_id)s AND p.scheduled_at = %(due)s AND p.content LIKE %(like)s
       AND d.outcome = 'accepted'),
  (SELECT count(*) FROM targets t JOIN posts p ON p.id = t.post_id
     WHERE p.tenant_id = %(tenant_id)s AND p.scheduled_at = %(due)s AND p.content LIKE %(like)s
       AND (SELECT count(*) FROM sandbox_deliveries d
            WHERE d.idempotency_key = t.id AND d.outcome = 'accepted') <> 1)
"""


def _read_results(
    conn: psycopg.Connection[Any],
    *,
    tenant_id: str,
    label: str,
    count: int,
    due: datetime,
    visible_before_due: float,
    cores: dict[str, float],
    cpu_wall: float,
) -> DrainResult:
    params = {"tenant_id": tenant_id, "due": due, "like": f"{label} #%"}
    rows = conn.execute(_RESULTS, params).fetchall()
    counted = conn.execute(_COUNTS, params).fetchone()
    conn.commit()
    outcomes: dict[str, int] = {}
    lateness: list[float] = []
    sent: list[float] = []
    waits: list[float] = []
    service: list[float] = []
    for status, late, queued, waited, recorded_ms in rows:
        outcomes[status] = outcomes.get(status, 0) + 1
        if status == "published" and late is not None:
            lateness.append(float(late))
        if queued is not None:
            sent.append(float(queued))
        if waited is not None:
            waits.append(float(waited))
        if recorded_ms is not None:
            service.append(float(recorded_ms))
    return DrainResult(
        label=label,
        targets=count,
        due=due,
        published=outcomes.get("published", 0),
        outcomes=outcomes,
        lateness=lateness,
        drain_seconds=max(lateness) if lateness else math.nan,
        visible_before_due=visible_before_due,
        last_sent_after_due=max(sent) if sent else math.nan,
        wait_for_worker=summary(waits),
        claim_to_recorded_ms=summary(service),
        attempts=int(counted[0]) if counted else 0,
        deliveries=int(counted[1]) if counted else 0,
        not_once=int(counted[2]) if counted else count,
        cores=cores,
        cpu_wall=cpu_wall,
    )
