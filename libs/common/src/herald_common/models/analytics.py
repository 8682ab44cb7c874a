"""Metrics of published targets, as snapshots over time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class MetricSnapshot(SQLModel, table=True):
    """What a platform said of one published target at one moment. A metric the platform
    does not give is None, never 0."""

    __tablename__ = "metric_snapshots"
    __table_args__ = (
        Index("ix_metric_snapshots_target_taken", "target_id", "taken_at"),
        Index("ix_metric_snapshots_tenant_taken", "tenant_id", "taken_at"),
    )

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    target_id: str = Field(foreign_key="targets.id", max_length=36, ondelete="CASCADE")
    post_id: str = Field(max_length=36)
    account_id: str = Field(max_length=36)
    platform: str = Field(max_length=32)
    taken_at: datetime = timestamp(nullable=False, default_now=True)
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    quotes: int | None = None
    views: int | None = None
    impressions: int | None = None
    # Anything else the platform gave (saves, shares, reach…), by its name.
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
