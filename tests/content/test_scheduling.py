"""When a month's posts are suggested: evenly over the days, at local reading times, never in
the past, never two in one minute, whatever the clocks do."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from herald_common.content.scheduling import (
    MAIN_WEEKDAY,
    MAIN_WEEKEND,
    WEEKDAY_TIMES,
    WEEKEND_TIMES,
    MonthFull,
    minute_of,
    month_is_over,
    plan_times,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
MAIN_TIMES = {*WEEKDAY_TIMES[:MAIN_WEEKDAY], *WEEKEND_TIMES[:MAIN_WEEKEND]}


def local_clock(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%H:%M")


@pytest.mark.parametrize(("year", "month", "days"), [(2031, 4, 30), (2031, 5, 31)])
def test_thirty_posts_take_thirty_different_days(year: int, month: int, days: int) -> None:
    # When 30 posts are planned in a month of 30 or 31 days
    times = plan_times(year, month, 30, PARIS, now=LONG_AGO)

    # Then each is on a day of its own in that month, at one of the main reading times
    local_days = [t.astimezone(PARIS).date() for t in times]
    assert len(times) == 30
    assert len(set(local_days)) == 30
    assert all((d.year, d.month) == (year, month) for d in local_days)
    assert {local_clock(t, PARIS) for t in times} <= MAIN_TIMES
    assert times == sorted(times)
    # and in a 31-day month the one day left out is not at the month's end (spread, not cut)
    if days == 31:
        assert local_days[-1].day == 31


def test_weekdays_and_weekends_keep_their_own_reading_times() -> None:
    times = plan_times(2031, 4, 30, PARIS, now=LONG_AGO)

    weekend = {local_clock(t, PARIS) for t in times if t.astimezone(PARIS).weekday() >= 5}
    weekday = {local_clock(t, PARIS) for t in times if t.astimezone(PARIS).weekday() < 5}
    assert weekend == set(WEEKEND_TIMES[:MAIN_WEEKEND])
    assert weekday == set(WEEKDAY_TIMES[:MAIN_WEEKDAY])


def test_more_posts_than_days_are_spread_evenly() -> None:
    # When 75 posts are planned in a 30-day month
    times = plan_times(2031, 6, 75, PARIS, now=LONG_AGO)

    # Then every day has two or three, never two in one minute
    per_day = Counter(t.astimezone(PARIS).date() for t in times)
    assert len(per_day) == 30
    assert set(per_day.values()) == {2, 3}
    assert len({minute_of(t) for t in times}) == 75


@pytest.mark.parametrize(
    ("tz", "year", "month", "offsets"),
    [
        (PARIS, 2031, 3, {timedelta(hours=1), timedelta(hours=2)}),  # clocks forward 30 March
        (NEW_YORK, 2031, 11, {timedelta(hours=-4), timedelta(hours=-5)}),  # back 2 November
    ],
)
def test_local_times_hold_across_a_daylight_saving_change(
    tz: ZoneInfo, year: int, month: int, offsets: set[timedelta]
) -> None:
    # When a month in which the clocks change is planned
    times = plan_times(year, month, 30, tz, now=LONG_AGO)

    # Then the wall-clock times stay the reading times on both sides of the change,
    # which means the UTC offsets differ
    assert {local_clock(t, tz) for t in times} <= MAIN_TIMES
    assert {t.astimezone(tz).utcoffset() for t in times} == offsets
    assert all(t.tzinfo == UTC for t in times)


def test_nothing_is_planned_in_the_past_or_within_the_lead() -> None:
    # Given the middle of a month (14:10 on the 15th, Paris)
    now = datetime(2031, 4, 15, 12, 10, tzinfo=UTC)
    lead = timedelta(hours=1)

    # When 30 posts are planned for that month
    times = plan_times(2031, 4, 30, PARIS, now=now, lead=lead)

    # Then all come after now + lead, spread over the 16 days that have times left
    assert min(times) > now + lead
    days = {t.astimezone(PARIS).day for t in times}
    assert days == set(range(15, 31))
    assert len({minute_of(t) for t in times}) == 30


def test_taken_minutes_are_left_alone() -> None:
    # Given the times a first plan took
    first = plan_times(2031, 4, 30, PARIS, now=LONG_AGO)

    # When a second plan must avoid them
    second = plan_times(2031, 4, 30, PARIS, now=LONG_AGO, taken=first)

    # Then none is shared, and the second still has a post on every one of those days
    assert not {minute_of(t) for t in first} & {minute_of(t) for t in second}
    assert {t.astimezone(PARIS).date() for t in second} == {
        t.astimezone(PARIS).date() for t in first
    }


def test_a_month_too_short_for_the_count_says_how_many_fit() -> None:
    # Given the last evening of a month (22:00 in Paris): 11 five-minute slots are left
    now = datetime(2031, 4, 30, 20, 0, tzinfo=UTC)

    # When 12 posts are asked for
    with pytest.raises(MonthFull) as caught:
        plan_times(2031, 4, 12, PARIS, now=now)

    # Then it says how many fit
    assert (caught.value.wanted, caught.value.available) == (12, 11)
    assert len(plan_times(2031, 4, 11, PARIS, now=now)) == 11


def test_a_month_is_over_in_the_brands_time_zone() -> None:
    # Given 23:30 UTC on 31 March: already April in Tokyo, still March in New York
    now = datetime(2031, 3, 31, 23, 30, tzinfo=UTC)

    assert month_is_over(2031, 3, ZoneInfo("Asia/Tokyo"), now)
    assert not month_is_over(2031, 3, NEW_YORK, now)
    assert not month_is_over(2031, 4, ZoneInfo("Asia/Tokyo"), now)
    assert month_is_over(2030, 12, NEW_YORK, now)
