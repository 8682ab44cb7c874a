"""Analytics for the API: starting a pull, and reading snapshots back, scoped to the tenant.

Snapshots are cumulative counts (likes so far, views so far), so they are never added up over
time: an aggregate takes the latest snapshot of each target in each bucket (each UTC day when
grouped by day, else the whole range) and sums those over the targets of a group. The latest
one per bucket is picked with a window function (row_number), which SQLite (3.25+) and
PostgreSQL both have.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from dramatiq.broker import Broker
from sqlalchemy import Date, cast, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from herald_api.schemas.analytics import (
    DEFAULT_RANGE_DAYS,
    MAX_RANGE_DAYS,
    AnalyticsOut,
    AnalyticsPullBody,
    AnalyticsQuery,
    AnalyticsRow,
    MetricValues,
    PostAnalyticsOut,
    SnapshotOut,
    TargetAnalyticsOut,
)
from herald_api.services.jobs import start_job
from herald_common.analytics import METRICS
from herald_common.contracts import PULL_ANALYTICS
from herald_common.errors import FieldError, InvalidInput, NotFound
from herald_common.models import Job, MetricSnapshot, Post, Target
from herald_common.timeutil import utcnow

# -- pulling ----------------------------------------------------------------------------------


def start_pull(
    engine: Engine, broker: Broker, tenant_id: str, body: AnalyticsPullBody, *, max_active: int
) -> Job:
    """Accept a client's pull: checked (422 naming the field) before anything is written, then
    a job is written and sent.

    Without posts named, the pull covers at most MAX_RANGE_DAYS of publishing (the last
    DEFAULT_RANGE_DAYS when no start is given): one job must finish within its time limit, and
    every platform call spends the rate limits publishing needs too.
    """
    start = body.start
    if body.post_ids is None:
        start, _ = _days(body.start, body.end)
    else:
        _check_order(body.start, body.end)

    def prepare(session: Session) -> dict[str, Any]:
        if body.post_ids is not None:
            _check_posts(session, tenant_id, body.post_ids)
        payload: dict[str, Any] = {"start": start, "end": body.end, "post_ids": body.post_ids}
        if body.metrics is not None:
            payload["metrics"] = list(dict.fromkeys(body.metrics))
        return payload

    return start_job(engine, broker, tenant_id, PULL_ANALYTICS, prepare, max_active=max_active)


def _check_order(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and end < start:
        raise InvalidInput(FieldError("end", f"must not be before start ({start.isoformat()})"))


def _check_posts(session: Session, tenant_id: str, post_ids: Sequence[str]) -> None:
    found = set(
        session.exec(
            select(Post.id).where(col(Post.tenant_id) == tenant_id, col(Post.id).in_(post_ids))
        ).all()
    )
    unknown = [
        FieldError(f"post_ids.{index}", "no such post")
        for index, post_id in enumerate(post_ids)
        if post_id not in found
    ]
    if unknown:
        raise InvalidInput(unknown)


# -- aggregates -------------------------------------------------------------------------------


def date_range(query: AnalyticsQuery, today: date | None = None) -> tuple[date, date]:
    """The UTC days to aggregate over: as asked, else the last 30 days; 422 past 366 days."""
    return _days(query.start, query.end, today)


def _days(start: date | None, end: date | None, today: date | None = None) -> tuple[date, date]:
    """The UTC days from `start` to `end` (default: the DEFAULT_RANGE_DAYS up to today); 422
    when they are out of order or span more than MAX_RANGE_DAYS."""
    end = end or today or utcnow().date()
    start = start or end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    _check_order(start, end)
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(FieldError("start", f"the range may span at most {MAX_RANGE_DAYS} days"))
    return start, end


def aggregate(
    session: Session, tenant_id: str, query: AnalyticsQuery, *, today: date | None = None
) -> AnalyticsOut:
    """Sums per (day, account, platform), or per the groupings asked for, over the range."""
    start, end = date_range(query, today)
    groups = list(dict.fromkeys(query.group_by))
    snapshot = MetricSnapshot.__table__.c  # type: ignore[attr-defined]
    by_day = "day" in groups
    day = _utc_day(session, snapshot.taken_at)
    bucket = [snapshot.target_id, day] if by_day else [snapshot.target_id]
    conditions = [
        snapshot.tenant_id == tenant_id,
        snapshot.taken_at >= datetime.combine(start, time.min, UTC),
        snapshot.taken_at < datetime.combine(end + timedelta(days=1), time.min, UTC),
    ]
    if query.platform is not None:
        conditions.append(snapshot.platform == query.platform)
    if query.account_id is not None:
        conditions.append(snapshot.account_id == query.account_id)
    ranked = (
        sa.select(
            snapshot.post_id,
            snapshot.account_id,
            snapshot.platform,
            day.label("day"),
            *(snapshot[name] for name in METRICS),
            func.row_number()
            .over(partition_by=bucket, order_by=[snapshot.taken_at.desc(), snapshot.id.desc()])
            .label("rank"),
        )
        .where(*conditions)
        .subquery()
    )
    keys = {"day": ranked.c.day, "account": ranked.c.account_id, "platform": ranked.c.platform}
    grouped = [keys[name] for name in ("day", "account", "platform") if name in groups]
    rows = session.execute(
        sa.select(
            *grouped,
            func.count(func.distinct(ranked.c.post_id)).label("posts"),
            *(func.sum(ranked.c[name]).label(name) for name in METRICS),
        )
        .where(ranked.c.rank == 1)
        .group_by(*grouped)
        .order_by(*grouped)
    ).mappings()
    data = [
        AnalyticsRow(
            day=_as_date(row["day"]) if by_day else None,
            account_id=row["account_id"] if "account" in groups else None,
            platform=row["platform"] if "platform" in groups else None,
            posts=row["posts"],
            **{name: _as_int(row[name]) for name in METRICS},
        )
        for row in rows
    ]
    return AnalyticsOut(start=start, end=end, group_by=groups, data=data)


def _utc_day(session: Session, column: Any) -> Any:
    """The UTC day of a timestamp column, in SQL. SQLite keeps UTC without a zone (see
    herald_common.timeutil), PostgreSQL a timestamptz read in the session's zone."""
    if session.get_bind().dialect.name == "sqlite":
        return func.date(column)
    return cast(func.timezone("UTC", column), Date)


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- one post ---------------------------------------------------------------------------------


def post_analytics(session: Session, tenant_id: str, post_id: str) -> PostAnalyticsOut:
    """The post's snapshots per target, oldest first, and the sum of each target's latest."""
    post = session.get(Post, post_id)
    if post is None or post.tenant_id != tenant_id:
        raise NotFound(f"no post {post_id}")
    targets = session.exec(
        select(Target)
        .where(col(Target.post_id) == post_id, col(Target.tenant_id) == tenant_id)
        .order_by(col(Target.id))
    ).all()
    snapshots = session.exec(
        select(MetricSnapshot)
        .where(col(MetricSnapshot.post_id) == post_id, col(MetricSnapshot.tenant_id) == tenant_id)
        .order_by(col(MetricSnapshot.taken_at), col(MetricSnapshot.id))
    ).all()
    history: dict[str, list[SnapshotOut]] = {}
    for snapshot in snapshots:
        history.setdefault(snapshot.target_id, []).append(SnapshotOut.model_validate(snapshot))
    out = []
    for target in targets:
        mine = history.get(target.id, [])
        out.append(
            TargetAnalyticsOut(
                target_id=target.id,
                account_id=target.account_id,
                platform=target.platform,
                platform_url=target.platform_url,
                published_at=target.published_at,
                latest=mine[-1] if mine else None,
                history=mine,
            )
        )
    latest = [t.latest for t in out if t.latest is not None]
    totals = MetricValues(**{name: _total(latest, name) for name in METRICS})
    return PostAnalyticsOut(post_id=post_id, totals=totals, targets=out)


def _total(snapshots: list[SnapshotOut], name: str) -> int | None:
    values = [getattr(s, name) for s in snapshots if getattr(s, name) is not None]
    return sum(values) if values else None
