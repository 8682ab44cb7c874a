"""What the analytics services share: the metrics Herald keeps, and when a published target's
metrics are pulled.

The schedule lives on the target, like the schedule of posts: `metrics_due_at` is when the
scheduler next sends it to the analytics queue (None: never again) and `metrics_pulls` how often
it did. Publishing sets the first slot (`first_pull_at`); each time the scheduler claims a target
it moves it to the next one (`next_pull_at`): at each of ANALYTICS_PULL_AGES after it went out
(often in its first day, when counts move most), then every ANALYTICS_PULL_EVERY_SECONDS, and
no more once it is older than ANALYTICS_PULL_MAX_AGE_DAYS.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from herald_common.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Every metric a snapshot keeps, in the order the API shows them.
METRICS = ("likes", "reposts", "replies", "quotes", "views", "impressions")


def pull_ages(settings: Settings) -> tuple[float, ...]:
    """ANALYTICS_PULL_AGES as seconds, ascending. Entries that are not positive numbers are
    left out (and logged): a typo must not stop targets from being published."""
    ages: set[float] = set()
    for part in settings.analytics_pull_ages.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            age = float(text)
        except ValueError:
            age = math.nan
        if not math.isfinite(age) or age <= 0:
            log.warning("ANALYTICS_PULL_AGES: %r is not a number of seconds; left out", text)
            continue
        ages.add(age)
    return tuple(sorted(ages))


def _slot_after(age: float, settings: Settings) -> float | None:
    """The first pull age (seconds after publishing) later than `age`; None past the max age."""
    ages = pull_ages(settings)
    later = next((a for a in ages if a > age), None)
    if later is None:
        last = ages[-1] if ages else 0.0
        every = settings.analytics_pull_every_seconds
        later = last + (math.floor(max(age - last, 0.0) / every) + 1) * every
    if later > settings.analytics_pull_max_age_days * 86400:
        return None
    return later


def first_pull_at(published_at: datetime, settings: Settings | None = None) -> datetime | None:
    """When a target published at `published_at` is first pulled (None: never).

    Called where a target becomes published; without `settings`, the process's own
    (get_settings), which is what its entry point built its collaborators with.
    """
    settings = settings or get_settings()
    age = _first_slot(settings)
    return None if age is None else published_at + timedelta(seconds=age)


#: The first slot per Settings object (each publish asks; ANALYTICS_PULL_AGES is parsed once).
_first_slots: dict[int, tuple[Settings, float | None]] = {}


def _first_slot(settings: Settings) -> float | None:
    found = _first_slots.get(id(settings))
    if found is None or found[0] is not settings:
        found = (settings, _slot_after(0.0, settings))
        if len(_first_slots) > 64:  # tests make many Settings; a process, one or two
            _first_slots.clear()
        _first_slots[id(settings)] = found
    return found[1]


def next_pull_at(published_at: datetime, now: datetime, settings: Settings) -> datetime | None:
    """The slot after `now` for a target published at `published_at` (None: no more pulls)."""
    age = _slot_after((now - published_at).total_seconds(), settings)
    return None if age is None else published_at + timedelta(seconds=age)
