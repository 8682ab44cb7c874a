"""Analytics: pulling metrics, the aggregates per account, platform and day, and one post's
history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald_api.schemas import Body, Out
from herald_common.platforms import PLATFORMS

Metric = Literal["likes", "reposts", "replies", "quotes", "views", "impressions"]
Grouping = Literal["day", "account", "platform"]

#: Days a range may start or end on: Herald published nothing before 2000, and a range's
#: arithmetic (a day before, a day after) must stay within datetime's years 1-9999.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(9999, 12, 30)
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]

#: The longest range GET /v1/analytics aggregates over, in days (both ends included).
MAX_RANGE_DAYS = 366
#: The range GET /v1/analytics covers when none is given: the last 30 days.
DEFAULT_RANGE_DAYS = 30
MAX_PULL_POSTS = 1000


class AnalyticsPullBody(Body):
    """What to pull: the tenant's published posts, all or some."""

    start: Day | None = Field(
        default=None, description="Only targets published on this UTC day or later."
    )
    end: Day | None = Field(
        default=None, description="Only targets published on this UTC day or earlier."
    )
    metrics: list[Metric] | None = Field(
        default=None,
        min_length=1,
        description="Which metrics to keep (default likes, reposts, replies and views).",
    )
    post_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PULL_POSTS,
        description="Only these posts (the tenant's).",
    )

    @field_validator("post_ids")
    @classmethod
    def _ids_are_short(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for item in value:
                if not 1 <= len(item) <= 36:
                    raise ValueError("every post id has 1 to 36 characters")
        return value


class AnalyticsQuery(BaseModel):
    """Query parameters of the aggregates (strings from the URL, so not strict)."""

    model_config = ConfigDict(extra="ignore")

    start: Day | None = Field(
        default=None, description="First UTC day (default: 29 days before `end`)."
    )
    end: Day | None = Field(default=None, description="Last UTC day (default: today).")
    platform: str | None = Field(default=None, description="One of: " + ", ".join(PLATFORMS))
    account_id: str | None = Field(default=None, max_length=36)
    group_by: list[Grouping] = Field(
        default=["day", "account", "platform"],
        description="Comma-separated: any of day, account, platform (default all three). A "
        "grouping left out is summed over.",
    )

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str | None) -> str | None:
        if value is not None and value not in PLATFORMS:
            raise ValueError(f"must be one of {', '.join(PLATFORMS)}")
        return value

    @field_validator("group_by", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class MetricValues(Out):
    """The metrics: None where no platform of the posts counted them."""

    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    quotes: int | None = None
    views: int | None = None
    impressions: int | None = None


class AnalyticsRow(MetricValues):
    """One group: the latest snapshot of each target in it (of each day when grouped by day),
    summed."""

    day: date | None = Field(default=None, description="Null when not grouped by day.")
    account_id: str | None = Field(default=None, description="Null when not grouped by account.")
    platform: str | None = Field(default=None, description="Null when not grouped by platform.")
    posts: int = Field(description="Posts with a snapshot in this group.")


class AnalyticsOut(Out):
    """Aggregates over a range of UTC days."""

    start: date
    end: date
    group_by: list[Grouping]
    data: list[AnalyticsRow]


class SnapshotOut(MetricValues):
    """What a platform counted at one moment."""

    taken_at: datetime
    extra: dict[str, Any] = Field(description="What else the platform gave, by its name.")


class TargetAnalyticsOut(Out):
    """One target's snapshots over time."""

    target_id: str
    account_id: str
    platform: str
    platform_url: str | None
    published_at: datetime | None
    latest: SnapshotOut | None
    history: list[SnapshotOut] = Field(description="Oldest first.")


class PostAnalyticsOut(Out):
    """A post's metrics: each target's history and the latest totals."""

    post_id: str
    totals: MetricValues = Field(description="The latest snapshot of each target, summed.")
    targets: list[TargetAnalyticsOut]
