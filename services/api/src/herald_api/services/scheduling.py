"""Turning a client's `scheduled_at` (+ optional `timezone`) into an aware UTC instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald_common.errors import FieldError


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


#: The furthest ahead a post may be scheduled: further is a mistake (a year typed wrong), and
#: time arithmetic on it (backoffs, due windows) must stay within datetime's years 1-9999.
MAX_AHEAD = timedelta(days=3660)


def to_utc(value: datetime, field: str, errors: list[FieldError]) -> datetime | None:
    """An aware `value` in UTC, or None with a FieldError when UTC takes it past years 1-9999
    ("9999-12-31T23:59:59-05:00" is in the year 10000 in UTC)."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        errors.append(FieldError(field, "is outside the years 1 to 9999 once converted to UTC"))
        return None


def resolve_schedule(
    scheduled_at: datetime | None, timezone: str | None, now: datetime
) -> tuple[datetime | None, list[FieldError]]:
    """The UTC instant the client means, or the rules the input breaks.

    `scheduled_at` either carries a UTC offset, or is a naive local time and `timezone` (an IANA
    name) says where. A naive time that falls in a DST gap or overlap is read with zoneinfo's
    `fold=0`: in an overlap (clocks going back) the earlier of the two instants; in a gap
    (clocks going forward, a local time that never happens) the offset from before the
    transition, which lands after the gap (e.g. 02:30 on a spring-forward night in Paris is
    03:30 local, 01:30Z). An aware time with a `timezone` is simply converted; the name is kept
    for display. The instant must not be before `now`, nor more than MAX_AHEAD after it.
    """
    errors: list[FieldError] = []
    tz = None
    if timezone is not None:
        tz = zone(timezone)
        if scheduled_at is None:
            errors.append(FieldError("timezone", "needs scheduled_at"))
        if tz is None:
            errors.append(FieldError("timezone", f"{timezone!r} is not a known IANA time zone"))
    if scheduled_at is None:
        return None, errors
    if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
        if timezone is None:
            errors.append(FieldError("scheduled_at", "has no UTC offset; add one or give timezone"))
            return None, errors
        if tz is None:
            return None, errors
        scheduled_at = scheduled_at.replace(tzinfo=tz, fold=0)
    when = to_utc(scheduled_at, "scheduled_at", errors)
    if when is None:
        return None, errors
    if when < now:
        errors.append(FieldError("scheduled_at", "is in the past"))
    elif when > now + MAX_AHEAD:
        errors.append(
            FieldError("scheduled_at", f"is more than {MAX_AHEAD.days} days ahead; check the year")
        )
    return (None if errors else when), errors
