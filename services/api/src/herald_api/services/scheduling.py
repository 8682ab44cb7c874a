"""Turning a client's `scheduled_at` (+ optional `timezone`) into an aware UTC instant."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald_common.errors import FieldError


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
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
    for display. The instant must not be before `now`.
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
    when = scheduled_at.astimezone(UTC)
    if when < now:
        errors.append(FieldError("scheduled_at", "is in the past"))
    return (None if errors else when), errors
