"""Prometheus metrics Herald's own code records, and how each process serves them.

Names follow Prometheus conventions: `_total` counters, base units (`_seconds`), bounded label
values (a platform, a queue, an outcome, a status), never ids.

Who records what:
- the API: `herald_http_requests_total`, `herald_http_request_duration_seconds`;
- the publisher (and the scheduler when it reconciles): targets published and failed, attempts,
  and the lateness of each publish;
- the token-refresher: refreshes and accounts found needing re-auth;
- the content, image and analytics services: jobs finished by kind and status, and how long
  each run took;
- the scheduler: what it reads every METRICS_INTERVAL_SECONDS (queue depth per state, the age
  of the oldest due target, targets and accounts by status, live workers) and its ticks.
Dramatiq's own Prometheus middleware adds `dramatiq_*` in every worker service.

Several processes per pod (gunicorn's workers, Dramatiq's processes) write to
PROMETHEUS_MULTIPROC_DIR and one endpoint adds them up: `exposition()`. That variable must be
set before prometheus_client is first imported, so the entry points (gunicorn_conf,
workers.run_worker) call herald_common.multiproc.use_metrics_dir first.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Error kinds a failed target is counted under; anything else is counted as "other".
FAILURE_REASONS: Final = frozenset(
    {"permanent", "retryable", "rate_limited", "processing", "needs_reauth", "unknown"}
)
#: Lateness spans a message on time (tens of ms) to a retry hours later.
LATENESS_BUCKETS: Final = (
    0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400,
)  # fmt: skip

# --- publishing -------------------------------------------------------------------------------
TARGETS_PUBLISHED = Counter(
    "herald_targets_published_total", "Targets published, by platform.", ["platform"]
)
TARGETS_FAILED = Counter(
    "herald_targets_failed_total",
    "Targets that failed for good, by platform and reason (the target's error kind).",
    ["platform", "reason"],
)
PUBLISH_ATTEMPTS = Counter(
    "herald_publish_attempts_total",
    "Publish attempts by platform and what the target became (published, retrying, failed, "
    "unknown).",
    ["platform", "outcome"],
)
PUBLISH_LATENESS = Histogram(
    "herald_publish_lateness_seconds",
    "Published time minus the post's scheduled time, by platform.",
    ["platform"],
    buckets=LATENESS_BUCKETS,
)

PUBLISH_MESSAGES_STALE = Counter(
    "herald_publish_messages_stale_total",
    "Publish messages the publisher skipped: their target was no longer queued at their version "
    "(a duplicate, or the post changed since it was sent).",
)
PUBLISH_MESSAGES_RESENT = Counter(
    "herald_publish_messages_resent_total",
    "Publish messages the scheduler sent again because the broker no longer held the first "
    "(never sent, lost with Redis, or dead-lettered).",
)

# --- tokens -----------------------------------------------------------------------------------
TOKEN_REFRESHES = Counter(
    "herald_token_refreshes_total",
    "Token refreshes by platform and outcome (refreshed, retry, needs_reauth, error, skipped).",
    ["platform", "outcome"],
)
ACCOUNTS_NEEDING_REAUTH = Counter(
    "herald_accounts_needs_reauth_total",
    "Accounts that turned needs_reauth, by platform and by what found it (refresh, publish).",
    ["platform", "source"],
)

# --- background jobs (content, images, analytics pulls) --------------------------------------
JOBS_FINISHED = Counter(
    "herald_jobs_finished_total",
    "Background jobs that ended, by kind (e.g. image.generate) and status (succeeded, failed).",
    ["kind", "status"],
)
JOB_DURATION = Histogram(
    "herald_job_duration_seconds",
    "Duration of one run of a background job, by kind.",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)

# --- the API ----------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "herald_http_requests_total",
    "API requests by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "herald_http_request_duration_seconds",
    "API request duration by route template and method.",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# --- the scheduler (read from the database and Redis every METRICS_INTERVAL_SECONDS) ----------
# Gauges say what the newest reading said: in multiprocess mode, the most recent write wins.
QUEUE_MESSAGES = Gauge(
    "herald_queue_messages",
    "Messages per queue and state (waiting, delayed, active, failed: dead letters).",
    ["queue", "state"],
    multiprocess_mode="mostrecent",
)
OLDEST_DUE_AGE = Gauge(
    "herald_oldest_due_target_age_seconds",
    "Age of the oldest target that is due and not yet published (0: none): grows when nothing "
    "drains.",
    multiprocess_mode="mostrecent",
)
TARGETS = Gauge(
    "herald_targets",
    "Targets in the states that need watching (queued, publishing, retrying, unknown).",
    ["status"],
    multiprocess_mode="mostrecent",
)
ACCOUNTS = Gauge(
    "herald_accounts",
    "Connected accounts by platform and status.",
    ["platform", "status"],
    multiprocess_mode="mostrecent",
)
WORKERS_ALIVE = Gauge(
    "herald_workers_alive",
    "Processes that sent a heartbeat recently, by role (a queue name, or scheduler).",
    ["role"],
    multiprocess_mode="mostrecent",
)
TICK_DURATION = Histogram(
    "herald_scheduler_tick_duration_seconds",
    "Duration of one scheduler tick.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAST_TICK = Gauge(
    "herald_scheduler_last_tick_timestamp_seconds",
    "Unix time the scheduler last finished a tick.",
    multiprocess_mode="mostrecent",
)
TARGETS_DISPATCHED = Counter(
    "herald_targets_dispatched_total", "Targets the scheduler sent to the publish queue."
)


def failure_reason(error_kind: str | None) -> str:
    """A failed target's error kind as a bounded label value."""
    return error_kind if error_kind in FAILURE_REASONS else "other"


def observe_settled(
    platform: str, status: str, error_kind: str | None, lateness_seconds: float | None
) -> None:
    """Count one publish attempt that was recorded (call after its transaction committed)."""
    attempts, published, lateness = _settled(platform, status)
    attempts.inc()
    if status == "published":
        published.inc()
        if lateness_seconds is not None:
            lateness.observe(max(0.0, lateness_seconds))
    elif status == "failed":
        TARGETS_FAILED.labels(platform, failure_reason(error_kind)).inc()


@functools.cache
def _settled(platform: str, status: str) -> tuple[Any, Any, Any]:
    """The labelled series one settled publish moves (looked up once: every publish counts)."""
    return (
        PUBLISH_ATTEMPTS.labels(platform, status),
        TARGETS_PUBLISHED.labels(platform),
        PUBLISH_LATENESS.labels(platform),
    )


def multiprocess_dir() -> str | None:
    """The directory several processes write their samples to, when there is one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """This pod's samples in the text format, and its content type: the sum over the
    multiprocess directory when there is one, else this process's registry."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST
