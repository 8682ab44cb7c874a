"""Rows for the benchmark, written with SQL in bulk rather than through the API.

A scheduled post as `herald_api.services.posts.create_post` writes it: a `posts` row with
status `scheduled` and `scheduled_at`, and one `targets` row per account with status
`scheduled`, version 1 and `due_at` = the post's time. The benchmark makes one target per post,
its accounts taken in turn, so that no two targets share a post row (the publisher locks the
post to derive its status) and what is measured is the pipeline, not contention on one post.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Json

from bench.infra import libpq_url

# posts and targets in one statement: the targets' foreign keys are checked at its end.
_INSERT_POSTS_AND_TARGETS = """
WITH accounts AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM accounts
    WHERE tenant_id = %(tenant_id)s AND platform = 'sandbox'
), new AS MATERIALIZED (
    SELECT g,
           gen_random_uuid()::text AS post_id,
           gen_random_uuid()::text AS target_id,
           accounts.ids[1 + g %% cardinality(accounts.ids)] AS account_id,
           %(due_at)s::timestamptz + (g %% %(spread)s::bigint) * interval '1 second' AS due_at
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g, accounts
), posts_made AS (
    INSERT INTO posts (id, tenant_id, content, media, status, scheduled_at, version,
                       created_at, updated_at)
    SELECT post_id, %(tenant_id)s, %(label)s || ' #' || g, '[]', 'scheduled', due_at, 1,
           now(), now()
    FROM new
)
INSERT INTO targets (id, tenant_id, post_id, account_id, platform, status, version, due_at,
                     attempt_count, updated_at, checkpoint)
SELECT target_id, %(tenant_id)s, post_id, account_id, 'sandbox', 'scheduled', 1, due_at,
       0, now(), '{}'
FROM new
"""


def connect(database_url: str) -> psycopg.Connection[Any]:
    """A plain psycopg connection to the benchmark's database."""
    return psycopg.connect(libpq_url(database_url))


def create_tenant(conn: psycopg.Connection[Any], name: str) -> str:
    """A tenant row (no API key: the rows are not reached through the API)."""
    tenant_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO tenants (id, name, created_at) VALUES (%s, %s, now())", (tenant_id, name)
    )
    return tenant_id


def create_sandbox_accounts(
    conn: psycopg.Connection[Any],
    tenant_id: str,
    count: int,
    settings: dict[str, Any] | None = None,
) -> list[str]:
    """`count` active sandbox accounts with these settings (default none: no latency, no
    pace)."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO accounts (id, tenant_id, platform, handle, settings, status,"
            " refresh_failures, created_at, updated_at)"
            " VALUES (%s, %s, 'sandbox', %s, %s, 'active', 0, now(), now())",
            [
                (account_id, tenant_id, f"bench-{n}", Json(settings or {}))
                for n, account_id in enumerate(ids)
            ],
        )
    return ids


def insert_scheduled_posts(
    conn: psycopg.Connection[Any],
    tenant_id: str,
    count: int,
    due_at: datetime,
    *,
    spread_seconds: int = 1,
    label: str = "bench",
    first: int = 1,
) -> None:
    """`count` scheduled posts with one target each, over the tenant's sandbox accounts.

    Post number g is due at `due_at` + (g mod `spread_seconds`) seconds: all at `due_at`
    by default. Not committed here: the caller decides when the rows become visible.
    """
    conn.execute(
        _INSERT_POSTS_AND_TARGETS,
        {
            "tenant_id": tenant_id,
            "due_at": due_at,
            "spread": max(1, spread_seconds),
            "first": first,
            "last": first + count - 1,
            "label": label,
        },
    )
