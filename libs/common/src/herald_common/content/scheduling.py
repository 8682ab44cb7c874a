"""When a month's generated posts are meant to go out: spread evenly over the days left in the
month, at the local times people read (in the brand's time zone), never in the past, never two
in the same minute.

Each day offers its times in order of preference: the usual reading times first (weekdays
09:00, 12:30, 17:30; weekends 10:00, 14:00), then other good hours, then every five minutes of
the waking day, so a hundred posts still fit in a short rest of a month. Local times are
turned into UTC with zoneinfo, so a day on which the clocks change keeps its wall-clock times.
"""

from __future__ import annotations

import calendar
from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: The reading times of a working day, best first.
WEEKDAY_TIMES = ("09:00", "12:30", "17:30", "08:00", "15:00", "19:30", "11:00", "20:30")
#: The reading times of a weekend day, best first.
WEEKEND_TIMES = ("10:00", "14:00", "11:30", "16:30", "19:00", "09:00", "20:00", "13:00")
#: How many of those are the main ones, taken in turn day by day.
MAIN_WEEKDAY, MAIN_WEEKEND = 3, 2
#: The waking day the five-minute fallback grid covers, local time.
GRID_START, GRID_END, GRID_STEP = time(7, 0), time(23, 0), timedelta(minutes=5)


class MonthFull(Exception):
    """Raised when fewer times are left in the month than posts were asked for."""

    def __init__(self, wanted: int, available: int) -> None:
        super().__init__(f"only {available} of the {wanted} times are left in the month")
        self.wanted = wanted
        self.available = available


def minute_of(when: datetime) -> datetime:
    """`when` in UTC, seconds dropped: two posts may not share one."""
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def month_is_over(year: int, month: int, tz: ZoneInfo, now: datetime) -> bool:
    """Whether the month has wholly passed in the zone `tz` (the current month has not)."""
    local = now.astimezone(tz)
    return (year, month) < (local.year, local.month)


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _grid() -> Iterator[time]:
    at = datetime.combine(date.min, GRID_START)
    end = datetime.combine(date.min, GRID_END)
    while at < end:
        yield at.time()
        at += GRID_STEP


def _local(day: date, at: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall-clock time, None when the clocks skip it that day."""
    local = datetime.combine(day, at, tzinfo=tz)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant


def day_times(day: date, tz: ZoneInfo) -> list[datetime]:
    """The day's times (UTC), best first: its main reading times, taken in turn from one day
    to the next (Monday 09:00, Tuesday 12:30, …) so a month's posts meet different readers;
    then the other good hours; then the five-minute grid."""
    weekend = day.weekday() >= 5
    preferred = WEEKEND_TIMES if weekend else WEEKDAY_TIMES
    main = MAIN_WEEKEND if weekend else MAIN_WEEKDAY
    turn = day.toordinal() % main
    ordered = [*preferred[turn:main], *preferred[:turn], *preferred[main:]]
    clocks = dict.fromkeys([*(_clock(value) for value in ordered), *_grid()])
    instants = (_local(day, at, tz) for at in clocks)
    return list(dict.fromkeys(minute_of(i) for i in instants if i is not None))


def _quotas(count: int, capacities: list[int]) -> list[int]:
    """`count` posts over days of these capacities: as even as can be, the extra ones spread
    over the month rather than bunched at its start, and a full day's excess given to the
    days with room nearest to it."""
    days = len(capacities)
    quotas = [(i + 1) * count // days - i * count // days for i in range(days)]
    excess = 0
    for i, capacity in enumerate(capacities):
        if quotas[i] > capacity:
            excess += quotas[i] - capacity
            quotas[i] = capacity
    while excess:
        # Least loaded first, then the nearest to the month's middle: the spread stays even.
        i = min(
            (i for i in range(days) if quotas[i] < capacities[i]),
            key=lambda i: (quotas[i], abs(i - days // 2)),
        )
        quotas[i] += 1
        excess -= 1
    return quotas


def plan_times(
    year: int,
    month: int,
    count: int,
    tz: ZoneInfo,
    *,
    now: datetime,
    taken: Collection[datetime] = (),
    lead: timedelta = timedelta(0),
) -> list[datetime]:
    """`count` UTC times in the month (local to `tz`), ascending: after `now + lead`, none in a
    minute of `taken`, spread evenly over the days that have times left.

    Raises MonthFull when the rest of the month has fewer free minutes than `count`.
    """
    earliest = now + lead
    busy = {minute_of(t) for t in taken}
    days = []
    for number in range(1, calendar.monthrange(year, month)[1] + 1):
        free = [t for t in day_times(date(year, month, number), tz) if t > earliest]
        free = [t for t in free if t not in busy]
        if free:
            days.append(free)
    available = sum(len(free) for free in days)
    if count > available:
        raise MonthFull(count, available)
    if count == 0:
        return []
    quotas = _quotas(count, [len(free) for free in days])
    return sorted(t for free, quota in zip(days, quotas, strict=True) for t in free[:quota])
